// JwtValidator against tokens signed here, with keys made here by OpenSSL, and against RFC 7515's
// appendix A.3 vector; then bearer logins through verify_credentials() and the SASL mechanism.
// Every time is fixed (t0): no test reads the clock or sleeps.
#include "auth/jwt_validator.hpp"

#include "auth/memory/memory_passdb.hpp"
#include "core/base64.hpp"
#include "sasl/mechanism.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <variant>

namespace pigeon::auth {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using TimePoint = std::chrono::system_clock::time_point;

constexpr std::int64_t t0 = 1'700'000'000; // 2023-11-14T22:13:20Z
constexpr TimePoint now{std::chrono::seconds(t0)};

constexpr const char* issuer = "https://idp.example.com/";
constexpr const char* audience = "pop3.example.com";

struct PkeyFree {
    void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey make_rsa(std::size_t bits)
{
    return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
}

Pkey make_p256()
{
    return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
}

std::string bio_text(BIO* bio)
{
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    return {data, static_cast<std::size_t>(length)};
}

std::string public_pem(EVP_PKEY* key)
{
    const std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), key), 1);
    return bio_text(bio.get());
}

std::string private_pem(EVP_PKEY* key)
{
    const std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
    return bio_text(bio.get());
}

// "-----BEGIN RSA PUBLIC KEY-----" (PKCS#1), as `openssl rsa -RSAPublicKey_out` writes it.
std::string pkcs1_public_pem(EVP_PKEY* key)
{
    OSSL_ENCODER_CTX* encoder =
        OSSL_ENCODER_CTX_new_for_pkey(key, EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", nullptr);
    unsigned char* data = nullptr;
    std::size_t length = 0;
    EXPECT_EQ(OSSL_ENCODER_to_data(encoder, &data, &length), 1);
    OSSL_ENCODER_CTX_free(encoder);
    std::string out(reinterpret_cast<const char*>(data), length);
    OPENSSL_free(data);
    return out;
}

std::string big_endian(EVP_PKEY* key, const char* param, int octets = 0)
{
    BIGNUM* number = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(key, param, &number), 1);
    const int length = octets > 0 ? octets : BN_num_bytes(number);
    std::string out(static_cast<std::size_t>(length), '\0');
    EXPECT_EQ(BN_bn2binpad(number, reinterpret_cast<unsigned char*>(out.data()), length), length);
    BN_free(number);
    return out;
}

Json jwk_of(EVP_PKEY* key, const std::string& kid)
{
    Json jwk;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
        jwk = {{"kty", "RSA"},
               {"n", base64url_encode(big_endian(key, OSSL_PKEY_PARAM_RSA_N))},
               {"e", base64url_encode(big_endian(key, OSSL_PKEY_PARAM_RSA_E))}};
    } else {
        jwk = {{"kty", "EC"},
               {"crv", "P-256"},
               {"x", base64url_encode(big_endian(key, OSSL_PKEY_PARAM_EC_PUB_X, 32))},
               {"y", base64url_encode(big_endian(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
    }
    if (!kid.empty()) {
        jwk["kid"] = kid;
    }
    return jwk;
}

// A JWS signature as RFC 7518 §3.3 (RS256) and §3.4 (ES256: R || S, 32 octets each) define it.
std::string sign(EVP_PKEY* key, std::string_view input)
{
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    std::size_t length = 0;
    EXPECT_EQ(EVP_DigestSignInit_ex(context, nullptr, "SHA256", nullptr, nullptr, key, nullptr), 1);
    EXPECT_EQ(EVP_DigestSign(context, nullptr, &length, reinterpret_cast<const unsigned char*>(input.data()),
                             input.size()),
              1);
    std::string signature(length, '\0');
    EXPECT_EQ(EVP_DigestSign(context, reinterpret_cast<unsigned char*>(signature.data()), &length,
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()),
              1);
    EVP_MD_CTX_free(context);
    signature.resize(length);
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) {
        return signature;
    }
    const auto* der = reinterpret_cast<const unsigned char*>(signature.data());
    ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(signature.size()));
    std::string raw(64, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    EXPECT_EQ(BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), out, 32), 32);
    EXPECT_EQ(BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), out + 32, 32), 32);
    ECDSA_SIG_free(ecdsa);
    return raw;
}

std::string hmac_sha256(std::string_view secret, std::string_view input)
{
    std::array<unsigned char, 32> out{};
    std::size_t length = 0;
    EXPECT_NE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                        reinterpret_cast<const unsigned char*>(input.data()), input.size(), out.data(),
                        out.size(), &length),
              nullptr);
    return {reinterpret_cast<const char*>(out.data()), length};
}

std::string signing_input(const std::string& header, const std::string& claims)
{
    return base64url_encode(header) + "." + base64url_encode(claims);
}

// A compact JWS over the exact header and claims texts given.
std::string token_of(const std::string& header, const std::string& claims, EVP_PKEY* key)
{
    const std::string input = signing_input(header, claims);
    return input + "." + base64url_encode(sign(key, input));
}

std::string token_of(const Json& header, const Json& claims, EVP_PKEY* key)
{
    return token_of(header.dump(), claims.dump(), key);
}

Json good_claims()
{
    return {{"iss", issuer},
            {"aud", audience},
            {"sub", "248289761001"},
            {"email", "alice@example.com"},
            {"preferred_username", "alice"},
            {"iat", t0 - 10},
            {"nbf", t0 - 10},
            {"exp", t0 + 3600}};
}

JwtConfig good_config()
{
    JwtConfig config;
    config.issuer = issuer;
    config.audience = audience;
    return config;
}

class TempDir {
public:
    TempDir()
    {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        m_path = fs::temp_directory_path() /
                 (std::string("pigeon-jwt-") + std::to_string(::getpid()) + "-" + info->name());
        fs::remove_all(m_path);
        fs::create_directories(m_path);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir()
    {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }

    [[nodiscard]] fs::path write(const std::string& name, const std::string& text) const
    {
        fs::path path = m_path / name;
        std::ofstream(path, std::ios::binary) << text;
        return path;
    }

private:
    fs::path m_path;
};

// Keys are made once, on first use: RSA key generation is the slowest step here.
struct TestKeys {
    Pkey rsa = make_rsa(2048);
    Pkey rsa2 = make_rsa(2048);
    Pkey ec = make_p256();
    Pkey ec2 = make_p256();
};

const TestKeys& test_keys()
{
    static const TestKeys keys;
    return keys;
}

class JwtTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(m_rsa && m_rsa2 && m_ec && m_ec2); }

    // A validator over a JWKS with m_rsa as "rsa-1", m_rsa2 as "rsa-2", m_ec as "ec-1".
    [[nodiscard]] JwtValidator jwks_validator(const JwtConfig& config = good_config()) const
    {
        const Json jwks = {{"keys", {jwk_of(m_rsa, "rsa-1"), jwk_of(m_rsa2, "rsa-2"), jwk_of(m_ec, "ec-1")}}};
        std::string error;
        auto validator = JwtValidator::load(config, m_dir.write("jwks.json", jwks.dump()), &error);
        EXPECT_TRUE(validator) << error;
        return std::move(validator.value());
    }

    // A validator over a PEM file with m_rsa and m_ec (no kids).
    [[nodiscard]] JwtValidator pem_validator(const JwtConfig& config = good_config()) const
    {
        std::string error;
        auto validator =
            JwtValidator::load(config, m_dir.write("keys.pem", public_pem(m_rsa) + public_pem(m_ec)), &error);
        EXPECT_TRUE(validator) << error;
        return std::move(validator.value());
    }

    [[nodiscard]] std::string load_error(const std::string& file_text,
                                         const JwtConfig& config = good_config()) const
    {
        std::string error;
        const auto validator = JwtValidator::load(config, m_dir.write("bad-keys", file_text), &error);
        EXPECT_FALSE(validator);
        if (!validator) {
            EXPECT_EQ(validator.error(), make_error_code(errc::auth_temporary_failure));
        }
        return error;
    }

    EVP_PKEY* const m_rsa = test_keys().rsa.get();
    EVP_PKEY* const m_rsa2 = test_keys().rsa2.get();
    EVP_PKEY* const m_ec = test_keys().ec.get();
    EVP_PKEY* const m_ec2 = test_keys().ec2.get();
    TempDir m_dir;
};

// The reason validate() gives for refusing `token`, or "accepted".
std::string refusal(const JwtValidator& validator, std::string_view token, std::string_view claimed_user = "",
                    TimePoint at = now)
{
    std::string_view reason = "no reason given";
    const auto user = validator.validate(token, claimed_user, at, &reason);
    if (user) {
        return "accepted";
    }
    EXPECT_EQ(user.error(), make_error_code(errc::auth_failed));
    return std::string(reason);
}

Json rs256()
{
    return {{"alg", "RS256"}, {"typ", "JWT"}};
}

Json es256()
{
    return {{"alg", "ES256"}};
}

TEST_F(JwtTest, ValidRs256)
{
    const auto validator = pem_validator();
    EXPECT_EQ(validator.key_count(), 2U);
    const auto user = validator.validate(token_of(rs256(), good_claims(), m_rsa), "alice@example.com", now);
    ASSERT_TRUE(user);
    EXPECT_EQ(*user, "alice@example.com");
    EXPECT_EQ(refusal(jwks_validator(), token_of(rs256(), good_claims(), m_rsa)), "accepted");
}

TEST_F(JwtTest, ValidEs256)
{
    const auto validator = pem_validator();
    const auto user = validator.validate(token_of(es256(), good_claims(), m_ec), "", now);
    ASSERT_TRUE(user);
    EXPECT_EQ(*user, "alice@example.com");
    Json header = es256();
    header["kid"] = "ec-1";
    header["typ"] = "at+jwt"; // RFC 9068 access token
    EXPECT_EQ(refusal(jwks_validator(), token_of(header, good_claims(), m_ec)), "accepted");
    // Every signature is a new one (ECDSA's random k); each verifies.
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(refusal(validator, token_of(es256(), good_claims(), m_ec)), "accepted");
    }
}

TEST_F(JwtTest, KidSelectsTheKey)
{
    const auto validator = jwks_validator();
    Json header = rs256();
    header["kid"] = "rsa-2";
    EXPECT_EQ(refusal(validator, token_of(header, good_claims(), m_rsa2)), "accepted");
    // The kid names a key, and only that key is tried.
    header["kid"] = "rsa-1";
    EXPECT_EQ(refusal(validator, token_of(header, good_claims(), m_rsa2)), "bad signature");
    header["kid"] = "no-such-key";
    EXPECT_EQ(refusal(validator, token_of(header, good_claims(), m_rsa2)), "no key for this kid and alg");
    header["kid"] = 7;
    EXPECT_EQ(refusal(validator, token_of(header, good_claims(), m_rsa2)), "kid not a string");
    // Without a kid, every RSA key is tried.
    EXPECT_EQ(refusal(validator, token_of(rs256(), good_claims(), m_rsa2)), "accepted");
    // PEM keys have no kid: a token with one is checked against them.
    header["kid"] = "whatever-the-idp-calls-it";
    EXPECT_EQ(refusal(pem_validator(), token_of(header, good_claims(), m_rsa)), "accepted");
    // A key of another issuer is not in the set.
    EXPECT_EQ(refusal(validator, token_of(es256(), good_claims(), m_ec2)), "bad signature");
}

TEST_F(JwtTest, WrongSignatureIsRefused)
{
    const auto validator = pem_validator();
    for (EVP_PKEY* key : {m_rsa, m_ec}) {
        const std::string token = token_of(key == m_rsa ? rs256() : es256(), good_claims(), key);
        const std::size_t dot = token.rfind('.');
        std::string signature = base64url_decode(token.substr(dot + 1)).value();
        for (const std::size_t position : {std::size_t{0}, signature.size() / 2, signature.size() - 1}) {
            std::string flipped = signature;
            flipped[position] = static_cast<char>(flipped[position] ^ 0x01);
            EXPECT_EQ(refusal(validator, token.substr(0, dot + 1) + base64url_encode(flipped)),
                      "bad signature");
        }
        // A signature one octet short, or with one more.
        EXPECT_EQ(refusal(validator, token.substr(0, dot + 1) + base64url_encode(signature.substr(1))),
                  "bad signature");
        EXPECT_EQ(refusal(validator, token.substr(0, dot + 1) + base64url_encode(signature + "x")),
                  "bad signature");
        // Claims changed after signing.
        Json changed = good_claims();
        changed["email"] = "mallory@example.com";
        EXPECT_EQ(refusal(validator, base64url_encode(key == m_rsa ? rs256().dump() : es256().dump()) + "." +
                                         base64url_encode(changed.dump()) + token.substr(dot)),
                  "bad signature");
    }
}

TEST_F(JwtTest, AlgNoneIsRefused)
{
    const auto validator = pem_validator();
    const std::string unsigned_token = signing_input(R"({"alg":"none"})", good_claims().dump());
    EXPECT_EQ(refusal(validator, unsigned_token + "."), "not a JWS compact serialisation");
    EXPECT_EQ(refusal(validator, unsigned_token + ".AAAA"), "alg not allowed");
    for (const char* alg : {"None", "NONE", "nOnE", "", "rs256()", "PS256", "RS384", "ES384", "EdDSA"}) {
        const std::string input = signing_input(Json{{"alg", alg}}.dump(), good_claims().dump());
        EXPECT_EQ(refusal(validator, input + "." + base64url_encode(sign(m_rsa, input))), "alg not allowed")
            << alg;
    }
    EXPECT_EQ(refusal(validator, token_of(Json{{"typ", "JWT"}}, good_claims(), m_rsa)), "no alg");
    EXPECT_EQ(refusal(validator, token_of(Json{{"alg", 256}}, good_claims(), m_rsa)), "no alg");
}

// RFC 8725 §2.1: an HS256 token "signed" with the RSA public key as the HMAC secret verifies in a
// library that lets the token choose the algorithm.
TEST_F(JwtTest, Hs256WithThePublicKeyAsSecretIsRefused)
{
    const auto validator = pem_validator();
    const std::string pem = public_pem(m_rsa);
    for (const char* alg : {"HS256", "HS384", "HS512"}) {
        const std::string input = signing_input(Json{{"alg", alg}}.dump(), good_claims().dump());
        for (const std::string& secret :
             {pem, pem.substr(0, pem.size() - 1), std::string(public_pem(m_ec))}) {
            EXPECT_EQ(refusal(validator, input + "." + base64url_encode(hmac_sha256(secret, input))),
                      "alg not allowed");
        }
    }
    // And no configuration can allow HMAC or none.
    for (const char* alg : {"HS256", "none", "PS256", "RS512"}) {
        JwtConfig config = good_config();
        config.algorithms = {"RS256", alg};
        EXPECT_NE(load_error(public_pem(m_rsa), config).find("not supported"), std::string::npos) << alg;
    }
}

TEST_F(JwtTest, AlgorithmAndKeyTypeMustAgree)
{
    const auto validator = jwks_validator();
    // RS256 named, the EC key's kid, an ES256 signature: the EC key never serves RS256.
    const Json rs256_ec_kid = {{"alg", "RS256"}, {"kid", "ec-1"}};
    EXPECT_EQ(refusal(validator, token_of(rs256_ec_kid, good_claims(), m_ec)), "no key for this kid and alg");
    EXPECT_EQ(refusal(validator, token_of(rs256_ec_kid, good_claims(), m_rsa)),
              "no key for this kid and alg");
    // Without a kid: only RSA keys are tried for RS256, and the EC signature fails on them.
    EXPECT_EQ(refusal(validator, token_of(rs256(), good_claims(), m_ec)), "bad signature");
    EXPECT_EQ(refusal(validator, token_of(es256(), good_claims(), m_rsa)), "bad signature");
    // Only RSA keys loaded: an ES256 token has no key at all.
    std::string error;
    const auto rsa_only =
        JwtValidator::load(good_config(), m_dir.write("rsa.pem", public_pem(m_rsa)), &error);
    ASSERT_TRUE(rsa_only) << error;
    EXPECT_EQ(refusal(*rsa_only, token_of(es256(), good_claims(), m_ec)), "no key for this kid and alg");
    // A JWK's "alg" binds the key to that algorithm; one that contradicts its type is an error.
    Json bound = jwk_of(m_ec, "ec-1");
    bound["alg"] = "RS256";
    EXPECT_NE(load_error(Json{{"keys", {bound}}}.dump()).find("does not fit"), std::string::npos);
    // Only the configured algorithms.
    JwtConfig es_only = good_config();
    es_only.algorithms = {"ES256"};
    EXPECT_EQ(refusal(jwks_validator(es_only), token_of(rs256(), good_claims(), m_rsa)), "alg not allowed");
    EXPECT_EQ(refusal(jwks_validator(es_only), token_of(es256(), good_claims(), m_ec)), "accepted");
}

TEST_F(JwtTest, ExpiryWithLeeway)
{
    const auto validator = pem_validator(); // leeway 60 s
    Json claims = good_claims();
    claims["exp"] = t0 - 61;
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "token expired");
    claims["exp"] = t0 - 60;
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "token expired");
    claims["exp"] = t0 - 59;
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "accepted");
    // A NumericDate may be fractional, and is compared as written.
    claims["exp"] = static_cast<double>(t0) - 59.5;
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "accepted");
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa), "", now + std::chrono::milliseconds(499)),
              "accepted");
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa), "", now + std::chrono::milliseconds(500)),
              "token expired");
    // Without leeway, "now" must be before exp (RFC 7519 §4.1.4).
    JwtConfig strict = good_config();
    strict.leeway = std::chrono::seconds(0);
    const auto strict_validator = pem_validator(strict);
    claims["exp"] = t0;
    EXPECT_EQ(refusal(strict_validator, token_of(rs256(), claims, m_rsa)), "token expired");
    claims["exp"] = t0 + 1;
    EXPECT_EQ(refusal(strict_validator, token_of(rs256(), claims, m_rsa)), "accepted");
    EXPECT_EQ(
        refusal(strict_validator, token_of(rs256(), claims, m_rsa), "", now + std::chrono::milliseconds(999)),
        "accepted");
    EXPECT_EQ(refusal(strict_validator, token_of(rs256(), claims, m_rsa), "", now + std::chrono::seconds(1)),
              "token expired");
}

TEST_F(JwtTest, ExpIsRequiredAndMustBeANumericDate)
{
    const auto validator = pem_validator();
    Json claims = good_claims();
    claims.erase("exp");
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "no exp");
    for (const Json& bad :
         {Json(std::to_string(t0 + 3600)), Json(nullptr), Json(true), Json::array({t0 + 3600}), Json(-1),
          Json(1e300), Json(std::uint64_t{18446744073709551615U})}) {
        claims["exp"] = bad;
        EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "exp not a NumericDate")
            << bad.dump();
    }
}

TEST_F(JwtTest, NotBeforeAndIssuedAt)
{
    const auto validator = pem_validator();
    Json claims = good_claims();
    claims["nbf"] = t0 + 120;
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "token not yet valid");
    claims["nbf"] = t0 + 60; // within the leeway
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "accepted");
    claims["nbf"] = "soon";
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "nbf not a NumericDate");
    claims = good_claims();
    claims["iat"] = t0 + 61;
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "token issued in the future");
    claims["iat"] = t0 + 60;
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "accepted");
    claims.erase("iat");
    claims.erase("nbf");
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "accepted"); // both optional
}

TEST_F(JwtTest, IssuerMustMatchExactly)
{
    const auto validator = pem_validator();
    Json claims = good_claims();
    for (const Json& bad : {Json("https://evil.example.com/"), Json("https://idp.example.com"),
                            Json("HTTPS://IDP.EXAMPLE.COM/"), Json::array({issuer}), Json(nullptr)}) {
        claims["iss"] = bad;
        EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "issuer mismatch") << bad.dump();
    }
    claims.erase("iss");
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "issuer mismatch");
}

TEST_F(JwtTest, AudienceStringOrArray)
{
    const auto validator = pem_validator();
    Json claims = good_claims();
    claims["aud"] = Json::array({"https://api.example.com", audience});
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "accepted");
    claims["aud"] = Json::array({audience});
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "accepted");
    for (const Json& bad : {Json::array({"https://api.example.com", "imap.example.com"}), Json::array(),
                            Json::array({audience, 1}), Json("POP3.example.com"), Json(nullptr),
                            Json::object({{"aud", audience}})}) {
        claims["aud"] = bad;
        EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "audience mismatch") << bad.dump();
    }
    claims.erase("aud");
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "no aud");
}

TEST_F(JwtTest, UserClaimAndClaimedUser)
{
    const auto validator = pem_validator();
    const std::string token = token_of(rs256(), good_claims(), m_rsa);
    // The domain is compared ignoring case, the local part exactly; the token's form is returned.
    const auto user = validator.validate(token, "alice@EXAMPLE.Com", now);
    ASSERT_TRUE(user);
    EXPECT_EQ(*user, "alice@example.com");
    for (const char* other : {"Alice@example.com", "bob@example.com", "alice@example.org", "alice",
                              "alice@example.com@example.com", "alice@example.com "}) {
        EXPECT_EQ(refusal(validator, token, other), "token issued to another user") << other;
    }
    Json claims = good_claims();
    claims.erase("email");
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "no user claim");
    for (const Json& bad : {Json(""), Json(42), Json("alice\r\n@example.com"), Json(std::string(256, 'a'))}) {
        claims["email"] = bad;
        const std::string reason = refusal(validator, token_of(rs256(), claims, m_rsa));
        EXPECT_TRUE(reason == "no user claim" || reason == "user claim not a user name") << bad.dump();
    }
    // An unverified address proves nothing; a verified one (Cognito writes a string) is fine.
    claims = good_claims();
    claims["email_verified"] = false;
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "email not verified");
    claims["email_verified"] = "true";
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "accepted");
    claims["email_verified"] = true;
    EXPECT_EQ(refusal(validator, token_of(rs256(), claims, m_rsa)), "accepted");
    // Another claim names the user.
    for (const char* name : {"sub", "preferred_username"}) {
        JwtConfig config = good_config();
        config.user_claim = name;
        const auto by_claim = pem_validator(config).validate(token, "", now);
        ASSERT_TRUE(by_claim);
        EXPECT_EQ(*by_claim, good_claims()[name].get<std::string>());
        EXPECT_EQ(refusal(pem_validator(config), token, "alice@example.com"), "token issued to another user");
    }
}

TEST_F(JwtTest, OversizedTokenIsRefusedBeforeDecoding)
{
    const auto validator = pem_validator();
    Json claims = good_claims();
    claims["groups"] = std::string(5500, 'g'); // base64url: about 7.3 KiB of claims
    const std::string near_limit = token_of(rs256(), claims, m_rsa);
    ASSERT_LE(near_limit.size(), max_jwt_octets);
    EXPECT_EQ(refusal(validator, near_limit), "accepted");
    claims["groups"] = std::string(6200, 'g');
    const std::string over = token_of(rs256(), claims, m_rsa);
    ASSERT_GT(over.size(), max_jwt_octets);
    EXPECT_EQ(refusal(validator, over), "token too long");
}

TEST_F(JwtTest, MalformedTokens)
{
    const auto validator = pem_validator();
    const std::string good = token_of(rs256(), good_claims(), m_rsa);
    const std::size_t first = good.find('.');
    const std::size_t second = good.rfind('.');
    const std::string header = good.substr(0, first);
    const std::string claims = good.substr(first + 1, second - first - 1);
    const std::string signature = good.substr(second + 1);
    for (const std::string& bad :
         {std::string(), std::string("."), std::string(".."), header, header + "." + claims, good + ".",
          good + "." + signature, "." + claims + "." + signature, header + ".." + signature,
          // JWE (RFC 7516) has five parts
          header + "." + claims + "." + signature + ".a.b"}) {
        EXPECT_EQ(refusal(validator, bad), "not a JWS compact serialisation") << bad;
    }
    // base64url: padding, the standard alphabet, other characters, a 4n+1 length.
    EXPECT_EQ(refusal(validator, header + "=." + claims + "." + signature), "header not base64url");
    EXPECT_EQ(refusal(validator, "eyJhbGciOiJSUzI1NiJ9+." + claims + "." + signature),
              "header not base64url");
    EXPECT_EQ(refusal(validator, " " + good), "header not base64url");
    EXPECT_EQ(refusal(validator, header + "." + claims + "." + signature + "="), "signature not base64url");
    // 342 characters for 256 octets: one fewer leaves a 4n+1 length, and the last character may
    // only be one whose leftover 4 bits are zero (A, Q, g, w).
    ASSERT_EQ(signature.size(), 342U);
    EXPECT_EQ(refusal(validator, header + "." + claims + "." + signature.substr(0, 341)),
              "signature not base64url");
    EXPECT_EQ(refusal(validator, header + "." + claims + "." + signature.substr(0, 341) + "B"),
              "signature not base64url");
    EXPECT_EQ(refusal(validator, header + "." + claims + "." + signature + "\n"), "signature not base64url");
    EXPECT_EQ(refusal(validator, header + "." + claims + "==." + signature), "bad signature");
    // Headers that are not one JSON object.
    for (const char* bad_header :
         {"{", "[\"RS256\"]", "\"RS256\"", R"({"alg":"RS256"} x)", R"({"alg":"RS256","alg":"none"})",
          R"({"alg":"RS256"/*c*/})", "{\"alg\":\"RS256\",\"x\":\"\xff\"}"}) {
        EXPECT_EQ(refusal(validator, token_of(std::string(bad_header), good_claims().dump(), m_rsa)),
                  "header not a JSON object")
            << bad_header;
    }
    EXPECT_EQ(refusal(validator, token_of(std::string(R"({"alg":"RS256","x":)") + std::string(9, '[') +
                                              std::string(9, ']') + "}",
                                          good_claims().dump(), m_rsa)),
              "header not a JSON object");
    EXPECT_EQ(refusal(validator, token_of(std::string(R"({"alg":"RS256","x":)") + std::string(6, '[') +
                                              std::string(6, ']') + "}",
                                          good_claims().dump(), m_rsa)),
              "accepted");
    EXPECT_EQ(refusal(validator,
                      token_of(Json{{"alg", "RS256"}, {"crit", {"exp"}}, {"exp", 1}}, good_claims(), m_rsa)),
              "crit header not supported");
    EXPECT_EQ(
        refusal(validator, token_of(Json{{"alg", "RS256"}, {"typ", "JOSE+JSON"}}, good_claims(), m_rsa)),
        "typ not a JWT");
    // Claims that are not one JSON object, though properly signed.
    const std::string claims_text = good_claims().dump();
    for (const std::string& bad_claims :
         {std::string("[]"), std::string("null"), claims_text.substr(0, claims_text.size() - 1),
          claims_text.substr(0, claims_text.size() - 1) + R"(,"exp":1})",
          claims_text.substr(0, claims_text.size() - 1) + R"(,"x":)" + std::string(20, '[') +
              std::string(20, ']') + "}"}) {
        EXPECT_EQ(refusal(validator, token_of(rs256().dump(), bad_claims, m_rsa)), "claims not a JSON object")
            << bad_claims;
    }
}

// RFC 7515 appendix A.3: its ES256 JWS verifies with its key. The claims have no "aud", so the
// validator, having checked the signature first, stops there; a changed signature stops earlier.
TEST_F(JwtTest, Rfc7515AppendixA3)
{
    const Json jwks = {{"keys",
                        {{{"kty", "EC"},
                          {"crv", "P-256"},
                          {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                          {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}}}};
    JwtConfig config = good_config();
    config.issuer = "joe";
    std::string error;
    const auto validator = JwtValidator::load(config, m_dir.write("a3.json", jwks.dump()), &error);
    ASSERT_TRUE(validator) << error;
    const std::string signing_input =
        "eyJhbGciOiJFUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9p"
        "c19yb290Ijp0cnVlfQ";
    const std::string signature =
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    const TimePoint before_exp{std::chrono::seconds(1300819380 - 100)};
    EXPECT_EQ(refusal(*validator, signing_input + "." + signature, "", before_exp), "no aud");
    std::string changed = signature;
    changed[10] = changed[10] == 'A' ? 'B' : 'A';
    EXPECT_EQ(refusal(*validator, signing_input + "." + changed, "", before_exp), "bad signature");
}

TEST_F(JwtTest, PemFormsAccepted)
{
    std::string error;
    const auto pkcs1 =
        JwtValidator::load(good_config(), m_dir.write("pkcs1.pem", pkcs1_public_pem(m_rsa)), &error);
    ASSERT_TRUE(pkcs1) << error;
    EXPECT_EQ(refusal(*pkcs1, token_of(rs256(), good_claims(), m_rsa)), "accepted");
    // Text around the blocks (as `openssl` writes with -text) is ignored.
    const auto commented = JwtValidator::load(
        good_config(), m_dir.write("commented.pem", "our IdP, 2024\n" + public_pem(m_ec) + "\nend\n"),
        &error);
    ASSERT_TRUE(commented) << error;
    EXPECT_EQ(refusal(*commented, token_of(es256(), good_claims(), m_ec)), "accepted");
}

TEST_F(JwtTest, WeakOrWrongKeysAreRefusedAtLoad)
{
    const Pkey rsa1024 = make_rsa(1024);
    ASSERT_TRUE(rsa1024);
    EXPECT_NE(load_error(public_pem(rsa1024.get())).find("1024 bits"), std::string::npos);
    EXPECT_NE(load_error(public_pem(m_rsa) + public_pem(rsa1024.get())).find("1024 bits"), std::string::npos);
    EXPECT_NE(load_error(Json{{"keys", {jwk_of(rsa1024.get(), "old")}}}.dump()).find("1024 bits"),
              std::string::npos);
    const Pkey p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
    EXPECT_NE(load_error(public_pem(p384.get())).find("P-256"), std::string::npos);
    const Pkey ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    EXPECT_NE(load_error(public_pem(ed25519.get())).find("not usable"), std::string::npos);
    EXPECT_NE(load_error(private_pem(m_rsa)).find("private key"), std::string::npos);
    Json with_d = jwk_of(m_ec, "ec-1");
    with_d["d"] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
    EXPECT_NE(load_error(Json{{"keys", {with_d}}}.dump()).find("private key"), std::string::npos);
}

TEST_F(JwtTest, BadKeyFilesAndConfigurations)
{
    std::string error;
    EXPECT_FALSE(JwtValidator::load(good_config(), "/nonexistent/pigeon/keys.pem", &error));
    EXPECT_NE(error.find("/nonexistent/pigeon/keys.pem"), std::string::npos);
    EXPECT_FALSE(load_error("").empty());
    EXPECT_FALSE(load_error("not a key\n").empty());
    EXPECT_FALSE(load_error(std::string(max_jwt_key_file_octets + 1, 'k')).empty());
    EXPECT_FALSE(load_error("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").empty());
    EXPECT_FALSE(load_error(R"({"keys": {}})").empty());
    EXPECT_FALSE(load_error(R"({"keys": [], "keys": []})").empty());
    EXPECT_FALSE(load_error(R"({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})").empty());
    EXPECT_FALSE(load_error(R"({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]})").empty());
    EXPECT_FALSE(load_error(R"({"keys": [{"n": "AQAB", "e": "AQAB"}]})").empty());
    Json short_x = jwk_of(m_ec, "");
    short_x["x"] = base64url_encode(base64url_decode(short_x["x"].get<std::string>()).value().substr(1));
    EXPECT_NE(load_error(Json{{"keys", {short_x}}}.dump()).find("32 octets"), std::string::npos);
    Json off_curve = jwk_of(m_ec, "");
    std::string y = base64url_decode(off_curve["y"].get<std::string>()).value();
    y[31] = static_cast<char>(y[31] ^ 1);
    off_curve["y"] = base64url_encode(y);
    EXPECT_FALSE(load_error(Json{{"keys", {off_curve}}}.dump()).empty());
    Json padded = jwk_of(m_rsa, "");
    padded["e"] = "AQAB=";
    EXPECT_FALSE(load_error(Json{{"keys", {padded}}}.dump()).empty());
    EXPECT_NE(load_error(Json{{"keys", {jwk_of(m_rsa, "k1"), jwk_of(m_rsa2, "k1")}}}.dump()).find("two keys"),
              std::string::npos);
    // Bad configurations, whatever the keys.
    const std::string keys = public_pem(m_rsa);
    for (const auto& change : std::initializer_list<void (*)(JwtConfig&)>{
             [](JwtConfig& c) { c.issuer.clear(); }, [](JwtConfig& c) { c.audience.clear(); },
             [](JwtConfig& c) { c.user_claim.clear(); }, [](JwtConfig& c) { c.algorithms.clear(); },
             [](JwtConfig& c) { c.leeway = std::chrono::seconds(-1); },
             [](JwtConfig& c) { c.leeway = std::chrono::hours(2); }}) {
        JwtConfig config = good_config();
        change(config);
        EXPECT_FALSE(load_error(keys, config).empty());
    }
}

// RFC 7517 §5: keys one cannot use are skipped, the rest serve.
TEST_F(JwtTest, JwksSkipsKeysItCannotUse)
{
    Json encryption = jwk_of(m_rsa2, "enc-1");
    encryption["use"] = "enc";
    Json other_alg = jwk_of(m_rsa2, "ps-1");
    other_alg["alg"] = "PS256";
    Json no_verify = jwk_of(m_ec2, "ops-1");
    no_verify["key_ops"] = {"encrypt"};
    Json bound = jwk_of(m_rsa, "rsa-1");
    bound["alg"] = "RS256";
    bound["use"] = "sig";
    const Json jwks = {
        {"keys",
         {Json{{"kty", "oct"}, {"kid", "hmac"}}, Json{{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "AA"}},
          Json{{"kty", "EC"}, {"crv", "P-384"}, {"x", "AA"}, {"y", "AA"}}, encryption, other_alg, no_verify,
          bound}}};
    std::string error;
    const auto validator = JwtValidator::load(good_config(), m_dir.write("mixed.json", jwks.dump()), &error);
    ASSERT_TRUE(validator) << error;
    EXPECT_EQ(validator->key_count(), 1U);
    EXPECT_EQ(refusal(*validator, token_of(rs256(), good_claims(), m_rsa)), "accepted");
    Json header = rs256();
    header["kid"] = "enc-1";
    EXPECT_EQ(refusal(*validator, token_of(header, good_claims(), m_rsa2)), "no key for this kid and alg");
}

TEST_F(JwtTest, VerifyBearerReadsTheInjectedClock)
{
    auto validator = pem_validator();
    TimePoint clock_time = now;
    validator.set_clock([&clock_time] { return clock_time; });
    const std::string token = token_of(rs256(), good_claims(), m_rsa);
    std::string_view reason;
    EXPECT_EQ(validator.verify_bearer(token, "alice@example.com", &reason).value(), "alice@example.com");
    clock_time = now + std::chrono::hours(2);
    EXPECT_FALSE(validator.verify_bearer(token, "alice@example.com", &reason));
    EXPECT_EQ(reason, "token expired");
}

// Bearer logins through the user database: the token names the user, who must exist and may log
// in; a token is checked before the database is asked.
class JwtBearerLogin : public JwtTest {
protected:
    JwtBearerLogin() : m_validator(pem_validator())
    {
        m_validator.set_clock([] { return now; });
        m_db.add_user("alice@example.com", "secret");
        UserRecord tokens_only;
        tokens_only.name = "carol@example.com"; // no password: bearer logins only
        m_db.add_record(std::move(tokens_only));
        UserRecord barred;
        barred.name = "dave@example.com";
        barred.password = SecretString("{PLAIN}secret");
        barred.extra_fields = {{"nologin", ""}};
        m_db.add_record(std::move(barred));
    }

    [[nodiscard]] std::string token_for(const std::string& user) const
    {
        Json claims = good_claims();
        claims["email"] = user;
        return token_of(rs256(), claims, m_rsa);
    }

    Result<std::string> login(const std::string& claimed_user, const std::string& token)
    {
        return verify_credentials(m_db, sasl::BearerCredentials{claimed_user, SecretString(token)},
                                  "SHA512-CRYPT", &m_validator);
    }

    JwtValidator m_validator;
    MemoryPassDb m_db;
};

TEST_F(JwtBearerLogin, ValidTokenForAnExistingUser)
{
    EXPECT_EQ(login("alice@example.com", token_for("alice@example.com")).value(), "alice@example.com");
    EXPECT_EQ(login("carol@example.com", token_for("carol@example.com")).value(), "carol@example.com");
    // The domain's case may differ; the database is asked for the token's form.
    EXPECT_EQ(login("alice@Example.COM", token_for("alice@example.com")).value(), "alice@example.com");
}

TEST_F(JwtBearerLogin, RefusedUsersAndTokens)
{
    const auto refused = make_error_code(errc::auth_failed);
    EXPECT_EQ(login("dave@example.com", token_for("dave@example.com")).error(), refused);   // nologin
    EXPECT_EQ(login("erin@example.com", token_for("erin@example.com")).error(), refused);   // unknown
    EXPECT_EQ(login("alice@example.com", token_for("carol@example.com")).error(), refused); // not hers
    EXPECT_EQ(login("alice@example.com", "secret").error(), refused);                       // a password
    EXPECT_EQ(login("alice@example.com", token_for("alice@example.com") + "x").error(), refused); // broken
    // Without a verifier, no token is any good.
    EXPECT_EQ(verify_credentials(m_db, sasl::BearerCredentials{"alice@example.com",
                                                               SecretString(token_for("alice@example.com"))})
                  .error(),
              refused);
}

TEST_F(JwtBearerLogin, TokenIsCheckedBeforeTheDatabase)
{
    // The injected failure stays pending while tokens are refused: the database was not asked.
    m_db.fail_next(make_error_code(errc::auth_temporary_failure));
    EXPECT_EQ(login("alice@example.com", "not.a.token").error(), make_error_code(errc::auth_failed));
    EXPECT_EQ(login("alice@example.com", token_for("alice@example.com")).error(),
              make_error_code(errc::auth_temporary_failure));
    EXPECT_TRUE(login("alice@example.com", token_for("alice@example.com")));
}

TEST_F(JwtBearerLogin, ThroughTheSaslMechanisms)
{
    for (const char* mechanism : {"OAUTHBEARER", "XOAUTH2"}) {
        auto client =
            sasl::make_bearer_client(mechanism, "alice@example.com",
                                     SecretString(token_for("alice@example.com")), "pop.example.com", 995);
        auto server = sasl::make_server_mechanism(mechanism);
        ASSERT_TRUE(client && server);
        auto step = server->start(client->initial_response().value());
        ASSERT_TRUE(std::holds_alternative<sasl::Verify>(step)) << mechanism;
        const auto user =
            verify_credentials(m_db, std::get<sasl::Verify>(step).credentials, "SHA512-CRYPT", &m_validator);
        ASSERT_TRUE(user) << mechanism;
        EXPECT_EQ(*user, "alice@example.com");
    }
}

} // namespace
} // namespace pigeon::auth
