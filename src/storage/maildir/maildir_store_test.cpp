#include "storage/maildir/maildir_store.hpp"

#include "protocol/dot_stuffer.hpp"
#include "storage/maildir/dovecot_uidlist.hpp"
#include "storage/maildir/maildir_name.hpp"

#include <gtest/gtest.h>

#include <array>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pigeon::storage {
namespace {

namespace fs = std::filesystem;

class MaildirTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_root =
            fs::temp_directory_path() / ("pigeon-maildir-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_root);
        for (const char* sub : {"cur", "new", "tmp"}) {
            fs::create_directories(m_root / sub);
        }
    }
    void TearDown() override { fs::remove_all(m_root); }

    void put(const std::string& relative, const std::string& content)
    {
        std::ofstream(m_root / relative, std::ios::binary) << content;
    }
    // Makes the directories look settled, so the index may vouch for them.
    void age_directories()
    {
        const timespec past[2] = {{1'600'000'000, 0}, {1'600'000'000, 0}};
        for (const char* sub : {"cur", "new"}) {
            ::utimensat(AT_FDCWD, (m_root / sub).c_str(), past, 0);
        }
    }
    std::unique_ptr<Maildrop> open()
    {
        auto maildrop = m_store.open_path(m_root.string());
        EXPECT_TRUE(maildrop) << (maildrop ? "" : maildrop.error().message());
        return maildrop ? std::move(*maildrop) : nullptr;
    }
    static std::vector<std::pair<std::string, std::uint64_t>> listing(Maildrop& maildrop)
    {
        std::vector<std::pair<std::string, std::uint64_t>> out;
        for (std::uint32_t i = 0; i < maildrop.message_count(); ++i) {
            out.emplace_back(std::string(maildrop.unique_id(MessageIndex{i})),
                             maildrop.message_octets(MessageIndex{i}));
        }
        return out;
    }
    static std::string read_all(Maildrop& maildrop, std::uint32_t index)
    {
        auto reader = maildrop.open_message(MessageIndex{index});
        EXPECT_TRUE(reader);
        if (!reader) {
            return {};
        }
        std::string out;
        std::array<char, 100> buffer{};
        while (auto count = (*reader)->read(buffer)) {
            if (*count == 0) {
                break;
            }
            out.append(buffer.data(), *count);
        }
        return out;
    }

    fs::path m_root;
    MaildirStore m_store{MaildirOptions{"/unused/%u", false, "test.example"}};
};

TEST_F(MaildirTest, ReadsNewAndCurIgnoresTmpAndStrayFiles)
{
    put("new/1700000001.M1P1.host", "Subject: a\n\nnew\n");
    put("cur/1700000000.M1P1.host:2,S", "Subject: b\n\ncur\n");
    put("tmp/1700000002.M1P1.host", "Subject: c\n\nbeing delivered\n");
    put("cur/.hidden", "x");
    put("new/.nfs000001", "x");
    put("stray-in-root", "x");
    fs::create_directories(m_root / "cur" / "subdir");
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 2U);
    // Delivery order (the time the name starts with), whichever directory.
    EXPECT_EQ(maildrop->unique_id(MessageIndex{0}), "1700000000.M1P1.host");
    EXPECT_EQ(maildrop->unique_id(MessageIndex{1}), "1700000001.M1P1.host");
    EXPECT_EQ(read_all(*maildrop, 0), "Subject: b\n\ncur\n");
}

TEST_F(MaildirTest, SizeComesFromTheWFieldWithoutReadingTheFile)
{
    put("new/1700000000.M1P1.host,S=5,W=999", "short");
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_octets(MessageIndex{0}), 999U);
}

TEST_F(MaildirTest, WarmIndexServesTheSnapshotWithoutReadingFiles)
{
    put("cur/1700000000.M1P1.host:2,", "Subject: a\n\nbody\n");
    age_directories();
    std::vector<std::pair<std::string, std::uint64_t>> first;
    {
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        first = listing(*maildrop);
        EXPECT_EQ(first[0].second, protocol::wire_size("Subject: a\n\nbody\n"));
    }
    ASSERT_TRUE(fs::exists(m_root / maildir_index_file));
    // Rewriting a file's content does not touch its directory: the index must be what answers.
    {
        std::ofstream(m_root / "cur/1700000000.M1P1.host:2,", std::ios::binary | std::ios::trunc) << "x";
    }
    age_directories();
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(listing(*maildrop), first);
}

TEST_F(MaildirTest, QuitWithoutDeletionsLeavesTheIndexWarm)
{
    // A session that deletes nothing must not cost the next login a rescan: the index keeps
    // vouching for both directories (its content is not rewritten at all).
    put("cur/1700000000.M1P1.host:2,", "Subject: a\n\nbody\n");
    age_directories();
    {
        ASSERT_TRUE(open());
    }
    const auto index_before = fs::last_write_time(m_root / maildir_index_file);
    std::string text_before;
    std::getline(std::ifstream(m_root / maildir_index_file), text_before, '\0');
    {
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        ASSERT_TRUE(maildrop->commit({}));
    }
    std::string text_after;
    std::getline(std::ifstream(m_root / maildir_index_file), text_after, '\0');
    EXPECT_EQ(text_after, text_before);
    EXPECT_EQ(fs::last_write_time(m_root / maildir_index_file), index_before);
    EXPECT_NE(text_after.find("cur 1600000000000000000 1"), std::string::npos) << text_after;
}

TEST_F(MaildirTest, AnOpenMaildropHoldsNoDescriptor)
{
    // Ten thousand idle sessions must need ten thousand descriptors (their sockets), not more:
    // between calls a maildrop keeps nothing open, not even its lock file.
    put("new/1700000001.M1P1.host", "Subject: a\n\nnew\n");
    put("cur/1700000000.M1P1.host:2,S", "Subject: b\n\ncur\n");
    const auto open_descriptors = [] {
        return std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator{});
    };
    const auto before = open_descriptors();
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(read_all(*maildrop, 1), "Subject: a\n\nnew\n");
    EXPECT_EQ(open_descriptors(), before);
}

TEST_F(MaildirTest, UniqueIdsSurviveIndexLossDamageAndFlagRenames)
{
    put("new/1700000000.M1P1.host", "Subject: a\n\none\n");
    put("cur/1700000001.M1P1.host:2,", "Subject: b\n\ntwo\n");
    put("cur/" + std::string(80, 'L') + ":2,", "Subject: long name\n\nthree\n");
    std::vector<std::pair<std::string, std::uint64_t>> first;
    {
        auto maildrop = open();
        ASSERT_TRUE(maildrop);
        first = listing(*maildrop);
    }
    ASSERT_EQ(first.size(), 3U);
    EXPECT_EQ(first[2].first.size(), 32U); // an 80-character base name is too long: a digest stands in
    for (const auto& [uid, octets] : first) {
        EXPECT_TRUE(maildir::is_valid_unique_id(uid)) << uid;
    }

    fs::remove(m_root / maildir_index_file);
    EXPECT_EQ(listing(*open()), first);

    put(maildir_index_file, "pigeon-maildir-index 1\nnew 5 1\ncur 7 1\n12 c - half a li");
    EXPECT_EQ(listing(*open()), first);
    put(maildir_index_file, std::string("\0\xff garbage", 10));
    EXPECT_EQ(listing(*open()), first);

    // A mail reader marks a message seen and moves a new one to cur/.
    fs::rename(m_root / "cur/1700000001.M1P1.host:2,", m_root / "cur/1700000001.M1P1.host:2,RS");
    fs::rename(m_root / "new/1700000000.M1P1.host", m_root / "cur/1700000000.M1P1.host:2,S");
    EXPECT_EQ(listing(*open()), first);
}

TEST_F(MaildirTest, RenameDuringTheSessionIsFollowed)
{
    put("cur/1700000000.M1P1.host:2,", "Subject: a\n\none\n");
    put("cur/1700000001.M1P1.host:2,", "Subject: b\n\ntwo\n");
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    fs::rename(m_root / "cur/1700000000.M1P1.host:2,", m_root / "cur/1700000000.M1P1.host:2,S");
    EXPECT_EQ(read_all(*maildrop, 0), "Subject: a\n\none\n");
    fs::rename(m_root / "cur/1700000001.M1P1.host:2,", m_root / "cur/1700000001.M1P1.host:2,F");
    const std::array<MessageIndex, 1> deletions{MessageIndex{1}};
    ASSERT_TRUE(maildrop->commit(deletions));
    EXPECT_FALSE(fs::exists(m_root / "cur/1700000001.M1P1.host:2,F"));
    EXPECT_TRUE(fs::exists(m_root / "cur/1700000000.M1P1.host:2,S"));
}

TEST_F(MaildirTest, MessageDeletedByAnotherReaderIsUnavailableNotFatal)
{
    put("cur/1700000000.M1P1.host:2,", "Subject: a\n\none\n");
    put("cur/1700000001.M1P1.host:2,", "Subject: b\n\ntwo\n");
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    fs::remove(m_root / "cur/1700000000.M1P1.host:2,");
    auto reader = maildrop->open_message(MessageIndex{0});
    ASSERT_FALSE(reader);
    EXPECT_EQ(reader.error(), make_error_code(errc::message_unavailable));
    const std::array<MessageIndex, 2> deletions{MessageIndex{0}, MessageIndex{1}};
    EXPECT_TRUE(maildrop->commit(deletions)); // already gone counts as deleted
    maildrop.reset();
    EXPECT_EQ(open()->message_count(), 0U);
}

TEST_F(MaildirTest, DovecotUidlistGivesDovecotsUniqueIdsAndOrder)
{
    put("cur/1700000005.M1P1.host,S=16,W=18:2,S", "Subject: a\n\none\n");
    put("cur/1700000001.M1P1.host:2,", "Subject: b\n\ntwo\n");
    put("new/1700000003.M1P1.host", "Subject: c\n\nthree\n");
    put("new/1700000009.M1P1.host", "Subject: d\n\nnot yet seen by dovecot\n");
    put("dovecot-uidlist", "3 V1732790000 N4 G0a1b2c3d4e5f\n"
                           "1 W18 :1700000005.M1P1.host,S=16,W=18\n"
                           "2 :1700000001.M1P1.host\n"
                           "3 P000000b1migrated :1700000003.M1P1.host\n");
    auto maildrop = open();
    ASSERT_TRUE(maildrop);
    const auto uids = listing(*maildrop);
    ASSERT_EQ(uids.size(), 4U);
    EXPECT_EQ(uids[0].first, "00000001674846f0"); // %08Xu%08Xv, lower case as Dovecot prints it
    EXPECT_EQ(uids[1].first, "00000002674846f0");
    EXPECT_EQ(uids[2].first, "000000b1migrated"); // Dovecot's recorded POP3 UIDL wins
    EXPECT_EQ(uids[3].first, "1700000009.M1P1.host");
}

TEST(DovecotUidlist, ParsesVersionsOneAndThree)
{
    auto v3 = maildir::parse_uidlist("3 V42 N3 Gabc\n1 :a.host\n2 W10 S9 :b.host:2,S\nbogus line\n");
    ASSERT_TRUE(v3);
    EXPECT_EQ(v3->uidvalidity, 42U);
    EXPECT_EQ(v3->by_base_name.at("b.host").uid, 2U);
    EXPECT_EQ(v3->unique_id(v3->by_base_name.at("a.host"), "a.host"), "000000010000002a");
    auto v1 = maildir::parse_uidlist("1 1000 3\n1 x.host\n2 y.host:2,\n");
    ASSERT_TRUE(v1);
    EXPECT_EQ(v1->by_base_name.at("y.host").uid, 2U);
    EXPECT_FALSE(maildir::parse_uidlist("9 nonsense\n"));
    EXPECT_FALSE(maildir::parse_uidlist(""));
}

TEST_F(MaildirTest, DeliveryNamesCarrySizesAndLeaveTmpEmpty)
{
    const std::string message = "Subject: x\n\n.dot\nline\n";
    MaildirStore store(MaildirOptions{m_root.string(), false, "test.example"});
    auto uid = deliver_message(store, "ignored", message);
    ASSERT_TRUE(uid);
    std::vector<std::string> names;
    for (const auto& item : fs::directory_iterator(m_root / "new")) {
        names.push_back(item.path().filename().string());
    }
    ASSERT_EQ(names.size(), 1U);
    EXPECT_NE(names[0].find(",S=" + std::to_string(message.size()) +
                            ",W=" + std::to_string(protocol::wire_size(message))),
              std::string::npos);
    EXPECT_EQ(*uid, maildir::unique_id_for_base_name(names[0]));
    EXPECT_TRUE(fs::is_empty(m_root / "tmp"));
}

// A full disk (here: a file-size limit, which fails writes with EFBIG as ENOSPC would) is a
// temporary failure and leaves nothing in new/ or tmp/.
TEST_F(MaildirTest, WriteFailureIsTemporaryAndLeavesNothing)
{
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit limit{4096, 4096};
        ::setrlimit(RLIMIT_FSIZE, &limit);
        MaildirStore store(MaildirOptions{m_root.string(), false, "test.example"});
        auto pending = store.begin_path(m_root.string());
        if (!pending) {
            ::_exit(2);
        }
        const std::string chunk(1000, 'x');
        bool failed = false;
        for (int i = 0; i < 10 && !failed; ++i) {
            failed = !(*pending)->write(chunk);
        }
        auto committed = (*pending)->commit();
        const bool temporary =
            !committed && committed.error() == make_error_code(errc::delivery_temporary_failure);
        pending->reset();
        ::_exit(failed && temporary ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_TRUE(fs::is_empty(m_root / "new"));
    EXPECT_TRUE(fs::is_empty(m_root / "tmp"));
}

TEST(MaildirName, Fields)
{
    EXPECT_EQ(maildir::base_name("1.M2P3.host,S=10,W=12:2,RS"), "1.M2P3.host,S=10,W=12");
    EXPECT_EQ(maildir::wire_size_field("1.M2P3.host,S=10,W=12:2,RS"), 12U);
    EXPECT_EQ(maildir::disk_size_field("1.M2P3.host,S=10,W=12:2,RS"), 10U);
    EXPECT_FALSE(maildir::wire_size_field("1.M2P3.host:2,W=5"));
    EXPECT_FALSE(maildir::wire_size_field("1.M2P3.host,W=x"));
    EXPECT_FALSE(maildir::is_message_file_name(".hidden"));
    EXPECT_FALSE(maildir::is_message_file_name(":2,S"));
    EXPECT_EQ(maildir::new_base_name(1, 2, 3, 4, "a/b:c"), "1.M2P3Q4.a\\057b\\072c");
    EXPECT_EQ(maildir::unique_id_for_base_name(std::string(71, 'x')).size(), 32U);
    EXPECT_NE(maildir::unique_id_for_base_name(std::string(71, 'x')),
              maildir::unique_id_for_base_name(std::string(72, 'x')));
}

} // namespace
} // namespace pigeon::storage
