// `pigeon user`'s logic without a terminal: names, password input, and each command on a real
// SQLite file.
#include "auth/user_admin.hpp"

#include "auth/passdb.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <array>
#include <deque>
#include <filesystem>
#include <unistd.h>

namespace pigeon::auth {
namespace {

namespace fs = std::filesystem;

// A scripted terminal: each call answers the next entry (or end of input) and records the prompt.
class ScriptedInput {
public:
    explicit ScriptedInput(std::deque<std::string> entries) : m_entries(std::move(entries)) {}

    [[nodiscard]] SecretLineReader reader()
    {
        return [this](std::string_view prompt) -> Result<SecretString> {
            prompts.emplace_back(prompt);
            if (m_entries.empty()) {
                return fail(errc::connection_closed);
            }
            std::string entry = std::move(m_entries.front());
            m_entries.pop_front();
            return SecretString(std::move(entry));
        };
    }
    std::vector<std::string> prompts;

private:
    std::deque<std::string> m_entries;
};

// Reads the lines of `text` as --stdin would, through a pipe.
std::vector<Result<SecretString>> lines_of(const std::string& text, int count)
{
    std::array<int, 2> fds{};
    EXPECT_EQ(::pipe(fds.data()), 0);
    EXPECT_EQ(::write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fds[1]);
    std::vector<Result<SecretString>> lines;
    for (int i = 0; i < count; ++i) {
        lines.push_back(read_secret_line(fds[0]));
    }
    ::close(fds[0]);
    return lines;
}

TEST(UserAdmin, ValidUserNames)
{
    for (const char* name : {"alice", "bob@example.org", "first.last", "a_b-c", "X9"}) {
        EXPECT_TRUE(valid_admin_user_name(name)) << name;
    }
    for (const std::string& name :
         std::vector<std::string>{"", "with space", "a/b", "../etc", ".hidden", "-option", "a:b", "tab\there",
                                  "é", std::string(256, 'a')}) {
        EXPECT_FALSE(valid_admin_user_name(name)) << name;
    }
    EXPECT_TRUE(valid_admin_user_name(std::string(255, 'a')));
}

TEST(UserAdmin, ReadSecretLine)
{
    auto lines = lines_of("first\nsecond\r\n\nlast-without-newline", 5);
    EXPECT_EQ(lines[0]->view(), "first");
    EXPECT_EQ(lines[1]->view(), "second");
    EXPECT_EQ(lines[2]->view(), "");
    EXPECT_EQ(lines[3]->view(), "last-without-newline");
    EXPECT_EQ(lines[4].error(), make_error_code(errc::connection_closed));

    // Too long: refused, and the rest of that line is not read as the next one.
    lines = lines_of(std::string(max_password_octets + 10, 'x') + "\nnext\n", 2);
    EXPECT_EQ(lines[0].error(), make_error_code(errc::line_too_long));
    EXPECT_EQ(lines[1]->view(), "next");
    lines = lines_of(std::string(max_password_octets, 'x') + "\n", 1);
    EXPECT_EQ(lines[0]->view().size(), max_password_octets);
}

TEST(UserAdmin, ReadNewPassword)
{
    SecretString password;
    {
        ScriptedInput input({"s3cret", "s3cret"});
        EXPECT_TRUE(read_new_password(input.reader(), true, password).ok());
        EXPECT_EQ(password.view(), "s3cret");
        EXPECT_EQ(input.prompts, (std::vector<std::string>{"New password: ", "Retype new password: "}));
    }
    {
        ScriptedInput input({"s3cret", "s3creT"});
        const auto outcome = read_new_password(input.reader(), true, password);
        EXPECT_EQ(outcome.status, AdminStatus::invalid_input);
        EXPECT_EQ(outcome.message, "passwords do not match");
    }
    {
        ScriptedInput input({""});
        EXPECT_EQ(read_new_password(input.reader(), true, password).message, "empty password");
    }
    {
        ScriptedInput input({});
        EXPECT_EQ(read_new_password(input.reader(), false, password).message, "no password given");
    }
    {
        // --stdin: one line, asked once, without a prompt.
        ScriptedInput input({"from-stdin", "ignored"});
        EXPECT_TRUE(read_new_password(input.reader(), false, password).ok());
        EXPECT_EQ(password.view(), "from-stdin");
        EXPECT_EQ(input.prompts.size(), 1U);
    }
}

class UserAdminCommands : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_dir = fs::temp_directory_path() / ("pigeon-user-admin-" + std::to_string(::getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
        auto db = SqlitePassDb::open((m_dir / "users.sqlite").string());
        ASSERT_TRUE(db);
        m_db = std::move(*db);
    }
    void TearDown() override
    {
        m_db.reset();
        fs::remove_all(m_dir);
    }
    Result<std::string> login(std::string user, std::string password)
    {
        return verify_credentials(
            *m_db, sasl::PasswordCredentials{{}, std::move(user), SecretString(std::move(password))});
    }

    void sqlite_break_table()
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open((m_dir / "users.sqlite").c_str(), &raw), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(raw, "DROP TABLE users", nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(raw);
    }

    fs::path m_dir;
    std::unique_ptr<SqlitePassDb> m_db;
};

TEST_F(UserAdminCommands, AddPasswdDelList)
{
    auto outcome = add_user(*m_db, "alice", "SHA512-CRYPT", SecretString("first"));
    ASSERT_TRUE(outcome.ok()) << outcome.message;
    EXPECT_TRUE(m_db->lookup("alice").value()->password.view().starts_with("{SHA512-CRYPT}$6$"));
    EXPECT_EQ(login("alice", "first").value_or(""), "alice");

    EXPECT_EQ(add_user(*m_db, "alice", "SHA512-CRYPT", SecretString("again")).status,
              AdminStatus::user_exists);
    EXPECT_TRUE(login("alice", "first")); // untouched

    // The default scheme of the command line, and scheme names in any case.
    ASSERT_TRUE(set_password(*m_db, "alice", "argon2id", SecretString("second")).ok());
    EXPECT_TRUE(m_db->lookup("alice").value()->password.view().starts_with("{ARGON2ID}$argon2id$"));
    EXPECT_FALSE(login("alice", "first"));
    EXPECT_TRUE(login("alice", "second"));

    ASSERT_TRUE(add_user(*m_db, "bob@example.org", "PLAIN", SecretString("b")).ok());
    outcome = list_users(*m_db);
    ASSERT_TRUE(outcome.ok());
    EXPECT_EQ(outcome.message, "alice\nbob@example.org\n");

    ASSERT_TRUE(delete_user(*m_db, "alice").ok());
    EXPECT_EQ(login("alice", "second").error(), make_error_code(errc::auth_failed));
    EXPECT_EQ(delete_user(*m_db, "alice").status, AdminStatus::no_such_user);
    EXPECT_EQ(set_password(*m_db, "alice", "PLAIN", SecretString("x")).status, AdminStatus::no_such_user);
    EXPECT_EQ(list_users(*m_db).message, "bob@example.org\n");
}

TEST_F(UserAdminCommands, RefusesBadInput)
{
    EXPECT_EQ(add_user(*m_db, "a/b", "PLAIN", SecretString("x")).status, AdminStatus::invalid_input);
    EXPECT_EQ(add_user(*m_db, "alice", "NO-SUCH-SCHEME", SecretString("x")).status,
              AdminStatus::invalid_input);
    EXPECT_EQ(add_user(*m_db, "alice", "PLAIN", SecretString("")).status, AdminStatus::invalid_input);
    EXPECT_EQ(list_users(*m_db).message, ""); // nothing was added
    EXPECT_EQ(list_users(*m_db).status, AdminStatus::ok);
}

TEST_F(UserAdminCommands, DatabaseFailureIsReported)
{
    // Another process broke the database under us: the command says so, with SQLite's reason.
    sqlite_break_table();
    const auto outcome = add_user(*m_db, "alice", "PLAIN", SecretString("x"));
    EXPECT_EQ(outcome.status, AdminStatus::failure);
    EXPECT_NE(outcome.message.find("adding the user failed"), std::string::npos) << outcome.message;
}

} // namespace
} // namespace pigeon::auth
