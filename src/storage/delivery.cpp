#include "storage/delivery.hpp"

namespace pigeon::storage {

Result<std::string> deliver_message(Delivery& delivery, std::string_view user, std::string_view message)
{
    auto pending = delivery.begin(user);
    if (!pending) {
        return fail(pending.error());
    }
    if (auto written = (*pending)->write(message); !written) {
        return fail(written.error());
    }
    return (*pending)->commit();
}

} // namespace pigeon::storage
