#include "core/strings.hpp"

#include <gtest/gtest.h>

namespace pigeon {
namespace {

TEST(Strings, CaseInsensitiveAsciiOnly)
{
    EXPECT_TRUE(iequals("retr", "RETR"));
    EXPECT_TRUE(iequals("uSeR", "USER"));
    EXPECT_FALSE(iequals("USER", "USERS"));
    EXPECT_FALSE(iequals("\xe9", "\xc9")); // no Latin-1 folding
    EXPECT_EQ(to_ascii_upper("plain-1"), "PLAIN-1");
}

TEST(Strings, ParseU32)
{
    EXPECT_EQ(parse_u32("0"), 0U);
    EXPECT_EQ(parse_u32("4294967295"), 4294967295U);
    EXPECT_FALSE(parse_u32("4294967296"));
    EXPECT_FALSE(parse_u32(""));
    EXPECT_FALSE(parse_u32("+1"));
    EXPECT_FALSE(parse_u32("-1"));
    EXPECT_FALSE(parse_u32("1 "));
    EXPECT_FALSE(parse_u32("0x10"));
    EXPECT_EQ(parse_u64("18446744073709551615"), 18446744073709551615ULL);
}

TEST(Strings, Utf8Validation)
{
    EXPECT_TRUE(is_valid_utf8("plain ascii"));
    EXPECT_TRUE(is_valid_utf8("J\xc3\xbcrgen"));     // ü
    EXPECT_TRUE(is_valid_utf8("\xe2\x82\xac"));      // €
    EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x90\xa6"));  // 🐦
    EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));         // overlong '/'
    EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));     // surrogate
    EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80")); // above U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xc3"));             // truncated
    EXPECT_FALSE(is_valid_utf8("\x80"));             // stray continuation
    EXPECT_FALSE(is_ascii("J\xc3\xbcrgen"));
}

TEST(Strings, ControlCharacters)
{
    EXPECT_FALSE(has_control_characters("user name"));
    EXPECT_TRUE(has_control_characters(std::string_view("a\0b", 3)));
    EXPECT_TRUE(has_control_characters("a\tb"));
    EXPECT_TRUE(has_control_characters("a\x7f"));
}

} // namespace
} // namespace pigeon
