// The SQLite user database: the default of a fresh install, managed with `pigeon user`. The
// schema is created on first use; the database runs in WAL mode so lookups from the server and
// changes from `pigeon user` do not block each other, with a busy timeout for the moments they
// must. One connection behind a mutex: lookups are short, and hashing (the slow part of a login)
// happens outside it. Passwords are stored as "{SCHEME}data" (password_scheme.hpp), never plain
// unless an operator asks for {PLAIN} (which APOP needs).
#pragma once

#include "auth/passdb.hpp"

#include <mutex>
#include <string>
#include <vector>

struct sqlite3;

namespace pigeon::auth {

class SqlitePassDb final : public PassDb {
public:
    // Opens (creating if needed) the database file and its schema.
    [[nodiscard]] static Result<std::unique_ptr<SqlitePassDb>> open(const std::string& path);
    ~SqlitePassDb() override;
    SqlitePassDb(const SqlitePassDb&) = delete;
    SqlitePassDb& operator=(const SqlitePassDb&) = delete;

    [[nodiscard]] Result<std::optional<UserRecord>> lookup(std::string_view user) override;

    // Management, for `pigeon user`. add_user fails with errc::syntax_error if the user exists.
    [[nodiscard]] Result<void> add_user(std::string_view user, std::string_view stored_password);
    // errc::auth_failed if there is no such user.
    [[nodiscard]] Result<void> set_password(std::string_view user, std::string_view stored_password);
    [[nodiscard]] Result<void> delete_user(std::string_view user);
    [[nodiscard]] Result<std::vector<std::string>> list_users();

private:
    explicit SqlitePassDb(sqlite3* db) : m_db(db) {}
    Result<int> execute(const char* sql, std::string_view first, std::string_view second = {});

    std::mutex m_mutex;
    sqlite3* m_db = nullptr;
};

} // namespace pigeon::auth
