// The user database interface (shared/DESIGN.md §5): looks a user up and verifies a credential.
// Backends: memory/ here; passwd-file and SQLite come with the authentication issue, with
// password schemes, the worker pool for slow hashes and brute-force throttling.
#pragma once

#include "core/result.hpp"
#include "sasl/mechanism.hpp"

#include <string>

namespace pigeon::auth {

class PassDb {
public:
    PassDb() = default;
    PassDb(const PassDb&) = delete;
    PassDb& operator=(const PassDb&) = delete;
    virtual ~PassDb() = default;

    // The canonical user name on success; errc::auth_failed for wrong credentials or an unknown
    // user (never told apart to the client), errc::auth_temporary_failure when the database is
    // unreachable.
    [[nodiscard]] virtual Result<std::string> verify(const sasl::Credentials& credentials) = 0;
};

// RFC 1939 §7: lower-case hex MD5 of timestamp followed by the shared secret.
[[nodiscard]] std::string apop_digest(std::string_view timestamp, std::string_view secret);

// Equal contents, in time that depends only on the lengths.
[[nodiscard]] bool constant_time_equals(std::string_view a, std::string_view b) noexcept;

} // namespace pigeon::auth
