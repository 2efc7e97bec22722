#include "core/base64.hpp"

#include <openssl/evp.h>

namespace pigeon {
namespace {

bool in_alphabet(char c) noexcept
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int sextet(char c) noexcept
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : 63;
}

} // namespace

std::string base64_encode(std::string_view bytes)
{
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    if (bytes.empty()) {
        return out;
    }
    // EVP_EncodeBlock takes an int length; SASL payloads are bounded far below INT_MAX.
    const int written =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(written));
    return out;
}

Result<std::string> base64_decode(std::string_view text)
{
    if (text.size() % 4 != 0) {
        return fail(errc::bad_base64);
    }
    std::size_t padding = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '=') {
            // '=' only in the last two positions, and never followed by a non-'=' character.
            if (i + 2 < text.size()) {
                return fail(errc::bad_base64);
            }
            ++padding;
        } else if (!in_alphabet(c) || padding != 0) {
            return fail(errc::bad_base64);
        }
    }
    // RFC 4648 §3.5: the bits a padded encoding leaves over must be zero; otherwise two texts
    // would decode to the same bytes (found by fuzz_sasl_decode).
    if (padding > 0) {
        const int last = sextet(text[text.size() - padding - 1]);
        const int unused_mask = padding == 1 ? 0x03 : 0x0F;
        if ((last & unused_mask) != 0) {
            return fail(errc::bad_base64);
        }
    }
    std::string out(text.size() / 4 * 3, '\0');
    if (text.empty()) {
        return out;
    }
    const int written =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (written < 0 || static_cast<std::size_t>(written) != out.size()) {
        return fail(errc::bad_base64);
    }
    out.resize(out.size() - padding);
    return out;
}

std::string base64url_encode(std::string_view bytes)
{
    std::string out = base64_encode(bytes);
    while (!out.empty() && out.back() == '=') {
        out.pop_back();
    }
    for (char& c : out) {
        if (c == '+') {
            c = '-';
        } else if (c == '/') {
            c = '_';
        }
    }
    return out;
}

Result<std::string> base64url_decode(std::string_view text)
{
    if (text.size() % 4 == 1) {
        return fail(errc::bad_base64);
    }
    // Translated to the standard alphabet and padded, the text goes through base64_decode's
    // checks; '+', '/' and '=' are refused here first, as they are not base64url.
    std::string standard;
    standard.reserve(text.size() + 3);
    for (const char c : text) {
        if (c == '-') {
            standard.push_back('+');
        } else if (c == '_') {
            standard.push_back('/');
        } else if (c == '+' || c == '/' || c == '=') {
            return fail(errc::bad_base64);
        } else {
            standard.push_back(c);
        }
    }
    standard.append((4 - standard.size() % 4) % 4, '=');
    return base64_decode(standard);
}

} // namespace pigeon
