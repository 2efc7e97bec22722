// Password schemes in Dovecot's "{SCHEME}data" notation, so hashes move between Dovecot and
// Pigeon both ways (shared/DESIGN.md §5): ARGON2ID, ARGON2I (libargon2), BLF-CRYPT, SHA512-CRYPT,
// SHA256-CRYPT and CRYPT (libxcrypt), PLAIN, CRAM-MD5 (HMAC-MD5 contexts, for the CRAM-MD5
// mechanism), SCRAM-SHA-1 and SCRAM-SHA-256 (stored keys: the server can verify a SCRAM exchange
// without knowing the password). What hash_password() writes is byte-compatible with Dovecot
// 2.3's `doveadm pw -s SCHEME` (same formats, same default costs), and everything `doveadm pw`
// writes for these schemes verifies here. A stored value without "{SCHEME}" is read as Dovecot
// reads it in a passwd-file: a crypt(3) string.
//
// This module owns formats and cryptography only: it knows nothing of users, databases or the
// SASL exchange (sasl/ parses the SCRAM secret; this module reuses sasl::parse_scram_secret).
//
// Hashing is slow on purpose; callers run it on the worker pool, never on an event loop.
// Comparisons are constant-time; every copy of a password or derived secret is wiped. Nothing
// throws: errors are values.
#pragma once

#include "core/result.hpp"

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pigeon::auth {

enum class PasswordScheme {
    argon2id,
    argon2i,
    blf_crypt,
    sha512_crypt,
    sha256_crypt,
    crypt, // read: any crypt(3) string ($2y$, $6$, $5$, $y$, ...); written: bcrypt, as doveadm does
    plain,
    cram_md5,
    scram_sha_1,
    scram_sha_256,
};

// Every scheme, in the order `pigeon hash --list` prints them.
[[nodiscard]] std::span<const PasswordScheme> all_password_schemes() noexcept;

// The Dovecot name ("ARGON2ID", "SHA512-CRYPT", ...), and back (ASCII case-insensitive). Dovecot's
// aliases are read too: CLEAR and CLEARTEXT are PLAIN, HMAC-MD5 is CRAM-MD5.
[[nodiscard]] std::string_view scheme_name(PasswordScheme scheme) noexcept;
[[nodiscard]] std::optional<PasswordScheme> scheme_from_name(std::string_view name) noexcept;

// A stored value split into its scheme and its data (what follows "{SCHEME}"); a value without
// "{" is CRYPT. An unknown scheme name or a missing "}" is errc::auth_temporary_failure.
struct StoredPassword {
    PasswordScheme scheme = PasswordScheme::crypt;
    std::string_view data;
};
[[nodiscard]] Result<StoredPassword> parse_stored_password(std::string_view stored) noexcept;

// "{SCHEME}data" with a fresh salt from RAND_bytes and the scheme's default cost, as
// `doveadm pw -s`: ARGON2ID m=65536 KiB t=3 p=1, ARGON2I m=32768 KiB t=4 p=1, bcrypt cost 5
// (BLF-CRYPT and CRYPT), SHA-crypt 5000 rounds with 16 salt characters, SCRAM 4096 iterations
// with 16 salt octets. errc::syntax_error for a password crypt(3) cannot take (a NUL octet, where
// it would silently cut the password, or more than 511 octets); errc::auth_temporary_failure
// when the system fails (no randomness, no memory).
[[nodiscard]] Result<std::string> hash_password(PasswordScheme scheme, std::string_view password);

// True if `password` matches `stored` ("{SCHEME}data", or a bare crypt(3) string). A stored
// value Pigeon cannot read is errc::auth_temporary_failure (an operator's problem, not a guess).
[[nodiscard]] Result<bool> verify_password(std::string_view stored, std::string_view password);

// RFC 2195 §2: the CRAM-MD5 response digest, HMAC-MD5(password, challenge) as 32 lower-case hex
// digits, computed from a stored "{CRAM-MD5}" value (the HMAC contexts, no password needed) or a
// "{PLAIN}" one. A value of any other readable scheme (a one-way hash) cannot serve CRAM-MD5:
// errc::auth_failed, as Dovecot fails such a login; an unreadable value is
// errc::auth_temporary_failure.
[[nodiscard]] Result<std::string> cram_md5_digest(std::string_view stored, std::string_view challenge);

} // namespace pigeon::auth
