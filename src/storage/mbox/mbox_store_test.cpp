#include "storage/mbox/mbox_store.hpp"

#include "protocol/dot_stuffer.hpp"
#include "storage/mbox/mbox_index.hpp"
#include "storage/mbox/mbox_parser.hpp"

#include <gtest/gtest.h>

#include <array>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace pigeon::storage {
namespace {

namespace fs = std::filesystem;

std::string quote(std::string_view message)
{
    std::string out;
    mbox::Quoter quoter;
    quoter.feed(message, out);
    quoter.finish(out);
    return out;
}

// One mbox entry as Postfix's local(8) writes it: From_ line (two spaces after the sender, as
// its mail_copy() does), quoted message, a final newline if missing, the blank separator.
std::string postfix_entry(std::string_view message, int second)
{
    char date[64];
    std::snprintf(date, sizeof date, "Mon Jan  1 00:%02d:%02d 2024", (second / 60) % 60, second % 60);
    std::string out = std::string("From sender@example.org  ") + date + "\n" + quote(message);
    if (!message.empty() && message.back() != '\n') {
        out += '\n';
    }
    return out + "\n";
}

std::string read_file(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void write_file(const fs::path& path, std::string_view content)
{
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

void append_file(const fs::path& path, std::string_view content)
{
    std::ofstream(path, std::ios::binary | std::ios::app) << content;
}

std::string read_message(Maildrop& maildrop, std::uint32_t index)
{
    auto reader = maildrop.open_message(MessageIndex{index});
    if (!reader) {
        return "<unavailable: " + reader.error().message() + ">";
    }
    std::string out;
    std::array<char, 777> buffer{};
    for (;;) {
        auto count = (*reader)->read(buffer);
        if (!count) {
            return "<read error: " + count.error().message() + ">";
        }
        if (*count == 0) {
            return out;
        }
        out.append(buffer.data(), *count);
    }
}

struct Listed {
    std::string unique_id;
    std::uint64_t octets = 0;
    std::string content;
    bool operator==(const Listed&) const = default;
};

std::vector<Listed> listing(Maildrop& maildrop)
{
    std::vector<Listed> out;
    for (std::uint32_t i = 0; i < maildrop.message_count(); ++i) {
        out.push_back({std::string(maildrop.unique_id(MessageIndex{i})),
                       maildrop.message_octets(MessageIndex{i}), read_message(maildrop, i)});
    }
    return out;
}

class MboxTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_root =
            fs::temp_directory_path() / ("pigeon-mbox-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_root);
        fs::create_directories(m_root);
        m_options.path_template = (m_root / "%u").string();
        m_options.lock_timeout = std::chrono::seconds(10);
    }
    void TearDown() override { fs::remove_all(m_root); }

    [[nodiscard]] fs::path mbox_path(const std::string& user = "alice") const { return m_root / user; }
    [[nodiscard]] fs::path index_path(const std::string& user = "alice") const
    {
        return m_root / ("." + user + ".pigeon-index");
    }
    [[nodiscard]] fs::path journal_path(const std::string& user = "alice") const
    {
        return m_root / ("." + user + ".pigeon-journal");
    }

    std::unique_ptr<Maildrop> open(MboxStore& store, const std::string& user = "alice")
    {
        auto maildrop = store.open(user);
        EXPECT_TRUE(maildrop) << (maildrop ? "" : maildrop.error().message());
        return maildrop ? std::move(*maildrop) : nullptr;
    }
    std::unique_ptr<Maildrop> open(const std::string& user = "alice")
    {
        MboxStore store(m_options);
        return open(store, user);
    }
    std::string deliver(const std::string& message, const std::string& user = "alice")
    {
        MboxStore store(m_options);
        auto uid = deliver_message(store, user, message);
        EXPECT_TRUE(uid) << (uid ? "" : uid.error().message());
        return uid ? *uid : "";
    }
    // Changes the index as a test marker while keeping it valid (its checksum recomputed).
    void tamper_index(const std::function<void(mbox::Index&)>& change)
    {
        auto index = mbox::parse_index(read_file(index_path()));
        ASSERT_TRUE(index);
        change(*index);
        write_file(index_path(), mbox::format_index(*index));
    }

    fs::path m_root;
    MboxOptions m_options;
};

// --- format and round trips --------------------------------------------------------------------

TEST_F(MboxTest, DeliveryWritesWhatPostfixWould)
{
    deliver("Subject: one\n\nFrom the start\n>From quoted\n");
    deliver("Subject: two\n\nno final newline");
    const std::string raw = read_file(mbox_path());
    const std::regex layout("From MAILER-DAEMON (Sun|Mon|Tue|Wed|Thu|Fri|Sat) "
                            "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123][0-9] "
                            "[0-2][0-9]:[0-5][0-9]:[0-6][0-9] [0-9]{4}\n"
                            "Subject: one\n\n>From the start\n>>From quoted\n\n"
                            "From MAILER-DAEMON [^\n]+\nSubject: two\n\nno final newline\n\n");
    EXPECT_TRUE(std::regex_match(raw, layout)) << raw;
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 2U);
    EXPECT_EQ(read_message(*maildrop, 0), "Subject: one\n\nFrom the start\n>From quoted\n");
    EXPECT_EQ(read_message(*maildrop, 1), "Subject: two\n\nno final newline");
    EXPECT_EQ(maildrop->message_octets(MessageIndex{1}),
              protocol::wire_size("Subject: two\n\nno final newline"));
}

TEST_F(MboxTest, ReadsAnMboxWrittenByPostfix)
{
    const std::vector<std::string> messages{
        "Received: from x\nSubject: a\nContent-Length: 2\n\nFrom the body\n>From quoted once\n",
        "Subject: b\r\n\r\ncrlf body\r\n",
        "Subject: c\n\n\n\nblank lines before the end\n\n",
    };
    std::string raw;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        raw += postfix_entry(messages[i], static_cast<int>(i));
    }
    write_file(mbox_path(), raw);
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), messages.size());
    for (std::uint32_t i = 0; i < messages.size(); ++i) {
        EXPECT_EQ(read_message(*maildrop, i), messages[i]);
        EXPECT_EQ(maildrop->message_octets(MessageIndex{i}), protocol::wire_size(messages[i]));
        EXPECT_EQ(maildrop->unique_id(MessageIndex{i}).size(), 32U);
    }
}

TEST_F(MboxTest, ReadsMboxoAndMboxrdQuoting)
{
    // mboxo (older procmail, mutt): only "From " quoted, ">From " left as it is. mboxrd (Postfix,
    // Pigeon): one '>' added to every ^>*From  line. Both are read as mboxrd: one '>' removed
    // from ^>+From  lines, so mboxo reads back right unless the original had ">From " lines.
    const std::string mboxo = "From a  Mon Jan  1 00:00:00 2024\nSubject: mboxo\n\n>From the writer\n"
                              "> quoted reply\n>> From deeper\nFromage\n\n";
    const std::string mboxrd = "From b  Mon Jan  1 00:00:01 2024\nSubject: mboxrd\n\n>From one\n>>From two\n"
                               ">>>From three\n\n";
    write_file(mbox_path(), mboxo + mboxrd);
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 2U);
    EXPECT_EQ(read_message(*maildrop, 0),
              "Subject: mboxo\n\nFrom the writer\n> quoted reply\n>> From deeper\nFromage\n");
    EXPECT_EQ(read_message(*maildrop, 1), "Subject: mboxrd\n\nFrom one\n>From two\n>>From three\n");
    EXPECT_EQ(maildrop->message_octets(MessageIndex{1}),
              protocol::wire_size("Subject: mboxrd\n\nFrom one\n>From two\n>>From three\n"));
}

TEST_F(MboxTest, UniqueIdsFromXUidlOrDigestAreUniqueAndStable)
{
    const std::string twin = postfix_entry("Subject: twin\n\nsame\n", 7);
    write_file(mbox_path(), twin + twin + postfix_entry("X-UIDL: chosen-by-sender\nSubject: x\n\n", 8) +
                                postfix_entry("X-UIDL: chosen-by-sender\nSubject: copycat\n\n", 9) + twin);
    std::vector<Listed> first;
    {
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        first = listing(*maildrop);
    }
    ASSERT_EQ(first.size(), 5U);
    const std::string digest = first[0].unique_id;
    EXPECT_EQ(digest.size(), 32U);
    EXPECT_EQ(first[1].unique_id, digest + ".2");
    EXPECT_EQ(first[2].unique_id, "chosen-by-sender");
    EXPECT_EQ(first[3].unique_id.size(), 32U); // the X-UIDL was taken
    EXPECT_EQ(first[4].unique_id, digest + ".3");
    // Stable across sessions, with the index and without it.
    {
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        EXPECT_EQ(listing(*maildrop), first);
    }
    fs::remove(index_path());
    {
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        EXPECT_EQ(listing(*maildrop), first);
        // Deleting the first twin does not rename the others: the index keeps what was given.
        const std::array<MessageIndex, 1> deletions{MessageIndex{0}};
        ASSERT_TRUE(maildrop->commit(deletions));
    }
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    const std::vector<Listed> expected(first.begin() + 1, first.end());
    EXPECT_EQ(listing(*maildrop), expected);
}

TEST_F(MboxTest, DeliveredUniqueIdIsTheOneListed)
{
    std::vector<std::string> delivered;
    for (int i = 0; i < 3; ++i) {
        delivered.push_back(deliver("Subject: same\n\nsame\n")); // the same second: a repeat digest
    }
    delivered.push_back(deliver("X-UIDL: mine\n\n"));
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 4U);
    for (std::uint32_t i = 0; i < 4; ++i) {
        EXPECT_EQ(maildrop->unique_id(MessageIndex{i}), delivered[i]);
    }
    EXPECT_EQ(delivered[3], "mine");
}

// --- the index ---------------------------------------------------------------------------------

TEST_F(MboxTest, FreshIndexIsTrusted)
{
    deliver("Subject: a\n\nbody\n");
    ASSERT_TRUE(open());
    ASSERT_TRUE(fs::exists(index_path()));
    tamper_index([](mbox::Index& index) { index.entries[0].wire_octets = 4242; });
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_octets(MessageIndex{0}), 4242U); // read from the index, not the mbox
}

TEST_F(MboxTest, AppendByAnotherProgramParsesOnlyTheNewTail)
{
    deliver("Subject: a\n\nbody\n");
    ASSERT_TRUE(open());
    tamper_index([](mbox::Index& index) { index.entries[0].wire_octets = 4242; });
    append_file(mbox_path(), postfix_entry("Subject: b\n\nFrom the MTA\n", 1));
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 2U);
    EXPECT_EQ(maildrop->message_octets(MessageIndex{0}), 4242U); // not parsed again
    EXPECT_EQ(read_message(*maildrop, 1), "Subject: b\n\nFrom the MTA\n");
    EXPECT_EQ(maildrop->message_octets(MessageIndex{1}), protocol::wire_size("Subject: b\n\nFrom the MTA\n"));
}

TEST_F(MboxTest, AppendWithoutSeparatorParsesTheLastMessageAgain)
{
    write_file(mbox_path(), "From a  Mon Jan  1 00:00:00 2024\nSubject: a\n\nno separator\n");
    std::string first_uid;
    {
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        first_uid = maildrop->unique_id(MessageIndex{0});
    }
    append_file(mbox_path(), "still the same message\n\nFrom b  Mon Jan  1 00:00:01 2024\nSubject: b\n\n");
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 2U);
    EXPECT_EQ(maildrop->unique_id(MessageIndex{0}), first_uid);
    EXPECT_EQ(read_message(*maildrop, 0), "Subject: a\n\nno separator\nstill the same message\n");
    EXPECT_EQ(read_message(*maildrop, 1), "Subject: b\n");
}

TEST_F(MboxTest, MboxChangedByAnotherProgramIsParsedAgain)
{
    write_file(mbox_path(),
               postfix_entry("Subject: a\n\nbody\n", 0) + postfix_entry("Subject: b\n\nbody\n", 1));
    ASSERT_TRUE(open());
    tamper_index([](mbox::Index& index) { index.entries[0].wire_octets = 4242; });
    // A mail reader rewrites the file in place: same inode, another size.
    write_file(mbox_path(), postfix_entry("Subject: a\nStatus: RO\n\nbody\n", 0) +
                                postfix_entry("Subject: b\n\nedited body\n", 1));
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 2U);
    EXPECT_EQ(maildrop->message_octets(MessageIndex{0}),
              protocol::wire_size("Subject: a\nStatus: RO\n\nbody\n"));
    EXPECT_EQ(read_message(*maildrop, 1), "Subject: b\n\nedited body\n");
}

TEST_F(MboxTest, DamagedIndexIsRebuilt)
{
    const std::string uid = deliver("Subject: a\n\nbody\n");
    for (const std::string& damage :
         {std::string("garbage"), std::string(), std::string("pigeon-mbox-index 1\n")}) {
        write_file(index_path(), damage);
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        ASSERT_EQ(maildrop->message_count(), 1U);
        EXPECT_EQ(maildrop->unique_id(MessageIndex{0}), uid);
        EXPECT_TRUE(mbox::parse_index(read_file(index_path())));
    }
    // A valid-looking index whose checksum does not match is damaged too.
    std::string text = read_file(index_path());
    text.replace(text.find(uid), 3, "zzz");
    write_file(index_path(), text);
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->unique_id(MessageIndex{0}), uid);
}

TEST_F(MboxTest, NoFinalNewlineSurvivesAnotherProgramTouchingTheMbox)
{
    deliver("Subject: a\n\nno final newline");
    deliver("Subject: b\n\nwith one\n");
    // mtime changes, so the index is stale: a full parse carries the mark over by unique-id.
    const timespec times[2] = {{0, UTIME_OMIT}, {1'600'000'000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, mbox_path().c_str(), times, 0), 0);
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 2U);
    EXPECT_EQ(read_message(*maildrop, 0), "Subject: a\n\nno final newline");
    EXPECT_EQ(read_message(*maildrop, 1), "Subject: b\n\nwith one\n");
}

TEST_F(MboxTest, LeadingGarbageIsNeitherListedNorRewritten)
{
    const std::string garbage = "this is not a message\n\n";
    write_file(mbox_path(),
               garbage + postfix_entry("Subject: a\n\n", 0) + postfix_entry("Subject: b\n\n", 1));
    {
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        ASSERT_EQ(maildrop->message_count(), 2U);
        const std::array<MessageIndex, 2> deletions{MessageIndex{0}, MessageIndex{1}};
        ASSERT_TRUE(maildrop->commit(deletions));
    }
    EXPECT_EQ(read_file(mbox_path()), garbage);
    // Delivery after garbage without a final newline starts a proper From_ line.
    write_file(mbox_path(), "junk without newline");
    deliver("Subject: c\n\n");
    EXPECT_TRUE(read_file(mbox_path()).starts_with("junk without newline\n\nFrom MAILER-DAEMON "));
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 1U);
    EXPECT_EQ(read_message(*maildrop, 0), "Subject: c\n\n");
}

TEST_F(MboxTest, IndexDirectoryTemplateKeepsPigeonFilesOutOfTheSpool)
{
    m_options.index_directory_template = (m_root / "index" / "%u").string();
    const std::string uid = deliver("Subject: a\n\n");
    {
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        EXPECT_EQ(maildrop->unique_id(MessageIndex{0}), uid);
        const std::array<MessageIndex, 1> deletions{MessageIndex{0}};
        ASSERT_TRUE(maildrop->commit(deletions));
    }
    EXPECT_TRUE(fs::exists(m_root / "index" / "alice" / "pigeon-index"));
    EXPECT_TRUE(fs::exists(m_root / "index" / "alice" / "pigeon-pop3.lock"));
    for (const auto& item : fs::directory_iterator(m_root)) {
        EXPECT_TRUE(item.path().filename() == "alice" || item.path().filename() == "index") << item.path();
    }
    EXPECT_EQ(read_file(mbox_path()), "");
}

// --- sessions and locks ------------------------------------------------------------------------

TEST_F(MboxTest, RevokedSessionCommitsNothing)
{
    m_options.takeover = true;
    deliver("Subject: a\n\n");
    deliver("Subject: b\n\n");
    MboxStore store(m_options);
    auto first = open(store);
    ASSERT_TRUE(first);
    auto second = open(store); // the client of `first` vanished; a new login takes over
    ASSERT_TRUE(second);
    const std::array<MessageIndex, 1> deletions{MessageIndex{0}};
    auto committed = first->commit(deletions);
    ASSERT_FALSE(committed);
    EXPECT_EQ(committed.error(), make_error_code(errc::maildrop_in_use));
    first.reset();
    second.reset();
    auto again = open(store);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->message_count(), 2U);
}

TEST_F(MboxTest, RefusesLinksPlantedInTheSpool)
{
    write_file(m_root / "target", postfix_entry("Subject: secret\n\n", 0));
    fs::create_symlink(m_root / "target", mbox_path("sym"));
    fs::create_hard_link(m_root / "target", mbox_path("hard"));
    MboxStore store(m_options);
    for (const std::string user : {"sym", "hard"}) {
        auto maildrop = store.open(user);
        ASSERT_FALSE(maildrop) << user;
        EXPECT_EQ(maildrop.error(), make_error_code(errc::maildrop_unavailable));
        auto delivered = deliver_message(store, user, "Subject: x\n\n");
        ASSERT_FALSE(delivered) << user;
        EXPECT_EQ(delivered.error(), make_error_code(errc::delivery_temporary_failure));
    }
    EXPECT_EQ(read_file(m_root / "target"), postfix_entry("Subject: secret\n\n", 0));
}

TEST_F(MboxTest, StaleDotlockIsRemoved)
{
    write_file(m_root / "alice.lock", "12345\n");
    const timespec old[2] = {{1'600'000'000, 0}, {1'600'000'000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (m_root / "alice.lock").c_str(), old, 0), 0);
    const auto started = std::chrono::steady_clock::now();
    deliver("Subject: a\n\n");
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
    EXPECT_FALSE(fs::exists(m_root / "alice.lock"));
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_count(), 1U);
}

TEST_F(MboxTest, FreshDotlockIsWaitedForThenGivesATemporaryFailure)
{
    deliver("Subject: a\n\n");
    const std::string before = read_file(mbox_path());
    write_file(m_root / "alice.lock", "");
    m_options.lock_timeout = std::chrono::milliseconds(300);
    MboxStore store(m_options);
    const auto started = std::chrono::steady_clock::now();
    auto delivered = deliver_message(store, "alice", "Subject: b\n\n");
    EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(300));
    ASSERT_FALSE(delivered);
    EXPECT_EQ(delivered.error(), make_error_code(errc::delivery_temporary_failure));
    EXPECT_TRUE(fs::exists(m_root / "alice.lock")); // someone else's: left alone
    EXPECT_EQ(read_file(mbox_path()), before);
    auto opened = store.open("alice");
    ASSERT_FALSE(opened);
    EXPECT_EQ(opened.error(), make_error_code(errc::maildrop_in_use));
}

// A child that appends the way Postfix does (dotlock, then F_SETLK, write, unlock), slowly and
// in two halves; the parent's delivery must wait for it and never interleave.
void append_like_postfix(const fs::path& mbox, bool dotlock, int ready_pipe, const std::string& entry)
{
    const std::string lock_path = mbox.string() + ".lock";
    if (dotlock) {
        const int lock_fd = ::open(lock_path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (lock_fd < 0) {
            ::_exit(2);
        }
        ::close(lock_fd);
    }
    const int fd = ::open(mbox.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
    struct flock range {};
    range.l_type = F_WRLCK;
    range.l_whence = SEEK_SET;
    if (fd < 0 || ::fcntl(fd, F_SETLK, &range) != 0) {
        ::_exit(3);
    }
    (void)!::write(ready_pipe, "x", 1);
    ::usleep(200'000);
    const std::size_t half = entry.size() / 2;
    (void)!::write(fd, entry.data(), half);
    ::usleep(200'000);
    (void)!::write(fd, entry.data() + half, entry.size() - half);
    ::fsync(fd);
    range.l_type = F_UNLCK;
    ::fcntl(fd, F_SETLK, &range);
    if (dotlock) {
        ::unlink(lock_path.c_str());
    }
    ::_exit(0);
}

TEST_F(MboxTest, DeliveryWaitsForAConcurrentAppenderInAnotherProcess)
{
    for (const bool dotlock : {true, false}) {
        SCOPED_TRACE(dotlock ? "dotlock and fcntl" : "fcntl only");
        fs::remove(mbox_path());
        fs::remove(index_path());
        m_options.dotlock = dotlock;
        const std::string theirs = "Subject: from postfix\n\n" + std::string(5000, 'p') + "\n";
        std::array<int, 2> ready{};
        ASSERT_EQ(::pipe(ready.data()), 0);
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            append_like_postfix(mbox_path(), dotlock, ready[1], postfix_entry(theirs, 0));
        }
        char signal = 0;
        ASSERT_EQ(::read(ready[0], &signal, 1), 1);
        ::close(ready[0]);
        ::close(ready[1]);
        const auto started = std::chrono::steady_clock::now();
        deliver("Subject: from pigeon\n\nmine\n");
        EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(300));
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        ASSERT_EQ(maildrop->message_count(), 2U);
        EXPECT_EQ(read_message(*maildrop, 0), theirs);
        EXPECT_EQ(read_message(*maildrop, 1), "Subject: from pigeon\n\nmine\n");
    }
}

TEST_F(MboxTest, ConcurrentDeliveriesAndCommitsNeverLoseOrMixMessages)
{
    // Messages a POP3 session will delete while three other processes deliver.
    std::string seeded;
    for (int i = 0; i < 6; ++i) {
        seeded += postfix_entry("Subject: doomed " + std::to_string(i) + "\n\n", i);
    }
    write_file(mbox_path(), seeded);
    constexpr int children = 3;
    constexpr int per_child = 12;
    const auto body = [](int child, int n) {
        return "Subject: child " + std::to_string(child) + " message " + std::to_string(n) + "\n\nFrom " +
               std::string(static_cast<std::size_t>(100 + 37 * n), static_cast<char>('a' + child)) + "\n";
    };
    std::vector<pid_t> pids;
    for (int c = 0; c < children; ++c) {
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            MboxStore store(m_options);
            for (int n = 0; n < per_child; ++n) {
                if (!deliver_message(store, "alice", body(c, n))) {
                    ::_exit(1);
                }
            }
            ::_exit(0);
        }
        pids.push_back(pid);
    }
    // Meanwhile: sessions that each delete one doomed message.
    MboxStore store(m_options);
    for (int round = 0; round < 6; ++round) {
        auto maildrop = open(store);
        ASSERT_TRUE(maildrop);
        for (std::uint32_t i = 0; i < maildrop->message_count(); ++i) {
            if (read_message(*maildrop, i).starts_with("Subject: doomed")) {
                const std::array<MessageIndex, 1> deletions{MessageIndex{i}};
                ASSERT_TRUE(maildrop->commit(deletions));
                break;
            }
        }
    }
    for (const pid_t pid : pids) {
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0);
    }
    auto maildrop = open(store);
    ASSERT_TRUE(maildrop);
    std::multiset<std::string> found;
    for (std::uint32_t i = 0; i < maildrop->message_count(); ++i) {
        found.insert(read_message(*maildrop, i));
    }
    std::multiset<std::string> expected;
    for (int c = 0; c < children; ++c) {
        for (int n = 0; n < per_child; ++n) {
            expected.insert(body(c, n));
        }
    }
    EXPECT_EQ(found, expected);
}

TEST_F(MboxTest, WriteFailureIsTemporaryAndLeavesTheMboxAsItWas)
{
    deliver("Subject: first\n\n" + std::string(8000, 'f') + "\n");
    ASSERT_TRUE(open());
    const std::string before = read_file(mbox_path());
    // Room for the spooled message, not for appending it to the mbox; then not even for the spool.
    for (const rlim_t limit : {static_cast<rlim_t>(before.size() + 2000), static_cast<rlim_t>(1000)}) {
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            ::signal(SIGXFSZ, SIG_IGN);
            const rlimit fsize{limit, limit};
            ::setrlimit(RLIMIT_FSIZE, &fsize);
            MboxStore store(m_options);
            auto pending = store.begin("alice");
            if (!pending) {
                ::_exit(2);
            }
            bool write_failed = false;
            for (int i = 0; i < 5 && !write_failed; ++i) {
                write_failed = !(*pending)->write(std::string(1000, 'x') + "\n");
            }
            auto committed = (*pending)->commit();
            const bool temporary =
                !committed && committed.error() == make_error_code(errc::delivery_temporary_failure);
            ::_exit(temporary ? 0 : 1);
        }
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0) << "limit " << limit;
        EXPECT_TRUE(read_file(mbox_path()) == before) << "limit " << limit;
        EXPECT_FALSE(fs::exists(m_root / "alice.lock"));
    }
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_count(), 1U);
}

// --- crashes during a commit -------------------------------------------------------------------

class MboxCrashTest : public MboxTest {
protected:
    static constexpr int crashed_exit = 77;
    // Copies in small chunks, so that a crash can come between any two pieces of a message.
    static constexpr std::size_t fine_chunk_octets = 96;
    // Fewer steps where every step is combined with every other.
    static constexpr std::size_t coarse_chunk_octets = 1024;

    // Twelve messages written as Postfix would, one of each awkward kind among them.
    void set_up_mbox()
    {
        fs::remove_all(m_root);
        fs::create_directories(m_root);
        std::string raw;
        for (int i = 0; i < 12; ++i) {
            std::string message = "Subject: message " + std::to_string(i) + "\n\n";
            switch (i % 4) {
            case 0: message += "From the start of a line\n>From quoted\n"; break;
            case 1: message += "crlf\r\nlines\r\n"; break;
            case 2: message += std::string(static_cast<std::size_t>(1500 + 100 * i), 'x') + "\n"; break;
            default: message += "\n\nblank lines\n\n"; break;
            }
            raw += postfix_entry(message, i);
        }
        write_file(mbox_path(), raw);
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        m_snapshot = listing(*maildrop);
    }

    // The child: open, take a late delivery, commit the deletions; crash at I/O step `crash_at`.
    [[noreturn]] void commit_in_child(int crash_at, std::chrono::microseconds step_delay,
                                      std::size_t chunk_octets = fine_chunk_octets)
    {
        int steps = 0;
        MboxOptions options = m_options;
        options.test_hooks.copy_chunk_octets = chunk_octets;
        options.test_hooks.before_io_step = [&](std::string_view) {
            if (++steps == crash_at) {
                ::_exit(crashed_exit);
            }
            if (step_delay.count() > 0) {
                std::this_thread::sleep_for(step_delay);
            }
        };
        MboxStore store(options);
        auto maildrop = store.open("alice");
        if (!maildrop) {
            ::_exit(2);
        }
        if (!deliver_message(store, "alice", late_message)) {
            ::_exit(3);
        }
        ::_exit((*maildrop)->commit(deletions) ? 0 : 4);
    }

    // A replay in the child, crashing at step `crash_at`: exits 0 once it completes.
    [[noreturn]] void replay_in_child(int crash_at, std::size_t chunk_octets)
    {
        int steps = 0;
        MboxOptions options = m_options;
        options.test_hooks.copy_chunk_octets = chunk_octets;
        options.test_hooks.before_io_step = [&](std::string_view) {
            if (++steps == crash_at) {
                ::_exit(crashed_exit);
            }
        };
        MboxStore store(options);
        ::_exit(store.open("alice") ? 0 : 2);
    }

    static int wait_for(pid_t child)
    {
        int status = 0;
        if (::waitpid(child, &status, 0) != child) {
            return -1;
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : (WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : -2);
    }

    // What a crashed process leaves: a dotlock that the next one must find stale.
    void age_dotlock()
    {
        const fs::path lock = m_root / "alice.lock";
        const timespec old[2] = {{1'600'000'000, 0}, {1'600'000'000, 0}};
        ::utimensat(AT_FDCWD, lock.c_str(), old, AT_SYMLINK_NOFOLLOW);
    }

    // Postfix after the crash: it finds the dotlock stale, removes it, and appends.
    void append_after_crash()
    {
        ::unlink((m_root / "alice.lock").c_str());
        append_file(mbox_path(), postfix_entry(appended_message, 59));
    }

    // Every kept message exactly once, byte-identical, same unique-id; the deleted ones all gone
    // or all there; the late delivery and the mail appended after the crash exactly once.
    void verify(const std::string& when, bool appended)
    {
        SCOPED_TRACE(when);
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        const auto now = listing(*maildrop);
        std::map<std::string, std::vector<Listed>> by_uid;
        for (const auto& message : now) {
            by_uid[message.unique_id].push_back(message);
        }
        std::size_t deleted_present = 0;
        std::size_t expected_count = 0;
        for (std::size_t i = 0; i < m_snapshot.size(); ++i) {
            const bool doomed = std::find(deletions.begin(), deletions.end(),
                                          MessageIndex{static_cast<std::uint32_t>(i)}) != deletions.end();
            const auto found = by_uid.find(m_snapshot[i].unique_id);
            if (doomed) {
                if (found != by_uid.end()) {
                    ++deleted_present;
                    ASSERT_EQ(found->second.size(), 1U);
                    EXPECT_EQ(found->second[0], m_snapshot[i]);
                }
                continue;
            }
            ++expected_count;
            ASSERT_NE(found, by_uid.end()) << "lost message " << i;
            ASSERT_EQ(found->second.size(), 1U) << "duplicated message " << i;
            EXPECT_EQ(found->second[0], m_snapshot[i]) << "message " << i;
        }
        EXPECT_TRUE(deleted_present == 0 || deleted_present == deletions.size()) << deleted_present;
        const auto count_content = [&](const std::string& content) {
            return std::count_if(now.begin(), now.end(),
                                 [&](const Listed& m) { return m.content == content; });
        };
        EXPECT_LE(count_content(late_message), 1);
        expected_count += static_cast<std::size_t>(count_content(late_message));
        if (appended) {
            EXPECT_EQ(count_content(appended_message), 1);
            ++expected_count;
        }
        EXPECT_EQ(now.size(), expected_count + deleted_present);
        EXPECT_FALSE(fs::exists(journal_path()));
        for (const auto& item : fs::directory_iterator(m_root)) {
            EXPECT_EQ(item.path().string().find("set-aside"), std::string::npos) << item.path();
        }
        // The index written after recovery agrees with a parse from scratch.
        maildrop.reset();
        auto warm = open();
        ASSERT_TRUE(warm);
        EXPECT_EQ(listing(*warm), now);
    }

    std::vector<Listed> m_snapshot;
    const std::array<MessageIndex, 4> deletions{MessageIndex{0}, MessageIndex{2}, MessageIndex{5},
                                                MessageIndex{11}};
    const std::string late_message = "Subject: delivered during the session\n\nFrom late\n";
    // Longer than the deleted messages together, so that after a crash past the truncation
    // the file grows beyond its old size again.
    const std::string appended_message =
        "Subject: appended after the crash\n\nby postfix\n" + std::string(2500, 'p') + "\n";
};

TEST_F(MboxCrashTest, KilledAtEveryStepOfACommitLosesNothing)
{
    int crash_points = 0;
    bool completed = false;
    for (int crash_at = 1; crash_at < 2000 && !completed; ++crash_at) {
        set_up_mbox();
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            commit_in_child(crash_at, std::chrono::microseconds(0));
        }
        const int status = wait_for(child);
        ASSERT_TRUE(status == 0 || status == crashed_exit) << "step " << crash_at << " status " << status;
        completed = status == 0;
        crash_points += completed ? 0 : 1;
        age_dotlock();
        // Every other time, Postfix gets in before Pigeon looks at the mbox again.
        const bool appended = !completed && crash_at % 2 == 1;
        if (appended) {
            append_after_crash();
        }
        verify("crash before step " + std::to_string(crash_at), appended);
        if (HasFatalFailure()) {
            return;
        }
        if (completed) {
            // Nothing may remain of the deleted ones after a commit that finished.
            auto maildrop = open();
            ASSERT_TRUE(maildrop);
            EXPECT_EQ(maildrop->message_count(), m_snapshot.size() - deletions.size() + 1);
        }
    }
    EXPECT_TRUE(completed);
    EXPECT_GE(crash_points, 50);
    std::cout << "[ MboxCrash ] " << crash_points << " distinct crash points\n";
}

TEST_F(MboxCrashTest, KilledAgainWhileReplayingLosesNothing)
{
    // First count the steps of a whole commit.
    set_up_mbox();
    int total_steps = 0;
    {
        MboxOptions options = m_options;
        options.test_hooks.copy_chunk_octets = coarse_chunk_octets;
        options.test_hooks.before_io_step = [&](std::string_view) { ++total_steps; };
        MboxStore store(options);
        auto maildrop = open(store);
        ASSERT_TRUE(maildrop);
        ASSERT_TRUE(maildrop->commit(deletions));
    }
    ASSERT_GT(total_steps, 20);
    // Crash while writing the journal, while rewriting, and after truncating; then crash the
    // replay at each of its steps in turn.
    for (const int first_crash : {total_steps / 4, total_steps * 2 / 3, total_steps - 3}) {
        bool replay_completed = false;
        int replay_crashes = 0;
        for (int second_crash = 1; second_crash < 1000 && !replay_completed; ++second_crash) {
            set_up_mbox();
            const pid_t committer = ::fork();
            ASSERT_GE(committer, 0);
            if (committer == 0) {
                commit_in_child(first_crash, std::chrono::microseconds(0), coarse_chunk_octets);
            }
            ASSERT_EQ(wait_for(committer), crashed_exit);
            age_dotlock();
            const pid_t replayer = ::fork();
            ASSERT_GE(replayer, 0);
            if (replayer == 0) {
                replay_in_child(second_crash, coarse_chunk_octets);
            }
            const int status = wait_for(replayer);
            ASSERT_TRUE(status == 0 || status == crashed_exit) << status;
            replay_completed = status == 0;
            replay_crashes += replay_completed ? 0 : 1;
            age_dotlock();
            verify("crash at " + std::to_string(first_crash) + " then at " + std::to_string(second_crash),
                   false);
            if (HasFatalFailure()) {
                return;
            }
        }
        EXPECT_TRUE(replay_completed);
        EXPECT_GT(replay_crashes, 0) << "first crash at " << first_crash;
    }
}

TEST_F(MboxCrashTest, KilledByASignalAtRandomTimesLosesNothing)
{
    std::mt19937 random(4242);
    for (int round = 0; round < 8; ++round) {
        set_up_mbox();
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            commit_in_child(0, std::chrono::microseconds(300));
        }
        std::this_thread::sleep_for(std::chrono::microseconds(random() % 60'000));
        ::kill(child, SIGKILL);
        const int status = wait_for(child);
        ASSERT_TRUE(status == 0 || status == 1000 + SIGKILL) << status;
        age_dotlock();
        verify("SIGKILL in round " + std::to_string(round), false);
        if (HasFatalFailure()) {
            return;
        }
    }
}

TEST_F(MboxCrashTest, IncompleteJournalIsDiscardedAndTheMboxLeftAlone)
{
    set_up_mbox();
    const std::string before = read_file(mbox_path());
    for (const std::string& torn :
         {std::string("pigeon-mbox-journal 1 1 2 3"), std::string(),
          std::string("pigeon-mbox-journal 1 1 2 0 10 5 0 5 ") + std::string(32, 'a') + "\nFrom x"}) {
        write_file(journal_path(), torn);
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        EXPECT_EQ(listing(*maildrop), m_snapshot);
        EXPECT_FALSE(fs::exists(journal_path()));
        EXPECT_EQ(read_file(mbox_path()), before);
    }
}

TEST_F(MboxCrashTest, JournalOfAReplacedMboxIsSetAside)
{
    set_up_mbox();
    // Crash right after the journal is complete, before the mbox is touched.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        MboxOptions options = m_options;
        options.test_hooks.before_io_step = [](std::string_view step) {
            if (step == "rewrite-write") {
                ::_exit(crashed_exit);
            }
        };
        MboxStore store(options);
        auto maildrop = store.open("alice");
        ::_exit(maildrop && (*maildrop)->commit(deletions) ? 0 : 2);
    }
    ASSERT_EQ(wait_for(child), crashed_exit);
    ASSERT_TRUE(fs::exists(journal_path()));
    // Someone replaces the mbox by another file: the journal is not about it.
    const std::string replacement = postfix_entry("Subject: new file\n\n", 0);
    fs::remove(mbox_path());
    write_file(mbox_path(), replacement);
    age_dotlock();
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 1U);
    EXPECT_EQ(read_file(mbox_path()), replacement);
    bool set_aside = false;
    for (const auto& item : fs::directory_iterator(m_root)) {
        set_aside = set_aside || item.path().string().find(".pigeon-journal.set-aside.") != std::string::npos;
    }
    EXPECT_TRUE(set_aside);
}

// --- large deliveries cut short (the append mark) ------------------------------------------------

class MboxAppendMarkTest : public MboxTest {
protected:
    [[nodiscard]] fs::path mark_path() const { return m_root / ".alice.pigeon-append"; }
    // The mark a delivery of `entry_octets` starting with `head` writes before its first write.
    void write_mark(std::uint64_t original_size, std::uint64_t entry_octets, std::string_view entry_head)
    {
        struct stat st {};
        ASSERT_EQ(::stat(mbox_path().c_str(), &st), 0);
        write_file(mark_path(), "pigeon-mbox-append 1 " + std::to_string(st.st_dev) + " " +
                                    std::to_string(st.st_ino) + " " + std::to_string(original_size) + " " +
                                    std::to_string(entry_octets) + " " + std::to_string(entry_head.size()) +
                                    "\n" + std::string(entry_head));
    }
    static constexpr std::string_view head = "From pigeon@example.org  Mon Jan  1 00:00:09 2024\n";
};

TEST_F(MboxAppendMarkTest, ARemnantOfALargeDeliveryIsCutOffByTheNextLocker)
{
    deliver("Subject: one\n\nbody\n");
    const std::string before = read_file(mbox_path());
    write_mark(before.size(), 300000, head);
    append_file(mbox_path(), std::string(head) + "Subject: big\n\n" + std::string(5000, 'x'));

    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_count(), 1U);
    EXPECT_EQ(read_file(mbox_path()), before);
    EXPECT_FALSE(fs::exists(mark_path()));
}

TEST_F(MboxAppendMarkTest, ADeliveryCutShortIsSettledBeforeTheNextOne)
{
    deliver("Subject: one\n\nbody\n");
    const std::string before = read_file(mbox_path());
    write_mark(before.size(), 300000, head);
    append_file(mbox_path(), head); // only its From_ line: an empty message if left

    deliver("Subject: two\n\nbody\n");
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 2U);
    EXPECT_EQ(read_message(*maildrop, 1), "Subject: two\n\nbody\n");
    EXPECT_FALSE(fs::exists(mark_path()));
}

TEST_F(MboxAppendMarkTest, AWholeDeliveryIsKeptWithMailAppendedAfterIt)
{
    deliver("Subject: one\n\nbody\n");
    const std::string before = read_file(mbox_path());
    const std::string entry = std::string(head) + "Subject: big\n\n" + std::string(5000, 'x') + "\n\n";
    write_mark(before.size(), entry.size(), head);
    append_file(mbox_path(), entry + postfix_entry("Subject: later\n\nhi\n", 3));
    const std::string all = read_file(mbox_path());

    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_count(), 3U);
    EXPECT_EQ(read_file(mbox_path()), all);
    EXPECT_FALSE(fs::exists(mark_path()));
}

TEST_F(MboxAppendMarkTest, MailAppendedAfterARemnantIsLeftAloneAndTheMarkSetAside)
{
    deliver("Subject: one\n\nbody\n");
    const std::string before = read_file(mbox_path());
    write_mark(before.size(), 300000, head);
    append_file(mbox_path(),
                std::string(head) + "Subject: big\n\nxxx\n\n" + postfix_entry("Subject: later\n\nhi\n", 3));
    const std::string all = read_file(mbox_path());

    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_count(), 3U); // nothing removed that is not surely ours
    EXPECT_EQ(read_file(mbox_path()), all);
    EXPECT_FALSE(fs::exists(mark_path()));
    EXPECT_TRUE(fs::exists(mark_path().string() + ".set-aside"));
}

TEST_F(MboxAppendMarkTest, AMarkWithoutItsHeadLeavesWhatFollowsAlone)
{
    deliver("Subject: one\n\nbody\n");
    const std::string before = read_file(mbox_path());
    write_mark(before.size(), 300000, head); // the crash came before the first write
    append_file(mbox_path(), postfix_entry("Subject: later\n\nhi\n", 3));
    const std::string all = read_file(mbox_path());

    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_count(), 2U);
    EXPECT_EQ(read_file(mbox_path()), all);
}

TEST_F(MboxAppendMarkTest, ALargeDeliveryLeavesNoMark)
{
    deliver("Subject: big\n\n" + std::string(200000, 'y') + "\n");
    EXPECT_FALSE(fs::exists(mark_path()));
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_count(), 1U);
}

} // namespace
} // namespace pigeon::storage
