// Small string helpers for protocol text: ASCII-only case folding (protocol keywords are ASCII;
// locale-dependent functions are never used on peer input), decimal parsing without exceptions,
// and UTF-8 validation for RFC 6856.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pigeon {

[[nodiscard]] constexpr char ascii_upper(char c) noexcept
{
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

[[nodiscard]] constexpr bool iequals(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_upper(a[i]) != ascii_upper(b[i])) {
            return false;
        }
    }
    return true;
}

[[nodiscard]] std::string to_ascii_upper(std::string_view text);

// The words of `text` between single spaces (empty words kept: "a  b" gives "a", "", "b").
[[nodiscard]] std::vector<std::string_view> split_words(std::string_view text);

// Parses a non-empty run of ASCII digits (no sign, no spaces) that fits in 32 bits.
[[nodiscard]] std::optional<std::uint32_t> parse_u32(std::string_view digits) noexcept;

// Parses like parse_u32 but for 64 bits (octet counts).
[[nodiscard]] std::optional<std::uint64_t> parse_u64(std::string_view digits) noexcept;

// Two hexadecimal digits (either case) as one byte.
[[nodiscard]] std::optional<std::uint8_t> parse_hex_byte(std::string_view two_digits) noexcept;

[[nodiscard]] bool is_ascii(std::string_view text) noexcept;

// Well-formed UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF.
[[nodiscard]] bool is_valid_utf8(std::string_view text) noexcept;

// True if any byte is a control character (0x00-0x1F or 0x7F); protocol arguments never carry them.
[[nodiscard]] bool has_control_characters(std::string_view text) noexcept;

} // namespace pigeon
