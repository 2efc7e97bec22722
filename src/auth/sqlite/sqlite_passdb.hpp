// The SQLite user database: the default of a fresh install, managed with `pigeon user`
// (user_admin.hpp). One table:
//
//   users(name TEXT PRIMARY KEY, password TEXT NOT NULL, uid INTEGER, gid INTEGER, home TEXT,
//         extra TEXT, created_at TEXT, updated_at TEXT)
//
// password is "{SCHEME}data" (password_scheme.hpp); extra holds Dovecot's extra fields in the
// passwd-file notation ("nologin userdb_quota_rule=*:storage=1G"); times are UTC ISO 8601. Names
// are matched exactly (SQLite's BINARY collation), as in the passwd-file backend.
//
// The schema is created on first use and versioned with PRAGMA user_version; a database from a
// newer Pigeon is refused rather than misread. It runs in WAL mode, so lookups by the server and
// changes by `pigeon user` in another process do not block each other, with a busy timeout for
// the moments they must (a checkpoint, two writers). secure_delete is on, so a replaced or
// deleted hash is overwritten in the file, not left in a free page. A new file is created
// readable by its owner only: it holds every user's hash.
//
// Thread-safety: one connection and its prepared statements behind one mutex. A lookup is a
// primary-key read of one row (microseconds); the slow part of a login, hashing, happens in
// verify_credentials() outside it, so a connection per thread would buy nothing but file handles.
#pragma once

#include "auth/passdb.hpp"

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace pigeon::auth {

class SqlitePassDb final : public PassDb {
public:
    // How long a statement waits for another connection's lock before failing.
    static constexpr std::chrono::milliseconds default_busy_timeout{5000};

    // Opens the database file, creating it (mode 0600) and its schema if needed. On failure,
    // errc::auth_temporary_failure, with SQLite's explanation in *why when given.
    [[nodiscard]] static Result<std::unique_ptr<SqlitePassDb>>
    open(const std::string& path, std::string* why = nullptr,
         std::chrono::milliseconds busy_timeout = default_busy_timeout);
    ~SqlitePassDb() override;
    SqlitePassDb(const SqlitePassDb&) = delete;
    SqlitePassDb& operator=(const SqlitePassDb&) = delete;

    // errc::auth_temporary_failure when the database cannot be read.
    [[nodiscard]] Result<std::optional<UserRecord>> lookup(std::string_view user) override;

    // Management, for `pigeon user`. Each is false when the user already exists (add) or does not
    // exist (set_password, delete); an error only when the database fails
    // (errc::auth_temporary_failure, explained by last_error_message()). Callers validate names
    // and hash passwords (user_admin.hpp); these store what they are given.
    [[nodiscard]] Result<bool> add_user(std::string_view user, std::string_view stored_password);
    [[nodiscard]] Result<bool> add_record(const UserRecord& record);
    [[nodiscard]] Result<bool> set_password(std::string_view user, std::string_view stored_password);
    [[nodiscard]] Result<bool> delete_user(std::string_view user);
    // Every user name, in byte order.
    [[nodiscard]] Result<std::vector<std::string>> list_users();

    // SQLite's message for the last failure, for the operator (log, `pigeon user`); never for a
    // POP3 client.
    [[nodiscard]] std::string last_error_message() const;

private:
    struct Statements;
    SqlitePassDb(sqlite3* db, std::unique_ptr<Statements> statements) noexcept;
    // Runs a prepared insert, update or delete; the number of rows it changed.
    Result<int> change(sqlite3_stmt* statement);
    std::error_code database_failed();

    mutable std::mutex m_mutex;
    sqlite3* m_db = nullptr;
    std::unique_ptr<Statements> m_statements;
    std::string m_last_error;
};

} // namespace pigeon::auth
