#include "auth/sqlite/sqlite_passdb.hpp"

#include <sqlite3.h>

namespace pigeon::auth {
namespace {

constexpr int busy_timeout_ms = 5000;
constexpr int schema_version = 1;

// A prepared statement that finalises itself.
class Statement {
public:
    Statement(sqlite3* db, const char* sql)
    {
        if (sqlite3_prepare_v2(db, sql, -1, &m_statement, nullptr) != SQLITE_OK) {
            m_statement = nullptr;
        }
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement() { sqlite3_finalize(m_statement); }

    [[nodiscard]] bool valid() const noexcept { return m_statement != nullptr; }
    bool bind(int index, std::string_view text)
    {
        return sqlite3_bind_text(m_statement, index, text.data(), static_cast<int>(text.size()),
                                 SQLITE_TRANSIENT) == SQLITE_OK;
    }
    int step() { return sqlite3_step(m_statement); }
    [[nodiscard]] std::string text(int column) const
    {
        const auto* value = sqlite3_column_text(m_statement, column);
        return value == nullptr
                   ? std::string()
                   : std::string(reinterpret_cast<const char*>(value),
                                 static_cast<std::size_t>(sqlite3_column_bytes(m_statement, column)));
    }
    [[nodiscard]] std::optional<std::uint32_t> number(int column) const
    {
        if (sqlite3_column_type(m_statement, column) == SQLITE_NULL) {
            return std::nullopt;
        }
        const auto value = sqlite3_column_int64(m_statement, column);
        if (value < 0 || value > UINT32_MAX) {
            return std::nullopt;
        }
        return static_cast<std::uint32_t>(value);
    }

private:
    sqlite3_stmt* m_statement = nullptr;
};

} // namespace

Result<std::unique_ptr<SqlitePassDb>> SqlitePassDb::open(const std::string& path)
{
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
        sqlite3_close(db);
        return fail(errc::auth_temporary_failure);
    }
    std::unique_ptr<SqlitePassDb> passdb(new SqlitePassDb(db));
    sqlite3_busy_timeout(db, busy_timeout_ms);
    const char* schema = "PRAGMA journal_mode=WAL;"
                         "CREATE TABLE IF NOT EXISTS users ("
                         "  name TEXT PRIMARY KEY NOT NULL,"
                         "  password TEXT NOT NULL,"
                         "  uid INTEGER, gid INTEGER, home TEXT NOT NULL DEFAULT '',"
                         "  extra TEXT NOT NULL DEFAULT '',"
                         "  created_at TEXT NOT NULL DEFAULT (datetime('now')),"
                         "  updated_at TEXT NOT NULL DEFAULT (datetime('now')));"
                         "PRAGMA user_version=1;";
    if (sqlite3_exec(db, schema, nullptr, nullptr, nullptr) != SQLITE_OK) {
        return fail(errc::auth_temporary_failure);
    }
    static_cast<void>(schema_version);
    return passdb;
}

SqlitePassDb::~SqlitePassDb()
{
    sqlite3_close(m_db);
}

Result<std::optional<UserRecord>> SqlitePassDb::lookup(std::string_view user)
{
    const std::lock_guard guard(m_mutex);
    Statement statement(m_db, "SELECT name, password, uid, gid, home, extra FROM users WHERE name = ?1");
    if (!statement.valid() || !statement.bind(1, user)) {
        return fail(errc::auth_temporary_failure);
    }
    const int status = statement.step();
    if (status == SQLITE_DONE) {
        return std::optional<UserRecord>{};
    }
    if (status != SQLITE_ROW) {
        return fail(errc::auth_temporary_failure);
    }
    UserRecord record;
    record.name = statement.text(0);
    record.password = SecretString(statement.text(1));
    record.uid = statement.number(2);
    record.gid = statement.number(3);
    record.home = statement.text(4);
    const std::string extra = statement.text(5);
    std::string_view rest = extra;
    while (!rest.empty()) {
        const std::size_t space = rest.find(' ');
        const std::string_view item = rest.substr(0, space);
        rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
        if (!item.empty()) {
            const std::size_t equals = item.find('=');
            record.extra_fields.emplace_back(
                std::string(item.substr(0, equals)),
                equals == std::string_view::npos ? std::string() : std::string(item.substr(equals + 1)));
        }
    }
    return std::optional<UserRecord>{std::move(record)};
}

Result<int> SqlitePassDb::execute(const char* sql, std::string_view first, std::string_view second)
{
    const std::lock_guard guard(m_mutex);
    Statement statement(m_db, sql);
    if (!statement.valid() || !statement.bind(1, first) || (!second.empty() && !statement.bind(2, second))) {
        return fail(errc::auth_temporary_failure);
    }
    const int status = statement.step();
    if (status == SQLITE_CONSTRAINT) {
        return fail(errc::syntax_error);
    }
    if (status != SQLITE_DONE) {
        return fail(errc::auth_temporary_failure);
    }
    return sqlite3_changes(m_db);
}

Result<void> SqlitePassDb::add_user(std::string_view user, std::string_view stored_password)
{
    auto changed = execute("INSERT INTO users (name, password) VALUES (?1, ?2)", user, stored_password);
    if (!changed) {
        return fail(changed.error());
    }
    return {};
}

Result<void> SqlitePassDb::set_password(std::string_view user, std::string_view stored_password)
{
    auto changed = execute("UPDATE users SET password = ?2, updated_at = datetime('now') WHERE name = ?1",
                           user, stored_password);
    if (!changed) {
        return fail(changed.error());
    }
    if (*changed == 0) {
        return fail(errc::auth_failed);
    }
    return {};
}

Result<void> SqlitePassDb::delete_user(std::string_view user)
{
    auto changed = execute("DELETE FROM users WHERE name = ?1", user);
    if (!changed) {
        return fail(changed.error());
    }
    if (*changed == 0) {
        return fail(errc::auth_failed);
    }
    return {};
}

Result<std::vector<std::string>> SqlitePassDb::list_users()
{
    const std::lock_guard guard(m_mutex);
    Statement statement(m_db, "SELECT name FROM users ORDER BY name");
    if (!statement.valid()) {
        return fail(errc::auth_temporary_failure);
    }
    std::vector<std::string> users;
    int status = SQLITE_ROW;
    while ((status = statement.step()) == SQLITE_ROW) {
        users.push_back(statement.text(0));
    }
    if (status != SQLITE_DONE) {
        return fail(errc::auth_temporary_failure);
    }
    return users;
}

} // namespace pigeon::auth
