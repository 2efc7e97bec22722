#include "auth/jwt_validator.hpp"

#include "core/base64.hpp"
#include "core/strings.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <optional>
#include <set>

namespace pigeon::auth {
namespace {

using Json = nlohmann::json;

struct PkeyFree {
    void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* context) const noexcept { EVP_PKEY_CTX_free(context); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* context) const noexcept { EVP_MD_CTX_free(context); }
};
struct BnFree {
    void operator()(BIGNUM* number) const noexcept { BN_free(number); }
};
struct ParamBldFree {
    void operator()(OSSL_PARAM_BLD* builder) const noexcept { OSSL_PARAM_BLD_free(builder); }
};
struct ParamFree {
    void operator()(OSSL_PARAM* params) const noexcept { OSSL_PARAM_free(params); }
};
struct EcdsaSigFree {
    void operator()(ECDSA_SIG* signature) const noexcept { ECDSA_SIG_free(signature); }
};
struct BioFree {
    void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct X509Free {
    void operator()(X509* certificate) const noexcept { X509_free(certificate); }
};
struct OpensslFree {
    void operator()(void* memory) const noexcept { OPENSSL_free(memory); }
};

using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, ParamFree>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

// The key types Pigeon verifies with; each serves exactly one algorithm, so a token cannot make
// a key do a job it was not made for (RFC 8725 §3.1, "algorithm confusion").
enum class KeyType {
    rsa,     // RS256
    ec_p256, // ES256
};

// RFC 7518 §3.4: an ES256 signature is R and S, each a 32-octet big-endian integer, concatenated.
constexpr std::size_t es256_coordinate_octets = 32;

// RFC 7518 §6.3.1 and §6.2.1: JWK members holding private key material. Their presence means the
// operator exported the wrong half of the key pair.
constexpr std::array<std::string_view, 8> private_jwk_members = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

// A user name is at most 255 octets elsewhere in Pigeon (PLAIN's fields, maildrop paths); a
// longer claim cannot name a user we have.
constexpr std::size_t max_user_name_octets = 255;

// A leeway of hours would make "exp" meaningless.
constexpr std::chrono::seconds max_leeway{3600};

// 9999-12-31T23:59:59Z: a NumericDate beyond this is not a date any issuer means, and keeping
// dates below it keeps the arithmetic far from overflow.
constexpr std::int64_t max_numeric_date = 253402300799;

std::optional<KeyType> key_type_for(std::string_view algorithm) noexcept
{
    if (algorithm == "RS256") {
        return KeyType::rsa;
    }
    if (algorithm == "ES256") {
        return KeyType::ec_p256;
    }
    return std::nullopt;
}

// OpenSSL keeps errors in a per-thread queue; left there they would be blamed on the next
// unrelated call in this thread. Every path out of OpenSSL code here clears it.
struct ErrorQueueGuard {
    ErrorQueueGuard() = default;
    ErrorQueueGuard(const ErrorQueueGuard&) = delete;
    ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
    ~ErrorQueueGuard() { ERR_clear_error(); }
};

// Parses `text` as JSON without exceptions, refusing what a lax parser would accept silently:
// nesting deeper than max_jwt_json_depth, and duplicate member names, which RFC 7515 §5.2 and
// RFC 7519 §4 let a validator refuse and which would otherwise let two parsers read one token
// differently. Nothing if the text is not one well-formed JSON value (nlohmann also refuses
// invalid UTF-8).
std::optional<Json> parse_json(std::string_view text)
{
    bool too_deep = false;
    bool duplicate = false;
    std::vector<std::set<std::string>> member_names; // one set per open object
    const Json::parser_callback_t check = [&](int depth, Json::parse_event_t event, Json& parsed) {
        switch (event) {
        case Json::parse_event_t::object_start: member_names.emplace_back(); [[fallthrough]];
        case Json::parse_event_t::array_start:
            // `depth` counts the containers around this one.
            if (depth >= max_jwt_json_depth) {
                too_deep = true;
            }
            break;
        case Json::parse_event_t::key:
            if (!member_names.empty() && parsed.is_string() &&
                !member_names.back().insert(parsed.get<std::string>()).second) {
                duplicate = true;
            }
            break;
        case Json::parse_event_t::object_end:
            if (!member_names.empty()) {
                member_names.pop_back();
            }
            break;
        default: break;
        }
        return true; // keep everything: discarding would skip the object_end events counted above
    };
    Json value = Json::parse(text.begin(), text.end(), check, /*allow_exceptions=*/false);
    if (value.is_discarded() || too_deep || duplicate) {
        return std::nullopt;
    }
    return value;
}

std::optional<std::string> string_member(const Json& object, std::string_view name)
{
    const auto found = object.find(name);
    if (found == object.end() || !found->is_string()) {
        return std::nullopt;
    }
    return found->get<std::string>();
}

// RFC 7519 §2 NumericDate: seconds since the epoch, possibly fractional; returned in
// milliseconds, so a fractional date is compared as written rather than rounded to a second.
std::optional<std::int64_t> numeric_date_ms(const Json& value)
{
    constexpr std::int64_t ms_per_second = 1000;
    if (value.is_number_unsigned()) {
        const auto seconds = value.get<std::uint64_t>();
        if (seconds > static_cast<std::uint64_t>(max_numeric_date)) {
            return std::nullopt;
        }
        return static_cast<std::int64_t>(seconds) * ms_per_second;
    }
    if (value.is_number_integer()) {
        const auto seconds = value.get<std::int64_t>();
        if (seconds < 0 || seconds > max_numeric_date) {
            return std::nullopt;
        }
        return seconds * ms_per_second;
    }
    if (value.is_number_float()) {
        const double seconds = value.get<double>();
        if (!std::isfinite(seconds) || seconds < 0 || seconds > static_cast<double>(max_numeric_date)) {
            return std::nullopt;
        }
        return static_cast<std::int64_t>(std::floor(seconds * static_cast<double>(ms_per_second)));
    }
    return std::nullopt;
}

// RFC 5321 §2.4: the local part may be case-sensitive, the domain is not. A name without '@'
// (a "sub" or "preferred_username") is compared exactly.
bool same_user(std::string_view claimed, std::string_view token_user) noexcept
{
    const std::size_t claimed_at = claimed.rfind('@');
    const std::size_t token_at = token_user.rfind('@');
    if (claimed_at == std::string_view::npos || token_at == std::string_view::npos) {
        return claimed_at == token_at && claimed == token_user;
    }
    return claimed.substr(0, claimed_at) == token_user.substr(0, token_at) &&
           iequals(claimed.substr(claimed_at + 1), token_user.substr(token_at + 1));
}

bool verify_signature(KeyType type, EVP_PKEY* key, std::string_view signing_input, std::string_view signature)
{
    const ErrorQueueGuard clear_errors;
    std::string der; // ES256: the DER form OpenSSL verifies
    std::string_view to_verify = signature;
    if (type == KeyType::ec_p256) {
        // RFC 7518 §3.4: exactly 64 octets, R then S; OpenSSL wants DER's ECDSA-Sig-Value.
        if (signature.size() != 2 * es256_coordinate_octets) {
            return false;
        }
        const auto* raw = reinterpret_cast<const unsigned char*>(signature.data());
        BnPtr r(BN_bin2bn(raw, es256_coordinate_octets, nullptr));
        BnPtr s(BN_bin2bn(raw + es256_coordinate_octets, es256_coordinate_octets, nullptr));
        EcdsaSigPtr ecdsa(ECDSA_SIG_new());
        if (!r || !s || !ecdsa || ECDSA_SIG_set0(ecdsa.get(), r.get(), s.get()) != 1) {
            return false;
        }
        static_cast<void>(r.release()); // owned by `ecdsa` now
        static_cast<void>(s.release());
        const int length = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
        if (length <= 0) {
            return false;
        }
        der.resize(static_cast<std::size_t>(length));
        auto* out = reinterpret_cast<unsigned char*>(der.data());
        if (i2d_ECDSA_SIG(ecdsa.get(), &out) != length) {
            return false;
        }
        to_verify = der;
    } else if (signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key))) {
        // RFC 8017 §8.2.2: the signature is exactly as long as the modulus.
        return false;
    }
    MdCtxPtr context(EVP_MD_CTX_new());
    EVP_PKEY_CTX* key_context = nullptr; // owned by `context`
    if (!context ||
        EVP_DigestVerifyInit_ex(context.get(), &key_context, "SHA256", nullptr, nullptr, key, nullptr) != 1) {
        return false;
    }
    if (type == KeyType::rsa && EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING) != 1) {
        return false;
    }
    return EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(to_verify.data()),
                            to_verify.size(), reinterpret_cast<const unsigned char*>(signing_input.data()),
                            signing_input.size()) == 1;
}

} // namespace

struct JwtValidator::Key {
    std::string kid;       // empty for keys from PEM, and for JWKs without one
    std::string algorithm; // the JWK's "alg", if it named one: the key then serves that only
    KeyType type = KeyType::rsa;
    PkeyPtr key;
};

namespace {

using Key = JwtValidator::Key;

// The key's type if Pigeon can verify with it, or a sentence saying why not.
std::optional<KeyType> classify(EVP_PKEY* key, std::string& why)
{
    const int id = EVP_PKEY_get_base_id(key);
    if (id == EVP_PKEY_RSA) {
        const int bits = EVP_PKEY_get_bits(key);
        if (bits < min_rsa_key_bits) {
            why = fmt::format("RSA key of {} bits; RS256 needs at least {} (RFC 7518 §3.3)", bits,
                              min_rsa_key_bits);
            return std::nullopt;
        }
        return KeyType::rsa;
    }
    if (id == EVP_PKEY_EC) {
        std::array<char, 64> group{};
        std::size_t length = 0;
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(),
                                           &length) != 1 ||
            std::string_view(group.data(), length) != SN_X9_62_prime256v1) {
            why = "EC key not on curve P-256 (ES256 is the only ECDSA algorithm accepted)";
            return std::nullopt;
        }
        return KeyType::ec_p256;
    }
    const char* name = OBJ_nid2sn(id);
    why = fmt::format("key type {} not usable with RS256 or ES256", name != nullptr ? name : "unknown");
    return std::nullopt;
}

// OpenSSL's checks of a public key (RSA: odd modulus, sane exponent, no small factors; EC: the
// point is on the curve and not at infinity).
bool passes_public_check(EVP_PKEY* key)
{
    PkeyCtxPtr context(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    return context && EVP_PKEY_public_check(context.get()) == 1;
}

PkeyPtr key_from_params(const char* type_name, OSSL_PARAM_BLD* builder)
{
    ParamPtr params(OSSL_PARAM_BLD_to_param(builder));
    PkeyCtxPtr context(EVP_PKEY_CTX_new_from_name(nullptr, type_name, nullptr));
    EVP_PKEY* made = nullptr;
    if (!params || !context || EVP_PKEY_fromdata_init(context.get()) != 1 ||
        EVP_PKEY_fromdata(context.get(), &made, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        return nullptr;
    }
    return PkeyPtr(made);
}

// RFC 7518 §6.3.1: "n" and "e" are base64url big-endian unsigned integers.
PkeyPtr rsa_key_from_jwk(const Json& jwk, std::string& why)
{
    const auto n_text = string_member(jwk, "n");
    const auto e_text = string_member(jwk, "e");
    if (!n_text || !e_text) {
        why = R"(RSA JWK without string members "n" and "e")";
        return nullptr;
    }
    const auto n_bytes = base64url_decode(*n_text);
    const auto e_bytes = base64url_decode(*e_text);
    if (!n_bytes || !e_bytes || n_bytes->empty() || e_bytes->empty()) {
        why = R"(RSA JWK with "n" or "e" not in base64url)";
        return nullptr;
    }
    BnPtr n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n_bytes->data()),
                      static_cast<int>(n_bytes->size()), nullptr));
    BnPtr e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e_bytes->data()),
                      static_cast<int>(e_bytes->size()), nullptr));
    ParamBldPtr builder(OSSL_PARAM_BLD_new());
    if (!n || !e || !builder || OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
        why = "out of memory building an RSA key";
        return nullptr;
    }
    PkeyPtr key = key_from_params("RSA", builder.get());
    if (!key) {
        why = "RSA JWK that OpenSSL does not accept as a public key";
    }
    return key;
}

// RFC 7518 §6.2.1: "x" and "y" are base64url coordinates of exactly the curve's size (32 octets
// for P-256, §6.2.1.2 and §6.2.1.3), made into an uncompressed point (SEC 1 §2.3.3: 0x04 x y).
PkeyPtr ec_key_from_jwk(const Json& jwk, std::string& why)
{
    const auto x_text = string_member(jwk, "x");
    const auto y_text = string_member(jwk, "y");
    if (!x_text || !y_text) {
        why = R"(EC JWK without string members "x" and "y")";
        return nullptr;
    }
    const auto x = base64url_decode(*x_text);
    const auto y = base64url_decode(*y_text);
    if (!x || !y || x->size() != es256_coordinate_octets || y->size() != es256_coordinate_octets) {
        why = R"(P-256 JWK whose "x" or "y" is not 32 octets in base64url)";
        return nullptr;
    }
    std::string point = "\x04" + *x + *y;
    ParamBldPtr builder(OSSL_PARAM_BLD_new());
    if (!builder ||
        OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1, 0) !=
            1 ||
        OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
        why = "out of memory building an EC key";
        return nullptr;
    }
    PkeyPtr key = key_from_params("EC", builder.get());
    if (!key) {
        why = "P-256 JWK whose point is not on the curve";
    }
    return key;
}

// One member of a JWKS's "keys": a key, nothing (skipped: RFC 7517 §5 asks to ignore keys one
// does not understand), or nothing with `why` set (an error).
std::optional<Key> key_from_jwk(const Json& jwk, std::string& why)
{
    if (!jwk.is_object()) {
        why = "a member of \"keys\" is not a JSON object";
        return std::nullopt;
    }
    const auto kty = string_member(jwk, "kty");
    if (!kty) {
        why = "a JWK without a string \"kty\" (RFC 7517 §4.1)";
        return std::nullopt;
    }
    for (const std::string_view member : private_jwk_members) {
        if (jwk.contains(member)) {
            why = fmt::format("a JWK holds private key material (\"{}\"); give the public keys only", member);
            return std::nullopt;
        }
    }
    for (const char* member : {"kid", "use", "alg"}) {
        if (jwk.contains(member) && !jwk[member].is_string()) {
            why = fmt::format("a JWK whose \"{}\" is not a string", member);
            return std::nullopt;
        }
    }
    // RFC 7517 §4.2 and §4.3: a key for encryption, or one not allowed to verify, is not for us.
    if (jwk.contains("use") && jwk["use"] != "sig") {
        return std::nullopt;
    }
    if (const auto ops = jwk.find("key_ops"); ops != jwk.end()) {
        if (!ops->is_array() || std::find(ops->begin(), ops->end(), Json("verify")) == ops->end()) {
            return std::nullopt;
        }
    }
    Key key;
    key.kid = string_member(jwk, "kid").value_or("");
    key.algorithm = string_member(jwk, "alg").value_or("");
    if (!key.algorithm.empty() && !key_type_for(key.algorithm)) {
        return std::nullopt; // RS384, PS256, RSA-OAEP, ...: not an algorithm Pigeon verifies
    }
    if (*kty == "RSA") {
        key.key = rsa_key_from_jwk(jwk, why);
    } else if (*kty == "EC") {
        if (string_member(jwk, "crv") != "P-256") {
            return std::nullopt;
        }
        key.key = ec_key_from_jwk(jwk, why);
    } else {
        return std::nullopt; // "oct" (a shared secret: never for us), "OKP", ...
    }
    if (!key.key) {
        return std::nullopt;
    }
    const auto type = classify(key.key.get(), why);
    if (!type) {
        return std::nullopt;
    }
    key.type = *type;
    if (!key.algorithm.empty() && key_type_for(key.algorithm) != key.type) {
        why = fmt::format("a JWK whose \"alg\" {} does not fit its key type", key.algorithm);
        return std::nullopt;
    }
    return key;
}

bool load_jwks(std::string_view text, std::vector<Key>& keys, std::string& why)
{
    const auto jwks = parse_json(text);
    if (!jwks || !jwks->is_object()) {
        why = "not a JSON object (or nested too deeply, or with duplicate member names)";
        return false;
    }
    const auto members = jwks->find("keys");
    if (members == jwks->end() || !members->is_array()) {
        why = "a JWK Set needs a \"keys\" array (RFC 7517 §5)";
        return false;
    }
    for (const Json& jwk : *members) {
        auto key = key_from_jwk(jwk, why);
        if (!why.empty()) {
            return false;
        }
        if (key) {
            keys.push_back(std::move(*key));
        }
    }
    return true;
}

// A key from one PEM block, or nothing with `why` set.
PkeyPtr key_from_pem_block(std::string_view name, const unsigned char* data, long length, std::string& why)
{
    const unsigned char* cursor = data;
    PkeyPtr key;
    if (name == "PUBLIC KEY") {
        key.reset(d2i_PUBKEY(nullptr, &cursor, length));
    } else if (name == "RSA PUBLIC KEY") {
        key.reset(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &cursor, length));
    } else if (name == "CERTIFICATE") {
        // Only the key is used: the certificate's dates and issuer mean nothing to JWS.
        const X509Ptr certificate(d2i_X509(nullptr, &cursor, length));
        if (certificate) {
            key.reset(X509_get_pubkey(certificate.get()));
        }
    } else if (name.find("PRIVATE KEY") != std::string_view::npos) {
        why = "it holds a private key; give the public keys only";
        return nullptr;
    } else {
        why = fmt::format("unexpected PEM block \"{}\" (expected PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)",
                          name);
        return nullptr;
    }
    if (!key || cursor != data + length) {
        why = fmt::format("a damaged \"{}\" PEM block", name);
        return nullptr;
    }
    return key;
}

bool load_pem(std::string_view text, std::vector<Key>& keys, std::string& why)
{
    BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    if (!bio) {
        why = "out of memory";
        return false;
    }
    for (;;) {
        char* name = nullptr;
        char* header = nullptr;
        unsigned char* data = nullptr;
        long length = 0;
        const int read = PEM_read_bio(bio.get(), &name, &header, &data, &length);
        const std::unique_ptr<char, OpensslFree> owned_name(name);
        const std::unique_ptr<char, OpensslFree> owned_header(header);
        const std::unique_ptr<unsigned char, OpensslFree> owned_data(data);
        if (read != 1) {
            // PEM_R_NO_START_LINE: no further "-----BEGIN" line, the normal end of the file.
            if (ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE && !keys.empty()) {
                return true;
            }
            why = keys.empty() ? "neither a JWK Set nor PEM with a public key" : "a damaged PEM block";
            return false;
        }
        PkeyPtr key = key_from_pem_block(name, data, length, why);
        if (!key) {
            return false;
        }
        const auto type = classify(key.get(), why);
        if (!type) {
            return false;
        }
        keys.push_back(Key{{}, {}, *type, std::move(key)});
    }
}

bool read_key_file(const std::filesystem::path& path, std::string& text, std::string& why)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        why = "cannot be opened";
        return false;
    }
    text.assign(max_jwt_key_file_octets + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) {
        why = "cannot be read";
        return false;
    }
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_jwt_key_file_octets) {
        why = fmt::format("larger than {} octets: not a key file", max_jwt_key_file_octets);
        return false;
    }
    return true;
}

std::string check_config(const JwtConfig& config)
{
    if (config.issuer.empty() || config.audience.empty() || config.user_claim.empty()) {
        return "issuer, audience and user claim must all be set";
    }
    if (config.leeway < std::chrono::seconds::zero() || config.leeway > max_leeway) {
        return fmt::format("leeway must be between 0 and {} seconds", max_leeway.count());
    }
    if (config.algorithms.empty()) {
        return "no algorithm allowed";
    }
    for (const std::string& algorithm : config.algorithms) {
        if (!key_type_for(algorithm)) {
            return fmt::format("algorithm \"{}\" not supported (only RS256 and ES256; never none or HS*)",
                               algorithm);
        }
    }
    return {};
}

bool audience_matches(const Json& aud, std::string_view audience)
{
    if (aud.is_string()) {
        return aud.get_ref<const std::string&>() == audience;
    }
    if (!aud.is_array()) {
        return false;
    }
    bool found = false;
    for (const Json& member : aud) {
        if (!member.is_string()) {
            return false; // RFC 7519 §4.1.3: an array of case-sensitive strings
        }
        found = found || member.get_ref<const std::string&>() == audience;
    }
    return found;
}

// RFC 7515 §3.1: BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(signature), each part
// non-empty here ("none" is refused, so an empty signature never verifies anyway).
struct CompactParts {
    std::string_view header;
    std::string_view payload;
    std::string_view signature;
    std::string_view signing_input; // header '.' payload, what the signature covers
};

std::optional<CompactParts> split_compact(std::string_view token)
{
    const std::size_t first = token.find('.');
    if (first == std::string_view::npos) {
        return std::nullopt;
    }
    const std::size_t second = token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    CompactParts parts{token.substr(0, first), token.substr(first + 1, second - first - 1),
                       token.substr(second + 1), token.substr(0, second)};
    if (parts.header.empty() || parts.payload.empty() || parts.signature.empty()) {
        return std::nullopt;
    }
    return parts;
}

// RFC 7515 §4.1.9 and RFC 9068 §2.1: the media types a JWT access token or ID token carries.
bool acceptable_typ(std::string_view typ) noexcept
{
    return iequals(typ, "JWT") || iequals(typ, "at+jwt") || iequals(typ, "application/jwt") ||
           iequals(typ, "application/at+jwt");
}

} // namespace

JwtValidator::JwtValidator() = default;
JwtValidator::JwtValidator(JwtValidator&&) noexcept = default;
JwtValidator& JwtValidator::operator=(JwtValidator&&) noexcept = default;
JwtValidator::~JwtValidator() = default;

std::size_t JwtValidator::key_count() const noexcept
{
    return m_keys.size();
}

Result<JwtValidator> JwtValidator::load(const JwtConfig& config, const std::filesystem::path& key_file,
                                        std::string* error_message)
{
    const ErrorQueueGuard clear_errors;
    const auto refuse = [error_message](std::string message) {
        if (error_message != nullptr) {
            *error_message = std::move(message);
        }
        return fail(errc::auth_temporary_failure);
    };
    if (std::string why = check_config(config); !why.empty()) {
        return refuse("bearer token configuration: " + why);
    }
    std::string text;
    std::string why;
    if (!read_key_file(key_file, text, why)) {
        return refuse(fmt::format("{}: {}", key_file.string(), why));
    }
    JwtValidator validator;
    const std::size_t start = text.find_first_not_of(" \t\r\n");
    const bool is_jwks = start != std::string::npos && text[start] == '{';
    if (!(is_jwks ? load_jwks(text, validator.m_keys, why) : load_pem(text, validator.m_keys, why))) {
        return refuse(fmt::format("{}: {}", key_file.string(), why));
    }
    if (validator.m_keys.empty()) {
        return refuse(fmt::format("{}: no RSA or P-256 signature key", key_file.string()));
    }
    std::set<std::string_view> kids;
    for (const Key& key : validator.m_keys) {
        if (!passes_public_check(key.key.get())) {
            return refuse(fmt::format("{}: a key fails OpenSSL's public key check", key_file.string()));
        }
        if (!key.kid.empty() && !kids.insert(key.kid).second) {
            return refuse(fmt::format("{}: kid \"{}\" names two keys", key_file.string(), key.kid));
        }
    }
    validator.m_config = config;
    return validator;
}

Result<std::string> JwtValidator::verify_bearer(std::string_view token, std::string_view claimed_user,
                                                std::string_view* reason) const
{
    return validate(token, claimed_user, m_clock(), reason);
}

Result<std::string> JwtValidator::validate(std::string_view token, std::string_view claimed_user,
                                           std::chrono::system_clock::time_point now,
                                           std::string_view* reason) const
{
    const auto refuse = [reason](std::string_view why) {
        if (reason != nullptr) {
            *reason = why;
        }
        return fail(errc::auth_failed);
    };
    if (token.size() > max_jwt_octets) {
        return refuse("token too long");
    }
    const auto parts = split_compact(token);
    if (!parts) {
        return refuse("not a JWS compact serialisation");
    }

    // RFC 7515 §5.2: the header first; nothing in it is trusted beyond choosing among our keys.
    const auto header_text = base64url_decode(parts->header);
    if (!header_text) {
        return refuse("header not base64url");
    }
    const auto header = parse_json(*header_text);
    if (!header || !header->is_object()) {
        return refuse("header not a JSON object");
    }
    const auto algorithm = string_member(*header, "alg");
    if (!algorithm) {
        return refuse("no alg");
    }
    // RFC 8725 §3.1: only the configured algorithms, each tied to a key type ("none" and HS256
    // are never configurable, so a public key can never be used as an HMAC secret).
    const auto type = key_type_for(*algorithm);
    if (!type || std::find(m_config.algorithms.begin(), m_config.algorithms.end(), *algorithm) ==
                     m_config.algorithms.end()) {
        return refuse("alg not allowed");
    }
    // RFC 7515 §4.1.11: extensions that must be understood; Pigeon understands none.
    if (header->contains("crit")) {
        return refuse("crit header not supported");
    }
    if (header->contains("typ") &&
        !(header->at("typ").is_string() && acceptable_typ(header->at("typ").get_ref<const std::string&>()))) {
        return refuse("typ not a JWT");
    }
    if (header->contains("kid") && !header->at("kid").is_string()) {
        return refuse("kid not a string");
    }
    // "jwk", "jku", "x5u", "x5c" and any other header naming a key are ignored: the keys are the
    // configured ones only (RFC 8725 §3.10).
    const std::optional<std::string> kid = string_member(*header, "kid");

    const auto signature = base64url_decode(parts->signature);
    if (!signature) {
        return refuse("signature not base64url");
    }
    // With a kid, the key of that kid; a token naming a kid that no JWK has may still be checked
    // against keys that have none (those from PEM). Without a kid, every key of the right type.
    const auto fits = [&](const Key& key) {
        return key.type == *type && (key.algorithm.empty() || key.algorithm == *algorithm);
    };
    const bool kid_known =
        kid && std::any_of(m_keys.begin(), m_keys.end(), [&](const Key& key) { return key.kid == *kid; });
    bool tried = false;
    bool verified = false;
    for (const Key& key : m_keys) {
        if (!fits(key) || (kid_known && key.kid != *kid) || (kid && !kid_known && !key.kid.empty())) {
            continue;
        }
        tried = true;
        if (verify_signature(key.type, key.key.get(), parts->signing_input, *signature)) {
            verified = true;
            break;
        }
    }
    if (!tried) {
        return refuse("no key for this kid and alg");
    }
    if (!verified) {
        return refuse("bad signature");
    }

    // RFC 7519 §7.2: the claims, now that the issuer's signature vouches for them.
    const auto claims_text = base64url_decode(parts->payload);
    if (!claims_text) {
        return refuse("claims not base64url");
    }
    const auto claims = parse_json(*claims_text);
    if (!claims || !claims->is_object()) {
        return refuse("claims not a JSON object");
    }
    if (string_member(*claims, "iss") != m_config.issuer) {
        return refuse("issuer mismatch");
    }
    const auto aud = claims->find("aud");
    if (aud == claims->end()) {
        return refuse("no aud");
    }
    if (!audience_matches(*aud, m_config.audience)) {
        return refuse("audience mismatch");
    }
    // All three dates in milliseconds since the epoch.
    const std::int64_t now_ms = std::chrono::floor<std::chrono::milliseconds>(now).time_since_epoch().count();
    const std::int64_t leeway_ms = std::chrono::milliseconds(m_config.leeway).count();
    // RFC 7519 §4.1.4: "the current date/time MUST be before the expiration date/time".
    const auto exp_member = claims->find("exp");
    if (exp_member == claims->end()) {
        return refuse("no exp");
    }
    const auto exp = numeric_date_ms(*exp_member);
    if (!exp) {
        return refuse("exp not a NumericDate");
    }
    if (now_ms >= *exp + leeway_ms) {
        return refuse("token expired");
    }
    // RFC 7519 §4.1.5: not before "nbf".
    if (const auto nbf_member = claims->find("nbf"); nbf_member != claims->end()) {
        const auto nbf = numeric_date_ms(*nbf_member);
        if (!nbf) {
            return refuse("nbf not a NumericDate");
        }
        if (now_ms + leeway_ms < *nbf) {
            return refuse("token not yet valid");
        }
    }
    // RFC 7519 §4.1.6: "iat" is informational, but one in the future means a broken issuer clock
    // or a forged date; refused like nbf.
    if (const auto iat_member = claims->find("iat"); iat_member != claims->end()) {
        const auto iat = numeric_date_ms(*iat_member);
        if (!iat) {
            return refuse("iat not a NumericDate");
        }
        if (now_ms + leeway_ms < *iat) {
            return refuse("token issued in the future");
        }
    }

    auto user = string_member(*claims, m_config.user_claim);
    if (!user || user->empty()) {
        return refuse("no user claim");
    }
    if (user->size() > max_user_name_octets || has_control_characters(*user)) {
        return refuse("user claim not a user name");
    }
    // OpenID Connect Core §5.1: an address the provider has not verified proves nothing. Some
    // providers (Amazon Cognito) write the boolean as a string.
    if (m_config.user_claim == "email") {
        if (const auto verified_member = claims->find("email_verified"); verified_member != claims->end()) {
            if (!(*verified_member == true || *verified_member == "true")) {
                return refuse("email not verified");
            }
        }
    }
    if (!claimed_user.empty() && !same_user(claimed_user, *user)) {
        return refuse("token issued to another user");
    }
    return std::move(*user);
}

} // namespace pigeon::auth
