#include "auth/passdb.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>

namespace pigeon::auth {

std::string apop_digest(std::string_view timestamp, std::string_view secret)
{
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    const bool ok = context != nullptr && EVP_DigestInit_ex(context, EVP_md5(), nullptr) == 1 &&
                    EVP_DigestUpdate(context, timestamp.data(), timestamp.size()) == 1 &&
                    EVP_DigestUpdate(context, secret.data(), secret.size()) == 1 &&
                    EVP_DigestFinal_ex(context, digest.data(), &length) == 1;
    EVP_MD_CTX_free(context);
    if (!ok) {
        return {};
    }
    static constexpr std::string_view hex = "0123456789abcdef";
    std::string out;
    out.reserve(std::size_t{length} * 2);
    for (unsigned int i = 0; i < length; ++i) {
        out.push_back(hex[digest[i] >> 4U]);
        out.push_back(hex[digest[i] & 0x0FU]);
    }
    return out;
}

bool constant_time_equals(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace pigeon::auth
