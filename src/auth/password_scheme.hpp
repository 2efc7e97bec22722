// Password schemes in Dovecot's "{SCHEME}data" notation, so hashes move between Dovecot and
// Pigeon both ways (shared/DESIGN.md §5): ARGON2ID, ARGON2I (libargon2), BLF-CRYPT, SHA512-CRYPT,
// SHA256-CRYPT (libcrypt), PLAIN, CRAM-MD5 and SCRAM-SHA-256 (stored keys: the server can verify
// a SCRAM exchange without knowing the password). A stored value without "{SCHEME}" is read as
// Dovecot does for passwd-file: CRYPT (a crypt(3) string) unless configured otherwise.
//
// Hashing is slow on purpose; callers run it on the worker pool, never on an event loop.
// Comparisons are constant-time; every copy of a password or derived secret is wiped.
#pragma once

#include "core/result.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace pigeon::auth {

enum class PasswordScheme {
    argon2id,
    argon2i,
    blf_crypt,
    sha512_crypt,
    sha256_crypt,
    crypt, // any crypt(3) string, recognised by its prefix ($2y$, $6$, $5$, $y$, ...)
    plain,
    cram_md5,
    scram_sha_1,
    scram_sha_256,
};

// The Dovecot name ("ARGON2ID", "SHA512-CRYPT", ...), and back (case-insensitive).
[[nodiscard]] std::string_view scheme_name(PasswordScheme scheme) noexcept;
[[nodiscard]] std::optional<PasswordScheme> scheme_from_name(std::string_view name) noexcept;

// "{SCHEME}data" with a fresh random salt and the scheme's default cost, as `doveadm pw -s`.
[[nodiscard]] Result<std::string> hash_password(PasswordScheme scheme, std::string_view password);

// True if `password` matches `stored` ("{SCHEME}data", or a bare crypt(3) string). A stored
// value Pigeon cannot read is errc::auth_temporary_failure (an operator's problem, not a guess).
[[nodiscard]] Result<bool> verify_password(std::string_view stored, std::string_view password);

} // namespace pigeon::auth
