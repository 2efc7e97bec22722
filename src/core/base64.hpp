// Base64 (RFC 4648 §4) for SASL exchanges. Encoding and decoding are OpenSSL's; this module adds
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

} // namespace pigeon
