// An in-memory user database with plaintext secrets, for tests and fuzzing (APOP needs the
// shared secret, so this backend keeps it; real backends store hashes).
#pragma once

#include "auth/passdb.hpp"

#include <map>
#include <string>

namespace pigeon::auth {

class MemoryPassDb final : public PassDb {
public:
    void add_user(std::string name, std::string password);
    // Fault injection for tests: the next verify fails with this error.
    void fail_next(std::error_code error) { m_fail_next = error; }

    [[nodiscard]] Result<std::string> verify(const sasl::Credentials& credentials) override;

private:
    std::map<std::string, std::string, std::less<>> m_users;
    std::error_code m_fail_next;
};

} // namespace pigeon::auth
