// An in-memory user database, for tests and fuzzing: the reference every backend's conformance
// suite (passdb_conformance_test.cpp) is compared with. Names are matched exactly, as in the
// other backends. Thread-safe: one mutex around the map.
#pragma once

#include "auth/passdb.hpp"

#include <map>
#include <mutex>
#include <string>
#include <system_error>

namespace pigeon::auth {

class MemoryPassDb final : public PassDb {
public:
    // A user whose password is stored as "{PLAIN}password", so APOP and SCRAM can use it too.
    void add_user(std::string name, std::string password);
    // A user with a stored value of any scheme ("{SHA512-CRYPT}...") and optional fields; replaces
    // a user of the same name.
    void add_record(UserRecord record);
    // Fault injection for tests: the next lookup fails with this error.
    void fail_next(std::error_code error);

    [[nodiscard]] Result<std::optional<UserRecord>> lookup(std::string_view user) override;

private:
    std::mutex m_mutex;
    std::map<std::string, UserRecord, std::less<>> m_users;
    std::error_code m_fail_next;
};

} // namespace pigeon::auth
