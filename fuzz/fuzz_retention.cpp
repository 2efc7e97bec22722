// The EXPIRE record (storage/retention.hpp) is a file on disk that anyone with access to the
// maildrop can edit: hostile input. Nothing may crash, nothing the record does not name may expire
// (except with EXPIRE 0), and the record written back must be a fixed point.
#include "storage/retention.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

class Listing final : public pigeon::MessageListing {
public:
    [[nodiscard]] std::uint32_t message_count() const noexcept override { return 4; }
    [[nodiscard]] std::uint64_t message_octets(pigeon::MessageIndex /*index*/) const noexcept override
    {
        return 1;
    }
    [[nodiscard]] std::string_view unique_id(pigeon::MessageIndex index) const noexcept override
    {
        static constexpr std::string_view uids[] = {"a", "b", "1800000000.M1P1.host", "x"};
        return uids[index.value];
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using pigeon::MessageIndex;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const Listing listing;
    constexpr std::int64_t now = 1'800'000'000;
    const std::vector<MessageIndex> none;
    const std::vector<MessageIndex> retrieved{MessageIndex{1}};
    for (const std::uint32_t days : {0U, 1U, 36'500U}) {
        const auto plan = pigeon::storage::plan_retention(listing, input, none, retrieved, now, days);
        // A message expires only with EXPIRE 0 (retrieved now) or when the record names it.
        for (const auto index : plan.deletions) {
            const auto uid = listing.unique_id(index);
            if (days > 0 && input.find(uid) == std::string_view::npos) {
                std::abort();
            }
            if (days == 0 && index.value != 1) {
                std::abort();
            }
        }
        if (days > 0 && !plan.record.starts_with("pigeon-retrieved 1\n")) {
            std::abort();
        }
        // The record written back parses to the same record (it is a fixed point).
        if (days > 0) {
            const auto again = pigeon::storage::plan_retention(listing, plan.record, none, none, now, days);
            if (again.record != plan.record || again.expired != 0) {
                std::abort();
            }
        }
    }
    return 0;
}
