// Local validation of OAuth 2.0 bearer tokens that are JSON Web Tokens (RFC 7519) signed as JWS
// compact serialisations (RFC 7515), for SASL OAUTHBEARER (RFC 7628) and XOAUTH2. The token is
// checked against public keys the operator configured (a PEM file or a JWKS file) and against the
// configured issuer and audience; no network, no token introspection, no key fetching.
//
// What it owns: splitting and decoding the token, the algorithm allow-list (RS256, ES256 only:
// never "none", never HMAC, never an algorithm the key was not made for), signature checks through
// OpenSSL 3's EVP interface, and the registered claims (iss, aud, exp, nbf, iat) plus the claim
// that names the user. It must not know: POP3, SASL framing (sasl/external_bearer.cpp hands over
// the bare token), user databases (verify_credentials() in passdb.hpp looks the user up), clocks
// (the caller passes the time).
//
// Thread-safety: a loaded JwtValidator is immutable; validate() may run on many threads at once
// (OpenSSL 3 allows concurrent verification with one EVP_PKEY). set_clock() must happen before the
// validator is shared.
#pragma once

#include "auth/passdb.hpp"
#include "core/result.hpp"

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pigeon::auth {

// The largest token accepted, in octets of its compact serialisation. Access tokens from
// Microsoft's identity platform, the largest in common use, run to 2-3 KiB; 8 KiB is far above
// any seen in practice and matches the bound the SASL bearer mechanisms apply
// (sasl/external_bearer.cpp), so a hostile client cannot make us decode and parse more.
inline constexpr std::size_t max_jwt_octets = std::size_t{8} * 1024;

// The deepest nesting of JSON arrays and objects accepted in a JOSE header or claims set. Both are
// flat objects in practice ("aud" adds one array; providers' role claims add one or two levels);
// the bound keeps a crafted token from costing more than a handful of containers.
inline constexpr int max_jwt_json_depth = 8;

// The largest key file read, in octets: a JWKS of a few dozen keys, or a PEM bundle of them, is
// far smaller; a bigger file is a mistake (a wrong path), not a key set.
inline constexpr std::size_t max_jwt_key_file_octets = std::size_t{1024} * 1024;

// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3: "A key of size 2048 bits or larger
// MUST be used with these algorithms").
inline constexpr int min_rsa_key_bits = 2048;

struct JwtConfig {
    // RFC 7519 §4.1.1: the "iss" claim must equal this, compared as a case-sensitive string.
    std::string issuer;
    // RFC 7519 §4.1.3: "aud" (a string or an array of strings) must contain this.
    std::string audience;
    // The claim whose (string) value is the user name: "email" (the default), "sub" or
    // "preferred_username" are the usual choices. With "email", a present "email_verified" claim
    // must be true.
    std::string user_claim = "email";
    // Tolerated clock difference between the token issuer and this server, for exp, nbf and iat.
    std::chrono::seconds leeway{60};
    // The algorithms a token may name ("alg" header); each must be RS256 or ES256.
    std::vector<std::string> algorithms{"RS256", "ES256"};
};

class JwtValidator final : public BearerVerifier {
public:
    using Clock = std::function<std::chrono::system_clock::time_point()>;

    // Reads the public keys in `key_file` and checks the configuration. The file is either a JWK
    // Set (RFC 7517 §5, recognised by its first non-blank character being '{') or PEM: one or
    // more "PUBLIC KEY" (SubjectPublicKeyInfo), "RSA PUBLIC KEY" (PKCS#1) or "CERTIFICATE" blocks.
    //
    // Fails with errc::auth_temporary_failure (bearer logins cannot work: the operator must fix
    // the setup) when the file cannot be read, is larger than max_jwt_key_file_octets, holds a
    // private key, an RSA key below min_rsa_key_bits, an EC key not on P-256, a malformed JWK, a
    // duplicate "kid", or no usable key at all, or when the configuration names an algorithm
    // other than RS256/ES256 or leaves issuer, audience or user_claim empty. `error_message`, if
    // given, receives a sentence for the operator naming the file and the problem.
    //
    // In a JWKS, keys of a type or curve Pigeon does not verify with ("oct", "OKP", P-384, ...)
    // and keys whose "use" is not "sig" are skipped, as RFC 7517 §5 asks; PEM files hold only what
    // the operator put there, so anything unusable in them is an error.
    [[nodiscard]] static Result<JwtValidator> load(const JwtConfig& config,
                                                   const std::filesystem::path& key_file,
                                                   std::string* error_message = nullptr);

    // The user name the token proves (the value of the configured user claim), or
    // errc::auth_failed. `claimed_user` is the name the client gave with the token (OAUTHBEARER's
    // authzid, XOAUTH2's user=); when it is not empty it must name the same user as the token: the
    // part before the last '@' compared exactly (RFC 5321 §2.4: a local part may be
    // case-sensitive), the domain after it compared ignoring ASCII case (domains are
    // case-insensitive). `now` is the current time: no clock is read here.
    //
    // `reason`, if given, receives a short fixed text for the log on failure ("token expired",
    // "bad signature", ...); it never contains any part of the token.
    [[nodiscard]] Result<std::string> validate(std::string_view token, std::string_view claimed_user,
                                               std::chrono::system_clock::time_point now,
                                               std::string_view* reason = nullptr) const;

    // BearerVerifier: validate() at the time the clock gives (the system clock unless replaced).
    [[nodiscard]] Result<std::string> verify_bearer(std::string_view token, std::string_view claimed_user,
                                                    std::string_view* reason) const override;

    // Replaces the clock verify_bearer() reads (tests fix it). Not thread-safe: call it before
    // the validator is shared.
    void set_clock(Clock clock) { m_clock = std::move(clock); }

    // The number of keys loaded (for a start-up log line).
    [[nodiscard]] std::size_t key_count() const noexcept;

    JwtValidator(JwtValidator&& other) noexcept;
    JwtValidator& operator=(JwtValidator&& other) noexcept;
    JwtValidator(const JwtValidator&) = delete;
    JwtValidator& operator=(const JwtValidator&) = delete;
    ~JwtValidator() override;

    struct Key; // a public key with its kid and type; defined in jwt_validator.cpp

private:
    JwtValidator();

    JwtConfig m_config;
    std::vector<Key> m_keys;
    Clock m_clock = [] { return std::chrono::system_clock::now(); };
};

} // namespace pigeon::auth
