// Base64 (RFC 4648 §4) for SASL exchanges, and base64url without padding (RFC 4648 §5, as JOSE
// uses it: RFC 7515 §2) for JSON Web Tokens. Encoding and decoding are OpenSSL's; this module adds
// the strict validation SASL needs (RFC 4422 §3: no line breaks, correct padding), because
// OpenSSL's block decoder skips whitespace and does not report how much padding it removed.
#pragma once

#include "core/result.hpp"

#include <string>
#include <string_view>

namespace pigeon {

[[nodiscard]] std::string base64_encode(std::string_view bytes);

// Fails with errc::bad_base64 on any character outside the alphabet, a length that is not a
// multiple of four, padding anywhere but the end, or non-zero bits left over before the padding
// (RFC 4648 §3.5), so every byte string has exactly one accepted encoding.
[[nodiscard]] Result<std::string> base64_decode(std::string_view text);

// RFC 7515 §2 "Base64url Encoding": the URL- and filename-safe alphabet ('-' and '_' for '+' and
// '/'), with the trailing '=' omitted.
[[nodiscard]] std::string base64url_encode(std::string_view bytes);

// The strict inverse of base64url_encode: fails with errc::bad_base64 on any '=' (RFC 7515 §2:
// padding is omitted, so a padded token is not one a conforming signer made), any character
// outside the url-safe alphabet ('+' and '/' included), a length that leaves a single character
// in the last group (4n+1: no byte string encodes to that), or non-zero leftover bits in the last
// character, so every byte string has exactly one accepted encoding.
[[nodiscard]] Result<std::string> base64url_decode(std::string_view text);

} // namespace pigeon
