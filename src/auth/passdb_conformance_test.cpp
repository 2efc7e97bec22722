// One conformance suite over every user database (shared/DESIGN.md §9): the same users, stored
// through whatever each backend offers (a map, a Dovecot passwd-file, SQL rows), must look up and
// verify alike. Backend-specific behaviour (file reloads, parsing, SQL management) follows the
// shared suite.
#include "auth/memory/memory_passdb.hpp"
#include "auth/passwd_file/passwd_file_passdb.hpp"
#include "auth/password_scheme.hpp"
#include "auth/sqlite/sqlite_passdb.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <pwd.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace pigeon::auth {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

// A fresh directory per test, removed afterwards.
class TempDir {
public:
    TempDir()
    {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = std::string("pigeon-passdb-") + std::to_string(::getpid()) + "-" +
                           info->test_suite_name() + "-" + info->name();
        for (char& c : name) {
            c = c == '/' ? '-' : c; // parameterised names contain '/'
        }
        m_path = fs::temp_directory_path() / name;
        fs::remove_all(m_path);
        fs::create_directories(m_path);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir()
    {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }
    [[nodiscard]] const fs::path& path() const noexcept { return m_path; }

private:
    fs::path m_path;
};

void write_file(const fs::path& path, std::string_view text)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

// Sets a file's modification time explicitly, so a rewrite within the same clock tick still
// changes the stamp the passwd-file backend compares (no sleeping for the clock to move).
void set_mtime(const fs::path& path, std::time_t seconds)
{
    const std::array<timespec, 2> times{timespec{seconds, 0}, timespec{seconds, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times.data(), 0), 0);
}

Result<std::string> login(PassDb& db, std::string user, std::string password)
{
    return verify_credentials(
        db, sasl::PasswordCredentials{{}, std::move(user), SecretString(std::move(password))});
}

// Whether the user exists; nothing when the lookup itself failed.
std::optional<bool> exists(PassDb& db, std::string_view name)
{
    auto record = db.lookup(name);
    if (!record) {
        return std::nullopt;
    }
    return record->has_value();
}

Result<std::string> apop(PassDb& db, std::string user, std::string timestamp, std::string digest)
{
    return verify_credentials(
        db, sasl::ApopCredentials{std::move(user), std::move(timestamp), std::move(digest)});
}

UserRecord user(std::string name, std::string stored)
{
    UserRecord record;
    record.name = std::move(name);
    record.password = SecretString(std::move(stored));
    return record;
}

// Slow hashes are made once for the whole suite.
const std::string& sha512_builder()
{
    static const std::string hash = hash_password(PasswordScheme::sha512_crypt, "builder").value();
    return hash;
}
const std::string& argon2id_carol()
{
    static const std::string hash = hash_password(PasswordScheme::argon2id, "c4r0l").value();
    return hash;
}

// The users every backend holds.
std::vector<UserRecord> shared_users()
{
    std::vector<UserRecord> users;
    UserRecord alice = user("alice", "{PLAIN}wonderland");
    alice.uid = 1000;
    alice.gid = 100;
    alice.home = "/home/alice";
    alice.extra_fields = {{"userdb_quota_rule", "*:storage=1G"}, {"allow_nets", "192.0.2.0/24"}};
    users.push_back(std::move(alice));
    users.push_back(user("bob@example.org", sha512_builder()));
    users.push_back(user("carol", argon2id_carol()));
    users.push_back(user("mrose", "{PLAIN}tanstaaf"));
    UserRecord dave = user("dave", "{PLAIN}locked-out");
    dave.extra_fields = {{"nologin", ""}, {"reason", "closed"}};
    users.push_back(std::move(dave));
    users.push_back(user("erin", ""));
    users.push_back(user("Frank", "{PLAIN}f"));
    return users;
}

std::string passwd_line(const UserRecord& record)
{
    const auto id = [](const std::optional<std::uint32_t>& value) {
        return value ? std::to_string(*value) : "";
    };
    return record.name + ":" + record.password.view() + ":" + id(record.uid) + ":" + id(record.gid) +
           ":gecos:" + record.home + ":/bin/false:" + format_extra_fields(record.extra_fields) + "\n";
}

// A backend under test: the users are stored the way that backend stores them.
struct Backend {
    std::string name;
    std::function<std::unique_ptr<PassDb>(const fs::path& dir, const std::vector<UserRecord>& users)> make;
};

std::vector<Backend> backends()
{
    return {
        {"memory",
         [](const fs::path& /*dir*/, const std::vector<UserRecord>& users) {
             auto db = std::make_unique<MemoryPassDb>();
             for (const auto& record : users) {
                 db->add_record(record.copy());
             }
             return std::unique_ptr<PassDb>(std::move(db));
         }},
        {"passwd_file",
         [](const fs::path& dir, const std::vector<UserRecord>& users) {
             std::string text = "# Dovecot passwd-file\n\n";
             for (const auto& record : users) {
                 text += passwd_line(record);
             }
             write_file(dir / "passwd", text);
             PasswdFileOptions options;
             options.path = (dir / "passwd").string();
             options.recheck_interval = std::chrono::milliseconds{0}; // stat at every lookup
             return std::unique_ptr<PassDb>(std::make_unique<PasswdFilePassDb>(std::move(options)));
         }},
        {"sqlite",
         [](const fs::path& dir, const std::vector<UserRecord>& users) {
             std::string why;
             auto db = SqlitePassDb::open((dir / "users.sqlite").string(), &why);
             if (!db) {
                 ADD_FAILURE() << why;
                 return std::unique_ptr<PassDb>(std::make_unique<MemoryPassDb>());
             }
             for (const auto& record : users) {
                 EXPECT_EQ((*db)->add_record(record), Result<bool>(true)) << record.name;
             }
             return std::unique_ptr<PassDb>(std::move(*db));
         }},
    };
}

class PassDbConformance : public ::testing::TestWithParam<Backend> {
protected:
    void SetUp() override { m_db = GetParam().make(m_dir.path(), shared_users()); }

    TempDir m_dir;
    std::unique_ptr<PassDb> m_db;
};

TEST_P(PassDbConformance, LookupFindsExistingUsersOnly)
{
    auto alice = m_db->lookup("alice");
    ASSERT_TRUE(alice);
    ASSERT_TRUE(*alice);
    EXPECT_EQ((*alice)->name, "alice");
    EXPECT_EQ((*alice)->password.view(), "{PLAIN}wonderland");
    auto nobody = m_db->lookup("nobody");
    ASSERT_TRUE(nobody);
    EXPECT_FALSE(*nobody);
    EXPECT_EQ(exists(*m_db, ""), false);
    // Exact names, as Dovecot's passwd-file compares them (case folding is the server's).
    EXPECT_EQ(exists(*m_db, "ALICE"), false);
    EXPECT_EQ(exists(*m_db, "frank"), false);
    EXPECT_EQ(exists(*m_db, "Frank"), true);
    EXPECT_EQ(exists(*m_db, "alice "), false);
}

TEST_P(PassDbConformance, UserAtDomain)
{
    auto bob = m_db->lookup("bob@example.org");
    ASSERT_TRUE(bob && *bob);
    EXPECT_EQ((*bob)->name, "bob@example.org");
    EXPECT_EQ(exists(*m_db, "bob"), false);
    EXPECT_EQ(exists(*m_db, "bob@example.com"), false);
    EXPECT_EQ(login(*m_db, "bob@example.org", "builder").value_or(""), "bob@example.org");
}

TEST_P(PassDbConformance, FieldsSurvive)
{
    auto alice = m_db->lookup("alice");
    ASSERT_TRUE(alice && *alice);
    EXPECT_EQ((*alice)->uid, 1000U);
    EXPECT_EQ((*alice)->gid, 100U);
    EXPECT_EQ((*alice)->home, "/home/alice");
    EXPECT_EQ((*alice)->extra_field("userdb_quota_rule"), "*:storage=1G");
    EXPECT_EQ((*alice)->extra_field("allow_nets"), "192.0.2.0/24");
    EXPECT_EQ(userdb_fields(**alice), (ExtraFields{{"quota_rule", "*:storage=1G"}}));
    auto mrose = m_db->lookup("mrose");
    ASSERT_TRUE(mrose && *mrose);
    EXPECT_FALSE((*mrose)->uid);
    EXPECT_FALSE((*mrose)->gid);
    EXPECT_EQ((*mrose)->home, "");
    EXPECT_TRUE((*mrose)->extra_fields.empty());
}

TEST_P(PassDbConformance, VerifiesEverySchemeAndRefusesWrongPasswords)
{
    EXPECT_EQ(login(*m_db, "alice", "wonderland").value_or(""), "alice");
    EXPECT_EQ(login(*m_db, "bob@example.org", "builder").value_or(""), "bob@example.org");
    EXPECT_EQ(login(*m_db, "carol", "c4r0l").value_or(""), "carol");
    for (const auto& [name, password] :
         std::vector<std::pair<std::string, std::string>>{{"alice", "Wonderland"},
                                                          {"alice", ""},
                                                          {"bob@example.org", "build"},
                                                          {"carol", "c4r0"},
                                                          {"nobody", "x"},
                                                          {"ALICE", "wonderland"}}) {
        const auto result = login(*m_db, name, password);
        ASSERT_FALSE(result) << name;
        EXPECT_EQ(result.error(), make_error_code(errc::auth_failed)) << name;
    }
}

TEST_P(PassDbConformance, ApopNeedsAPlainSecret)
{
    // RFC 1939 §7's example, in both cases of hexadecimal.
    EXPECT_EQ(apop(*m_db, "mrose", "<1896.697170952@dbc.mtview.ca.us>", "c4c9334bac560ecc979e58001b3e22fb")
                  .value_or(""),
              "mrose");
    EXPECT_TRUE(
        apop(*m_db, "mrose", "<1896.697170952@dbc.mtview.ca.us>", "C4C9334BAC560ECC979E58001B3E22FB"));
    EXPECT_FALSE(apop(*m_db, "mrose", "<other@host>", "c4c9334bac560ecc979e58001b3e22fb"));
    // A hashed password cannot answer APOP, even with the right secret's digest.
    EXPECT_FALSE(apop(*m_db, "carol", "<1@h>", apop_digest("<1@h>", "c4r0l")));
    EXPECT_FALSE(apop(*m_db, "bob@example.org", "<1@h>", apop_digest("<1@h>", "builder")));
    EXPECT_FALSE(apop(*m_db, "nobody", "<1@h>", apop_digest("<1@h>", "")));
}

TEST_P(PassDbConformance, NologinAndEmptyPasswordRefuse)
{
    EXPECT_EQ(exists(*m_db, "dave"), true);
    EXPECT_EQ(login(*m_db, "dave", "locked-out").error(), make_error_code(errc::auth_failed));
    EXPECT_FALSE(apop(*m_db, "dave", "<1@h>", apop_digest("<1@h>", "locked-out")));
    EXPECT_EQ(exists(*m_db, "erin"), true);
    EXPECT_EQ(login(*m_db, "erin", "").error(), make_error_code(errc::auth_failed));
    EXPECT_EQ(login(*m_db, "erin", "anything").error(), make_error_code(errc::auth_failed));
    EXPECT_FALSE(apop(*m_db, "erin", "<1@h>", apop_digest("<1@h>", "")));
}

TEST_P(PassDbConformance, ConcurrentLookupsFromEightThreads)
{
    constexpr int threads = 8;
    constexpr int rounds = 200;
    std::atomic<int> right{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int round = 0; round < rounds; ++round) {
                const bool even = (round + t) % 2 == 0;
                auto record = m_db->lookup(even ? "alice" : "mrose");
                const bool found = record && *record && (*record)->name == (even ? "alice" : "mrose");
                const bool absent = exists(*m_db, "nobody") == false;
                // {PLAIN} verification is cheap, so every round can also log in.
                const bool logged_in = login(*m_db, "mrose", "tanstaaf").value_or("") == "mrose";
                if (found && absent && logged_in) {
                    ++right;
                }
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    EXPECT_EQ(right.load(), threads * rounds);
}

INSTANTIATE_TEST_SUITE_P(Backends, PassDbConformance, ::testing::ValuesIn(backends()),
                         [](const ::testing::TestParamInfo<Backend>& param) { return param.param.name; });

// ---- passwd-file ----

TEST(PasswdFileParse, DovecotFormat)
{
    const auto parsed = PasswdFilePassDb::parse(
        "# users\n"
        "\n"
        "   \n"
        "alice:{PLAIN}x:1000:1000:Alice:/home/alice:/bin/false:userdb_quota_rule=*:storage=1G "
        " nologin\n"
        "bob@example.org:$6$salt$hash\n"
        "carol:plain-by-default::::::\r\n"
        "dave:$1$salt$hash:1001:1001::/home/dave::\n"
        "erin\n"
        "old:{PLAIN}o:1002:1002::/home/old:/bin/sh::maildir:~/Maildir\n",
        "PLAIN");
    ASSERT_EQ(parsed.users.size(), 6U);
    const auto& alice = parsed.users.at("alice");
    EXPECT_EQ(alice.password.view(), "{PLAIN}x");
    EXPECT_EQ(alice.uid, 1000U);
    EXPECT_EQ(alice.gid, 1000U);
    EXPECT_EQ(alice.home, "/home/alice");
    EXPECT_EQ(alice.extra_fields, (ExtraFields{{"userdb_quota_rule", "*:storage=1G"}, {"nologin", ""}}));
    // Without "{SCHEME}": the default scheme, except "$1$", which Dovecot reads as MD5-CRYPT.
    EXPECT_EQ(parsed.users.at("bob@example.org").password.view(), "{PLAIN}$6$salt$hash");
    EXPECT_EQ(parsed.users.at("carol").password.view(), "{PLAIN}plain-by-default");
    EXPECT_EQ(parsed.users.at("dave").password.view(), "{CRYPT}$1$salt$hash");
    EXPECT_TRUE(parsed.users.at("dave").extra_fields.empty());
    // A name alone: a user without a password (no password login).
    EXPECT_EQ(parsed.users.at("erin").password.view(), "");
    // Dovecot's old layout: an empty eighth field, then the mail location.
    EXPECT_EQ(parsed.users.at("old").extra_fields, (ExtraFields{{"userdb_mail", "maildir:~/Maildir"}}));
    EXPECT_TRUE(parsed.skipped_lines.empty());
}

TEST(PasswdFileParse, DefaultSchemeIsCrypt)
{
    const auto db = PasswdFilePassDb::parse("bob:$6$salt$hash\n", PasswdFileOptions{}.default_scheme);
    EXPECT_EQ(db.users.at("bob").password.view(), "{CRYPT}$6$salt$hash");
}

TEST(PasswdFileParse, MalformedLinesAreSkippedWithTheirNumbers)
{
    const std::string long_line = "long:{PLAIN}" + std::string(64 * 1024, 'x') + "\n";
    const auto parsed = PasswdFilePassDb::parse("ok:{PLAIN}1\n"                                // 1
                                                ":{PLAIN}no-name\n"                            // 2
                                                "root-uid:{PLAIN}x:0:0\n"                      // 3
                                                "bad-uid:{PLAIN}x:12ab:1\n"                    // 4
                                                "bad-gid:{PLAIN}x:1000:no-such-group-pigeon\n" // 5
                                                "ok:{PLAIN}second-line-ignored\n"              // 6
                                                "with space:{PLAIN}x\n"                        // 7
                                                    + long_line +                              // 8
                                                    "nul:{PLAIN}a\0b\n"s                       // 9
                                                    "last:{PLAIN}2", // 10, no final LF
                                                "CRYPT");
    EXPECT_EQ(parsed.users.size(), 2U);
    EXPECT_EQ(parsed.users.at("ok").password.view(), "{PLAIN}1"); // the first line wins, as in Dovecot
    EXPECT_EQ(parsed.users.at("last").password.view(), "{PLAIN}2");
    EXPECT_EQ(parsed.skipped_lines, (std::vector<SkippedLine>{{2, "invalid user name"},
                                                              {3, "invalid uid"},
                                                              {4, "invalid uid"},
                                                              {5, "invalid gid"},
                                                              {6, "user already defined"},
                                                              {7, "invalid user name"},
                                                              {8, "line too long"},
                                                              {9, "control characters"}}));
}

TEST(PasswdFileParse, UidAndGidByName)
{
    const passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr) {
        GTEST_SKIP() << "no user 'nobody' on this system";
    }
    const auto parsed = PasswdFilePassDb::parse("a:{PLAIN}x:nobody\n", "CRYPT");
    EXPECT_EQ(parsed.users.at("a").uid, static_cast<std::uint32_t>(nobody->pw_uid));
}

TEST(PasswdFile, ReloadedWhenTheFileChanges)
{
    const TempDir dir;
    const fs::path path = dir.path() / "passwd";
    constexpr std::time_t first_mtime = 1'700'000'000;
    write_file(path, "alice:{PLAIN}old\n");
    set_mtime(path, first_mtime);
    PasswdFileOptions options;
    options.path = path.string();
    options.recheck_interval = std::chrono::milliseconds{0};
    PasswdFilePassDb db(options);
    EXPECT_TRUE(login(db, "alice", "old"));

    // Rewritten in place: same inode, same size; only the modification time tells.
    write_file(path, "alice:{PLAIN}new\n");
    set_mtime(path, first_mtime + 1);
    EXPECT_FALSE(login(db, "alice", "old"));
    EXPECT_TRUE(login(db, "alice", "new"));

    // Replaced as editors and `doveadm` do it: a new file renamed over the old one.
    write_file(dir.path() / "passwd.new", "alice:{PLAIN}newer\nnewuser:{PLAIN}z\n");
    fs::rename(dir.path() / "passwd.new", path);
    EXPECT_TRUE(login(db, "alice", "newer"));
    EXPECT_TRUE(login(db, "newuser", "z"));
    EXPECT_EQ(db.status().users, 2U);
    EXPECT_FALSE(db.status().last_error);
}

TEST(PasswdFile, RecheckedAtMostOncePerInterval)
{
    const TempDir dir;
    const fs::path path = dir.path() / "passwd";
    write_file(path, "alice:{PLAIN}old\n");
    set_mtime(path, 1'700'000'000);
    PasswdFileOptions options;
    options.path = path.string();
    options.recheck_interval = std::chrono::hours{1};
    PasswdFilePassDb db(options);
    EXPECT_TRUE(login(db, "alice", "old"));
    write_file(path, "alice:{PLAIN}new\n");
    set_mtime(path, 1'700'000'001);
    EXPECT_TRUE(login(db, "alice", "old")); // not looked at again within the interval
    ASSERT_TRUE(db.reload());               // SIGHUP: look now
    EXPECT_TRUE(login(db, "alice", "new"));
}

TEST(PasswdFile, UnreadableFileKeepsTheLastGoodCopyAndSaysWhy)
{
    const TempDir dir;
    const fs::path path = dir.path() / "passwd";
    std::vector<std::string> log;
    PasswdFileOptions options;
    options.path = path.string();
    options.recheck_interval = std::chrono::milliseconds{0};
    options.log = [&log](std::string_view message) { log.emplace_back(message); };
    PasswdFilePassDb db(options);

    // Never read: nothing to answer with.
    EXPECT_EQ(db.lookup("alice").error(), make_error_code(errc::auth_temporary_failure));
    EXPECT_FALSE(db.status().loaded);
    EXPECT_EQ(db.status().last_error, std::errc::no_such_file_or_directory);

    write_file(path, "alice:{PLAIN}a\nbroken:{PLAIN}x:notanumber\n");
    ASSERT_TRUE(db.reload());
    EXPECT_TRUE(login(db, "alice", "a"));
    EXPECT_EQ(db.status().skipped_lines, (std::vector<SkippedLine>{{2, "invalid uid"}}));

    // A FIFO in its place must not hang the server, and the old copy stays in use.
    fs::remove(path);
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    EXPECT_FALSE(db.reload());
    EXPECT_TRUE(login(db, "alice", "a"));
    // Gone altogether: the same.
    fs::remove(path);
    EXPECT_TRUE(login(db, "alice", "a"));
    const auto status = db.status();
    EXPECT_TRUE(status.loaded);
    EXPECT_EQ(status.users, 1U);
    EXPECT_EQ(status.last_error, std::errc::no_such_file_or_directory);
    EXPECT_NE(status.last_error_message.find(path.string()), std::string::npos);

    // Every problem was logged once, with line numbers and never a hash.
    ASSERT_FALSE(log.empty());
    std::size_t missing = 0;
    for (const std::string& line : log) {
        EXPECT_EQ(line.find("{PLAIN}"), std::string::npos) << line;
        missing += line.find("stat failed") != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(missing, 2U); // once before the first read, once after the removal
    EXPECT_NE(std::find_if(log.begin(), log.end(),
                           [](const std::string& line) {
                               return line.find("line 2 skipped: invalid uid") != std::string::npos;
                           }),
              log.end());
}

TEST(PasswdFile, LookupsDuringReloadsSeeOneWholeFileOrTheOther)
{
    const TempDir dir;
    const fs::path path = dir.path() / "passwd";
    write_file(path, "alice:{PLAIN}v0\nbob:{PLAIN}b\n");
    PasswdFileOptions options;
    options.path = path.string();
    options.recheck_interval = std::chrono::milliseconds{0};
    PasswdFilePassDb db(options);
    std::atomic<bool> done{false};
    std::atomic<int> wrong{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 8; ++t) {
        readers.emplace_back([&] {
            while (!done) {
                auto alice = db.lookup("alice");
                auto bob = db.lookup("bob");
                if (!alice || !*alice || !bob || !*bob ||
                    !(*alice)->password.view().starts_with("{PLAIN}v")) {
                    ++wrong;
                }
            }
        });
    }
    for (int version = 1; version <= 50; ++version) {
        const fs::path next = dir.path() / "passwd.new";
        write_file(next, "alice:{PLAIN}v" + std::to_string(version) + "\nbob:{PLAIN}b\n");
        set_mtime(next, 1'700'000'000 + version);
        fs::rename(next, path);
    }
    done = true;
    for (auto& reader : readers) {
        reader.join();
    }
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_TRUE(login(db, "alice", "v50"));
}

TEST(PasswdFile, ExtraFieldNotation)
{
    EXPECT_EQ(parse_extra_fields("  a=1  b  c=x=y "), (ExtraFields{{"a", "1"}, {"b", ""}, {"c", "x=y"}}));
    EXPECT_EQ(format_extra_fields({{"a", "1"}, {"b", ""}}), "a=1 b");
    EXPECT_TRUE(parse_extra_fields("").empty());
    UserRecord record;
    record.extra_fields = {{"userdb_mail", "maildir:~/M"}, {"nologin", ""}, {"userdb_", "x"}};
    EXPECT_EQ(userdb_fields(record), (ExtraFields{{"mail", "maildir:~/M"}}));
}

// ---- SQLite ----

TEST(SqlitePassDb, ManagementFunctions)
{
    const TempDir dir;
    const std::string path = (dir.path() / "users.sqlite").string();
    {
        auto db = SqlitePassDb::open(path);
        ASSERT_TRUE(db);
        EXPECT_EQ((*db)->add_user("alice", "{PLAIN}a"), Result<bool>(true));
        EXPECT_EQ((*db)->add_user("alice", "{PLAIN}b"), Result<bool>(false)); // taken
        EXPECT_EQ((*db)->add_user("bob", "{PLAIN}b"), Result<bool>(true));
        EXPECT_EQ((*db)->set_password("alice", "{PLAIN}c"), Result<bool>(true));
        EXPECT_EQ((*db)->set_password("nobody", "{PLAIN}c"), Result<bool>(false));
        EXPECT_EQ((*db)->add_user("Carol", "{PLAIN}x"), Result<bool>(true));
        EXPECT_EQ((*db)->list_users().value(), (std::vector<std::string>{"Carol", "alice", "bob"}));
        EXPECT_EQ((*db)->delete_user("bob"), Result<bool>(true));
        EXPECT_EQ((*db)->delete_user("bob"), Result<bool>(false));
    }
    auto reopened = SqlitePassDb::open(path);
    ASSERT_TRUE(reopened);
    EXPECT_EQ((*reopened)->list_users().value(), (std::vector<std::string>{"Carol", "alice"}));
    EXPECT_EQ((*(*reopened)->lookup("alice"))->password.view(), "{PLAIN}c");
    // The hashes are for the owner's eyes only.
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777U, 0600U);
}

TEST(SqlitePassDb, SchemaVersionWalAndHandWrittenRows)
{
    const TempDir dir;
    const std::string path = (dir.path() / "users.sqlite").string();
    ASSERT_TRUE(SqlitePassDb::open(path));
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
    const auto scalar = [raw](const char* sql) {
        sqlite3_stmt* statement = nullptr;
        std::string value;
        if (sqlite3_prepare_v2(raw, sql, -1, &statement, nullptr) == SQLITE_OK &&
            sqlite3_step(statement) == SQLITE_ROW) {
            const unsigned char* text = sqlite3_column_text(statement, 0);
            value = text == nullptr ? "" : reinterpret_cast<const char*>(text);
        }
        sqlite3_finalize(statement);
        return value;
    };
    EXPECT_EQ(scalar("PRAGMA user_version"), "1");
    EXPECT_EQ(scalar("PRAGMA journal_mode"), "wal");
    // A row an operator inserted by hand, with NULLs where the backend writes ''.
    ASSERT_EQ(sqlite3_exec(raw, "INSERT INTO users (name, password) VALUES ('hand', '{PLAIN}h')", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    // root is refused by the schema itself.
    EXPECT_NE(sqlite3_exec(raw, "INSERT INTO users (name, password, uid) VALUES ('r', 'x', 0)", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    {
        auto db = SqlitePassDb::open(path);
        ASSERT_TRUE(db);
        auto hand = (*db)->lookup("hand");
        ASSERT_TRUE(hand && *hand);
        EXPECT_EQ((*hand)->home, "");
        EXPECT_TRUE((*hand)->extra_fields.empty());
        EXPECT_TRUE(login(**db, "hand", "h"));
    }
    // A database from a newer Pigeon is refused, not misread.
    ASSERT_EQ(sqlite3_exec(raw, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    std::string why;
    EXPECT_EQ(SqlitePassDb::open(path, &why).error(), make_error_code(errc::auth_temporary_failure));
    EXPECT_NE(why.find("newer"), std::string::npos) << why;
    sqlite3_close(raw);
}

TEST(SqlitePassDb, DatabaseFailureIsTemporary)
{
    const TempDir dir;
    const std::string path = (dir.path() / "users.sqlite").string();
    auto db = SqlitePassDb::open(path);
    ASSERT_TRUE(db);
    ASSERT_EQ((*db)->add_user("alice", "{PLAIN}a"), Result<bool>(true));
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "DROP TABLE users", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
    EXPECT_EQ((*db)->lookup("alice").error(), make_error_code(errc::auth_temporary_failure));
    EXPECT_EQ(login(**db, "alice", "a").error(), make_error_code(errc::auth_temporary_failure));
    EXPECT_NE((*db)->last_error_message().find("users"), std::string::npos) << (*db)->last_error_message();
    EXPECT_FALSE((*db)->list_users());
    std::string why;
    EXPECT_FALSE(SqlitePassDb::open((dir.path() / "no-such-dir" / "users.sqlite").string(), &why));
    EXPECT_FALSE(why.empty());
}

} // namespace
} // namespace pigeon::auth
