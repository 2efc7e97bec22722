#include "core/base64.hpp"

#include <gtest/gtest.h>

namespace pigeon {
namespace {

// RFC 4648 §10 test vectors.
TEST(Base64, Rfc4648Vectors)
{
    const std::pair<const char*, const char*> vectors[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(base64_encode(plain), encoded);
        const auto decoded = base64_decode(encoded);
        ASSERT_TRUE(decoded) << encoded;
        EXPECT_EQ(*decoded, plain);
    }
}

TEST(Base64, BinaryRoundTrip)
{
    std::string bytes;
    for (int i = 0; i < 256; ++i) {
        bytes.push_back(static_cast<char>(i));
    }
    for (std::size_t length = 0; length <= bytes.size(); ++length) {
        const auto prefix = bytes.substr(0, length);
        const auto decoded = base64_decode(base64_encode(prefix));
        ASSERT_TRUE(decoded);
        EXPECT_EQ(*decoded, prefix);
    }
}

TEST(Base64, RejectsMalformedInput)
{
    // "Zh==" and "Zm9=" carry non-zero bits before the padding (fuzz_sasl_decode's first find:
    // "YSYS/TUIDLX=").
    for (const char* bad : {"Zh==", "Zm9=", "YSYS/TUIDLX=", "Zg=", "Zg", "Z===", "Zg==Zg==", "Zm9v\r\n",
                            "Zm 9v", "Zm9v!", "=Zm9", "Zg=a"}) {
        const auto decoded = base64_decode(bad);
        ASSERT_FALSE(decoded) << bad;
        EXPECT_EQ(decoded.error(), make_error_code(errc::bad_base64));
    }
}

// RFC 4648 §10's vectors without their padding, and bytes that use both url-safe characters.
TEST(Base64Url, VectorsAndUrlSafeAlphabet)
{
    const std::pair<std::string, const char*> vectors[] = {
        {"", ""},
        {"f", "Zg"},
        {"fo", "Zm8"},
        {"foo", "Zm9v"},
        {"foobar", "Zm9vYmFy"},
        {std::string("\xfb\xff\xbf", 3), "-_-_"},
        // RFC 7515 §3.3's JOSE header {"typ":"JWT",\r\n "alg":"HS256"}.
        {"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}", "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"},
    };
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(base64url_encode(plain), encoded);
        const auto decoded = base64url_decode(encoded);
        ASSERT_TRUE(decoded) << encoded;
        EXPECT_EQ(*decoded, plain);
    }
}

TEST(Base64Url, BinaryRoundTrip)
{
    std::string bytes;
    for (int i = 0; i < 256; ++i) {
        bytes.push_back(static_cast<char>(255 - i));
    }
    for (std::size_t length = 0; length <= bytes.size(); ++length) {
        const auto prefix = bytes.substr(0, length);
        const std::string encoded = base64url_encode(prefix);
        EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
        const auto decoded = base64url_decode(encoded);
        ASSERT_TRUE(decoded);
        EXPECT_EQ(*decoded, prefix);
    }
}

TEST(Base64Url, RejectsPaddingStandardAlphabetAndNonCanonicalBits)
{
    // Padding (even where correct), the standard alphabet's '+' and '/', a 4n+1 length, leftover
    // bits ("Zh" and "Zm9" decode to the same bytes as "Zg" and "Zm8" under a lax decoder),
    // whitespace and other characters.
    for (const char* bad : {"Zg==", "Zm8=", "+_-_", "-_-/", "Z", "Zm9vY", "Zh", "Zm9", "Zm9v\n", "Zm 9v",
                            "Zm9v.", "Zm9v!", "\xc3\xa9"}) {
        const auto decoded = base64url_decode(bad);
        ASSERT_FALSE(decoded) << bad;
        EXPECT_EQ(decoded.error(), make_error_code(errc::bad_base64));
    }
}

} // namespace
} // namespace pigeon
