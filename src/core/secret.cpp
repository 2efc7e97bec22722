#include "core/secret.hpp"

#include <openssl/crypto.h>

namespace pigeon {

void wipe(std::string& secret) noexcept
{
    // Cleanse the whole buffer, not just size(): a shorter value may have been stored in it
    // before, and short strings live in the object itself (small-string optimisation).
    secret.resize(secret.capacity());
    OPENSSL_cleanse(secret.data(), secret.size());
    secret.clear();
}

} // namespace pigeon
