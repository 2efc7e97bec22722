// The user database interface (shared/DESIGN.md §5): looks a user up. Verifying a credential
// against the record (password schemes, APOP) is verify_credentials()'s, the same for every
// backend. Backends: memory/ (tests), passwd_file/ (Dovecot's format), sqlite/ (the default of a
// fresh install); PostgreSQL later.
//
// Thread-safety: every backend is safe to call from several threads at once. A lookup may block
// (a file read, an SQL query) and verification is slow on purpose (hashing), so the server calls
// both on its worker pool, never on an event loop thread.
#pragma once

#include "core/result.hpp"
#include "core/secret.hpp"
#include "sasl/mechanism.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pigeon::auth {

struct UserRecord {
    std::string name;      // the canonical user name (what the maildrop path is built from)
    SecretString password; // "{SCHEME}data" or a bare crypt(3) string; empty: no password login
    std::optional<std::uint32_t> uid;
    std::optional<std::uint32_t> gid;
    std::string home;
    // Dovecot's extra fields ("userdb_quota_rule=*:storage=1G", "nologin", ...), in file order.
    std::vector<std::pair<std::string, std::string>> extra_fields;

    [[nodiscard]] std::optional<std::string_view> extra_field(std::string_view key) const noexcept;
    // A copy (SecretString is move-only, so a backend that keeps records hands out copies).
    [[nodiscard]] UserRecord copy() const;
};

class PassDb {
public:
    PassDb() = default;
    PassDb(const PassDb&) = delete;
    PassDb& operator=(const PassDb&) = delete;
    virtual ~PassDb() = default;

    // Nothing for an unknown user; errc::auth_temporary_failure when the database is unreachable
    // or unreadable.
    [[nodiscard]] virtual Result<std::optional<UserRecord>> lookup(std::string_view user) = 0;
};

// Checks an OAuth 2.0 bearer token (OAUTHBEARER, XOAUTH2) and names the user it was issued to.
// JwtValidator (jwt_validator.hpp) is the implementation; tests may supply their own.
class BearerVerifier {
public:
    BearerVerifier() = default;
    virtual ~BearerVerifier() = default;

    // The user name the token proves, or errc::auth_failed. `claimed_user` is the name the client
    // sent beside the token (may be empty); a verifier refuses a token issued to someone else.
    // `reason`, if not null, receives a short fixed text for the log on failure, never any part
    // of the token. Safe to call from several threads at once.
    [[nodiscard]] virtual Result<std::string>
    verify_bearer(std::string_view token, std::string_view claimed_user, std::string_view* reason) const = 0;

protected:
    BearerVerifier(const BearerVerifier&) = default;
    BearerVerifier(BearerVerifier&&) = default;
    BearerVerifier& operator=(const BearerVerifier&) = default;
    BearerVerifier& operator=(BearerVerifier&&) = default;
};

// The canonical user name on success; errc::auth_failed for wrong credentials or an unknown user
// (never told apart to the client), and errc::auth_temporary_failure when the database fails.
// An unknown user's password is still hashed, with `unknown_user_scheme` (SHA512-CRYPT or
// ARGON2ID: the server passes the scheme its users' hashes use), so timing tells nothing.
//
// Bearer tokens need `bearer_verifier`; without one they are wrong credentials for every user.
// With one, the token is checked first (so a caller without a valid token learns nothing about
// which users exist), then the user it names must exist in `passdb` and not be "nologin". Such a
// user needs no password: an empty stored password refuses password logins only.
[[nodiscard]] Result<std::string> verify_credentials(PassDb& passdb, const sasl::Credentials& credentials,
                                                     std::string_view unknown_user_scheme = "SHA512-CRYPT",
                                                     const BearerVerifier* bearer_verifier = nullptr);

// For a user whose identity was proven outside the user database (a bearer token, a TLS client
// certificate): the canonical name if the user exists and is not "nologin" (no password is
// needed), errc::auth_failed otherwise, errc::auth_temporary_failure when the database fails.
[[nodiscard]] Result<std::string> allowed_login(PassDb& passdb, std::string_view user);

// The stored secret of a user for the mechanisms that check a proof themselves (SCRAM,
// CRAM-MD5): nothing for an unknown user, and nothing for one who may not log in (no password,
// "nologin"), so these mechanisms obey the same rules as verify_credentials().
[[nodiscard]] Result<std::optional<sasl::StoredSecret>> lookup_secret(PassDb& passdb, std::string_view user);

// RFC 1939 §7: lower-case hex MD5 of timestamp followed by the shared secret.
[[nodiscard]] std::string apop_digest(std::string_view timestamp, std::string_view secret);

// Equal contents, in time that depends only on the lengths.
[[nodiscard]] bool constant_time_equals(std::string_view a, std::string_view b) noexcept;

} // namespace pigeon::auth
