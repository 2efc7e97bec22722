#include "core/secret.hpp"

#include <openssl/crypto.h>

namespace pigeon {

void wipe(std::string& secret) noexcept
{
    if (!secret.empty()) {
        OPENSSL_cleanse(secret.data(), secret.size());
    }
    secret.clear();
}

} // namespace pigeon
