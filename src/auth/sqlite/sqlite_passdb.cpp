#include "auth/sqlite/sqlite_passdb.hpp"

#include "auth/passwd_file/passwd_file_passdb.hpp"

#include <sqlite3.h>

#include <climits>
#include <cstdint>
#include <fcntl.h>
#include <unistd.h>

namespace pigeon::auth {
namespace {

// PRAGMA user_version of the schema below. A later schema change adds a migration from each
// older version to the next, run in the same transaction as the check.
constexpr int schema_version = 1;

constexpr const char* create_schema =
    "CREATE TABLE IF NOT EXISTS users ("
    "  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) > 0),"
    "  password TEXT NOT NULL,"
    // 0 (root) is refused, as in the passwd-file backend: a mail user never runs as root.
    "  uid INTEGER CHECK (uid IS NULL OR uid BETWEEN 1 AND 4294967295),"
    "  gid INTEGER CHECK (gid IS NULL OR gid BETWEEN 1 AND 4294967295),"
    "  home TEXT,"
    "  extra TEXT,"
    "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),"
    "  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')));";

// A statement's bindings and cursor are reset when the call that used it returns, so the next
// call starts clean and no password stays bound longer than needed.
class StatementUse {
public:
    explicit StatementUse(sqlite3_stmt* statement) noexcept : m_statement(statement) {}
    StatementUse(const StatementUse&) = delete;
    StatementUse& operator=(const StatementUse&) = delete;
    ~StatementUse()
    {
        sqlite3_reset(m_statement);
        sqlite3_clear_bindings(m_statement);
    }

private:
    sqlite3_stmt* m_statement;
};

bool bind_text(sqlite3_stmt* statement, int index, std::string_view text)
{
    if (text.size() > static_cast<std::size_t>(INT_MAX)) {
        return false;
    }
    // SQLITE_TRANSIENT: SQLite copies the text, so the caller's buffer may go away.
    return sqlite3_bind_text(statement, index, text.data(), static_cast<int>(text.size()),
                             SQLITE_TRANSIENT) == SQLITE_OK;
}

bool bind_id(sqlite3_stmt* statement, int index, std::optional<std::uint32_t> id)
{
    return (id ? sqlite3_bind_int64(statement, index, static_cast<sqlite3_int64>(*id))
               : sqlite3_bind_null(statement, index)) == SQLITE_OK;
}

std::string column_text(sqlite3_stmt* statement, int column)
{
    const unsigned char* value = sqlite3_column_text(statement, column);
    if (value == nullptr) {
        return {}; // NULL (an operator may insert rows by hand and leave home or extra out)
    }
    const int octets = sqlite3_column_bytes(statement, column);
    return {reinterpret_cast<const char*>(value), static_cast<std::size_t>(octets)};
}

std::optional<std::uint32_t> column_id(sqlite3_stmt* statement, int column)
{
    if (sqlite3_column_type(statement, column) == SQLITE_NULL) {
        return std::nullopt;
    }
    const sqlite3_int64 value = sqlite3_column_int64(statement, column);
    if (value <= 0 || value > sqlite3_int64{UINT32_MAX}) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(value);
}

// SQLite creates a new file with the process umask (usually 0644). It holds every user's hash,
// so it is made owner-only first; SQLite gives its -wal and -shm files the same mode.
void create_private_file(const std::string& path)
{
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd >= 0) {
        ::close(fd);
    }
    // EEXIST (the usual case) and any other failure are left to sqlite3_open_v2 to report.
}

// Creates or checks the schema inside one write transaction, so two processes opening a fresh
// file at once do not both create it.
int prepare_schema(sqlite3* db, std::string& why)
{
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
        why = sqlite3_errmsg(db);
        return SQLITE_ERROR;
    }
    int version = -1;
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &statement, nullptr) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW) {
        version = sqlite3_column_int(statement, 0);
    }
    sqlite3_finalize(statement);
    int status = SQLITE_OK;
    if (version < 0) {
        why = sqlite3_errmsg(db);
        status = SQLITE_ERROR;
    } else if (version > schema_version) {
        why = "the database has schema version " + std::to_string(version) + ", newer than this Pigeon's (" +
              std::to_string(schema_version) + ")";
        status = SQLITE_ERROR;
    } else if (version == 0) {
        const std::string create =
            std::string(create_schema) + "PRAGMA user_version = " + std::to_string(schema_version) + ";";
        if (sqlite3_exec(db, create.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
            why = sqlite3_errmsg(db);
            status = SQLITE_ERROR;
        }
    }
    sqlite3_exec(db, status == SQLITE_OK ? "COMMIT" : "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
}

} // namespace

struct SqlitePassDb::Statements {
    sqlite3_stmt* lookup = nullptr;
    sqlite3_stmt* insert = nullptr;
    sqlite3_stmt* update_password = nullptr;
    sqlite3_stmt* remove = nullptr;
    sqlite3_stmt* list = nullptr;

    Statements() = default;
    Statements(const Statements&) = delete;
    Statements& operator=(const Statements&) = delete;
    ~Statements()
    {
        for (sqlite3_stmt* statement : {lookup, insert, update_password, remove, list}) {
            sqlite3_finalize(statement);
        }
    }

    int prepare(sqlite3* db)
    {
        const auto one = [db](const char* sql, sqlite3_stmt** out) {
            return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, nullptr);
        };
        int status = one("SELECT name, password, uid, gid, home, extra FROM users WHERE name = ?1", &lookup);
        if (status == SQLITE_OK) {
            // A name already taken is not an error of the database: DO NOTHING, and the caller
            // sees zero changed rows.
            status = one(
                "INSERT INTO users (name, password, uid, gid, home, extra) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                " ON CONFLICT (name) DO NOTHING",
                &insert);
        }
        if (status == SQLITE_OK) {
            status = one("UPDATE users SET password = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
                         " WHERE name = ?1",
                         &update_password);
        }
        if (status == SQLITE_OK) {
            status = one("DELETE FROM users WHERE name = ?1", &remove);
        }
        if (status == SQLITE_OK) {
            status = one("SELECT name FROM users ORDER BY name", &list);
        }
        return status;
    }
};

SqlitePassDb::SqlitePassDb(sqlite3* db, std::unique_ptr<Statements> statements) noexcept
    : m_db(db), m_statements(std::move(statements))
{
}

Result<std::unique_ptr<SqlitePassDb>> SqlitePassDb::open(const std::string& path, std::string* why,
                                                         std::chrono::milliseconds busy_timeout)
{
    std::string explanation;
    create_private_file(path);
    sqlite3* db = nullptr;
    // NOMUTEX: this class serialises every use of the connection with its own mutex already.
    int status = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    auto statements = std::make_unique<Statements>();
    if (status != SQLITE_OK) {
        explanation = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(status);
    } else {
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
        // WAL is a property of the file and persists; a read-only file already in WAL mode keeps
        // it, and one that is not still works in its own mode, so the answer is not checked.
        sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA secure_delete = ON;", nullptr, nullptr, nullptr);
        status = prepare_schema(db, explanation);
        if (status == SQLITE_OK) {
            status = statements->prepare(db);
            if (status != SQLITE_OK) {
                explanation = sqlite3_errmsg(db);
            }
        }
    }
    if (status != SQLITE_OK) {
        statements.reset(); // finalised before the connection closes
        sqlite3_close(db);
        if (why != nullptr) {
            *why = path + ": " + explanation;
        }
        return fail(errc::auth_temporary_failure);
    }
    return std::unique_ptr<SqlitePassDb>(new SqlitePassDb(db, std::move(statements)));
}

SqlitePassDb::~SqlitePassDb()
{
    m_statements.reset();
    sqlite3_close(m_db);
}

std::error_code SqlitePassDb::database_failed()
{
    m_last_error = sqlite3_errmsg(m_db);
    return make_error_code(errc::auth_temporary_failure);
}

std::string SqlitePassDb::last_error_message() const
{
    const std::lock_guard guard(m_mutex);
    return m_last_error;
}

Result<std::optional<UserRecord>> SqlitePassDb::lookup(std::string_view user)
{
    const std::lock_guard guard(m_mutex);
    sqlite3_stmt* statement = m_statements->lookup;
    const StatementUse use(statement);
    if (!bind_text(statement, 1, user)) {
        return fail(database_failed());
    }
    const int status = sqlite3_step(statement);
    if (status == SQLITE_DONE) {
        return std::optional<UserRecord>{};
    }
    if (status != SQLITE_ROW) {
        return fail(database_failed());
    }
    UserRecord record;
    record.name = column_text(statement, 0);
    record.password = SecretString(column_text(statement, 1));
    record.uid = column_id(statement, 2);
    record.gid = column_id(statement, 3);
    record.home = column_text(statement, 4);
    record.extra_fields = parse_extra_fields(column_text(statement, 5));
    return std::optional<UserRecord>{std::move(record)};
}

Result<int> SqlitePassDb::change(sqlite3_stmt* statement)
{
    if (sqlite3_step(statement) != SQLITE_DONE) {
        return fail(database_failed());
    }
    return sqlite3_changes(m_db);
}

Result<bool> SqlitePassDb::add_user(std::string_view user, std::string_view stored_password)
{
    UserRecord record;
    record.name = std::string(user);
    record.password = SecretString(std::string(stored_password));
    return add_record(record);
}

Result<bool> SqlitePassDb::add_record(const UserRecord& record)
{
    const std::lock_guard guard(m_mutex);
    sqlite3_stmt* statement = m_statements->insert;
    const StatementUse use(statement);
    const std::string extra = format_extra_fields(record.extra_fields);
    if (!bind_text(statement, 1, record.name) || !bind_text(statement, 2, record.password.view()) ||
        !bind_id(statement, 3, record.uid) || !bind_id(statement, 4, record.gid) ||
        !bind_text(statement, 5, record.home) || !bind_text(statement, 6, extra)) {
        return fail(database_failed());
    }
    auto changed = change(statement);
    if (!changed) {
        return fail(changed.error());
    }
    return *changed > 0;
}

Result<bool> SqlitePassDb::set_password(std::string_view user, std::string_view stored_password)
{
    const std::lock_guard guard(m_mutex);
    sqlite3_stmt* statement = m_statements->update_password;
    const StatementUse use(statement);
    if (!bind_text(statement, 1, user) || !bind_text(statement, 2, stored_password)) {
        return fail(database_failed());
    }
    auto changed = change(statement);
    if (!changed) {
        return fail(changed.error());
    }
    return *changed > 0;
}

Result<bool> SqlitePassDb::delete_user(std::string_view user)
{
    const std::lock_guard guard(m_mutex);
    sqlite3_stmt* statement = m_statements->remove;
    const StatementUse use(statement);
    if (!bind_text(statement, 1, user)) {
        return fail(database_failed());
    }
    auto changed = change(statement);
    if (!changed) {
        return fail(changed.error());
    }
    return *changed > 0;
}

Result<std::vector<std::string>> SqlitePassDb::list_users()
{
    const std::lock_guard guard(m_mutex);
    sqlite3_stmt* statement = m_statements->list;
    const StatementUse use(statement);
    std::vector<std::string> users;
    int status = SQLITE_ROW;
    while ((status = sqlite3_step(statement)) == SQLITE_ROW) {
        users.push_back(column_text(statement, 0));
    }
    if (status != SQLITE_DONE) {
        return fail(database_failed());
    }
    return users;
}

} // namespace pigeon::auth
