#include "auth/passdb.hpp"

#include "auth/password_scheme.hpp"
#include "core/strings.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <map>
#include <mutex>

namespace pigeon::auth {

std::optional<std::string_view> UserRecord::extra_field(std::string_view key) const noexcept
{
    for (const auto& [field, value] : extra_fields) {
        if (field == key) {
            return std::string_view(value);
        }
    }
    return std::nullopt;
}

UserRecord UserRecord::copy() const
{
    UserRecord out;
    out.name = name;
    out.password = SecretString(std::string(password.view()));
    out.uid = uid;
    out.gid = gid;
    out.home = home;
    out.extra_fields = extra_fields;
    return out;
}

namespace {

// An unknown user (or one without a password) must cost the attacker the time of a wrong
// password, or response times tell which user names exist: such logins are checked against a
// dummy hash of the scheme the server's users are hashed with. Each is made once, on first use,
// with password_scheme.cpp's salt and cost (so it tracks them instead of hard-coding a value).
const std::string& dummy_hash(PasswordScheme scheme)
{
    static std::mutex mutex;
    static std::map<PasswordScheme, std::string> hashes;
    const std::lock_guard guard(mutex);
    auto found = hashes.find(scheme);
    if (found == hashes.end()) {
        auto made = hash_password(scheme, "pigeon-timing-equaliser");
        // Hashing only fails when the system is out of randomness or memory; a login then fails
        // anyway, so a cheap stand-in does no harm.
        found =
            hashes.emplace(scheme, made ? std::move(*made) : std::string("{PLAIN}pigeon-timing-equaliser"))
                .first;
    }
    return found->second; // std::map never moves its elements
}

void spend_dummy_verification(const sasl::Credentials& credentials, std::string_view scheme_name_text)
{
    if (const auto* password = std::get_if<sasl::PasswordCredentials>(&credentials)) {
        // A scheme name Pigeon does not know (a configuration mistake) still costs a real hash:
        // SHA512-CRYPT's, the default of verify_credentials().
        const PasswordScheme scheme =
            scheme_from_name(scheme_name_text).value_or(PasswordScheme::sha512_crypt);
        static_cast<void>(verify_password(dummy_hash(scheme), password->password.view()));
    } else if (const auto* apop = std::get_if<sasl::ApopCredentials>(&credentials)) {
        static_cast<void>(
            constant_time_equals(apop_digest(apop->timestamp, "pigeon-timing-equaliser"), apop->digest));
    }
}

// RFC 1939 §7 APOP needs the shared secret itself, so only a password stored as "{PLAIN}..." can
// serve it (Dovecot has the same rule). Backends turn an unprefixed password into
// "{default_scheme}...", so an unprefixed password counts here only where that default is PLAIN.
std::optional<std::string_view> plain_secret(std::string_view stored)
{
    constexpr std::string_view prefix = "{PLAIN}";
    if (stored.size() < prefix.size() || !iequals(stored.substr(0, prefix.size()), prefix)) {
        return std::nullopt;
    }
    return stored.substr(prefix.size());
}

// RFC 1939 §7 calls the digest hexadecimal without fixing its case; apop_digest() writes lower case.
std::string ascii_lower(std::string_view text)
{
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

Result<bool> matches(const UserRecord& user, const sasl::Credentials& credentials)
{
    const std::string_view stored = user.password.view();
    if (const auto* password = std::get_if<sasl::PasswordCredentials>(&credentials)) {
        // RFC 4616 §2: an authzid other than the authcid asks to act as another user, which needs
        // master users; the PLAIN mechanism refuses it already, and so does this, in case a
        // future mechanism forgets.
        if (!password->authzid.empty() && password->authzid != password->authcid) {
            return false;
        }
        return verify_password(stored, password->password.view());
    }
    if (const auto* apop = std::get_if<sasl::ApopCredentials>(&credentials)) {
        const auto secret = plain_secret(stored);
        if (!secret) {
            return false;
        }
        return constant_time_equals(apop_digest(apop->timestamp, *secret), ascii_lower(apop->digest));
    }
    // Bearer tokens are checked by verify_bearer() before any lookup and never reach here; should
    // one arrive, it proves nothing about a password.
    return false;
}

// RFC 7628 / XOAUTH2: the token, not a password, proves who the client is. The token comes first:
// until it is valid, the user database is not asked, so the answer cannot depend on whether the
// claimed user exists.
Result<std::string> verify_bearer(PassDb& passdb, const sasl::BearerCredentials& bearer,
                                  const BearerVerifier* bearer_verifier)
{
    if (bearer_verifier == nullptr) {
        return fail(errc::auth_failed); // no issuer, audience or keys configured: nothing to trust
    }
    auto token_user = bearer_verifier->verify_bearer(bearer.token.view(), bearer.user, nullptr);
    if (!token_user) {
        return fail(token_user.error());
    }
    return allowed_login(passdb, *token_user);
}

} // namespace

Result<std::string> allowed_login(PassDb& passdb, std::string_view user)
{
    auto record = passdb.lookup(user);
    if (!record) {
        return fail(record.error());
    }
    // An empty password only refuses password logins; "nologin" refuses every login.
    if (!*record || (*record)->extra_field("nologin")) {
        return fail(errc::auth_failed);
    }
    return (*record)->name;
}

Result<std::optional<sasl::StoredSecret>> lookup_secret(PassDb& passdb, std::string_view user)
{
    auto record = passdb.lookup(user);
    if (!record) {
        return fail(record.error());
    }
    if (!*record || (*record)->password.view().empty() || (*record)->extra_field("nologin")) {
        return std::optional<sasl::StoredSecret>{};
    }
    return std::optional<sasl::StoredSecret>{
        sasl::StoredSecret{(*record)->name, SecretString(std::string((*record)->password.view()))}};
}

Result<std::string> verify_credentials(PassDb& passdb, const sasl::Credentials& credentials,
                                       std::string_view unknown_user_scheme,
                                       const BearerVerifier* bearer_verifier)
{
    if (const auto* bearer = std::get_if<sasl::BearerCredentials>(&credentials)) {
        return verify_bearer(passdb, *bearer, bearer_verifier);
    }
    auto record = passdb.lookup(sasl::credentials_user(credentials));
    if (!record) {
        return fail(record.error()); // the backend's verdict: the database failed
    }
    if (!*record || (*record)->password.view().empty()) {
        spend_dummy_verification(credentials, unknown_user_scheme);
        return fail(errc::auth_failed);
    }
    const UserRecord& user = **record;
    auto verdict = matches(user, credentials);
    if (!verdict) {
        return fail(verdict.error()); // a stored value Pigeon cannot read: the operator's problem
    }
    // Dovecot's "nologin" passdb field refuses the login whatever the password; it is checked
    // after the password, as Dovecot does, so the time taken says nothing about the flag.
    if (!*verdict || user.extra_field("nologin")) {
        return fail(errc::auth_failed);
    }
    return user.name;
}

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
