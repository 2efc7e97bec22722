#include "delivery/maildrop_usage.hpp"

#include "storage/delivery.hpp"
#include "storage/fs_util.hpp"
#include "storage/maildir/maildir_store.hpp"
#include "storage/mbox/mbox_store.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

namespace pigeon::delivery {
namespace {

namespace fs = std::filesystem;

class UsageTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_dir = fs::temp_directory_path() / ("pigeon-usage-" + std::to_string(::getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
    }
    void TearDown() override { fs::remove_all(m_dir); }

    [[nodiscard]] std::string maildir(const std::string& user = "alice") const
    {
        return (m_dir / user).string();
    }
    void put(const std::string& relative, const std::string& content) const
    {
        fs::create_directories((m_dir / relative).parent_path());
        std::ofstream(m_dir / relative, std::ios::binary) << content;
    }
    // Makes cur/ look settled, so a count may vouch for it (a directory changed within the last
    // two seconds may change again unseen within the same timestamp tick).
    void age(const std::string& user = "alice") const
    {
        const std::array<timespec, 2> past{{{1'600'000'000, 0}, {1'600'000'000, 0}}};
        for (const char* sub : {"cur", "new"}) {
            ::utimensat(AT_FDCWD, (m_dir / user / sub).c_str(), past.data(), 0);
        }
        const std::string index = (m_dir / user / storage::maildir_index_file).string();
        ::utimensat(AT_FDCWD, index.c_str(), past.data(), 0);
    }
    [[nodiscard]] storage::MboxOptions mbox_options() const
    {
        storage::MboxOptions options;
        options.path_template = (m_dir / "%u").string();
        return options;
    }
    [[nodiscard]] std::string cache_text(const std::string& user = "alice") const
    {
        std::ifstream in(m_dir / user / maildir_usage_file, std::ios::binary);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

    [[nodiscard]] const fs::path& dir() const noexcept { return m_dir; }

private:
    fs::path m_dir;
};

TEST_F(UsageTest, MissingMaildropIsEmpty)
{
    MaildirUsage usage((dir() / "%u").string());
    EXPECT_EQ(usage.usage("nobody", Freshness::cached).value(), (Usage{0, 0}));
    EXPECT_FALSE(fs::exists(dir() / "nobody")); // nothing created
    EXPECT_EQ(usage.location("nobody"), (dir() / "nobody").string());
    EXPECT_FALSE(usage.usage("../x", Freshness::cached)); // not a safe user name
}

TEST_F(UsageTest, CountsSizesFromNamesAndFilesWithoutThem)
{
    put("alice/new/1.M1P1.host,S=100,W=104", "ignored: the name says 100");
    put("alice/cur/2.M2P2.host,S=50:2,S", "x");
    put("alice/cur/3.M3P3.host:2,", "twelve bytes");
    put("alice/new/.hidden", "not a message");
    put("alice/tmp/4.M4P4.host", "not delivered yet");
    // The same message seen in new/ and cur/ (a reader moving it) counts once.
    put("alice/new/5.M5P5.host,S=7", "1234567");
    put("alice/cur/5.M5P5.host,S=7:2,S", "1234567");
    fs::create_directories(dir() / "alice/cur/6.M6P6.host,S=9"); // a directory, not a message
    EXPECT_EQ(MaildirUsage::count(maildir()).value(), (Usage{4, 100 + 50 + 12 + 7}));
    MaildirUsage usage((dir() / "%u").string());
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{4, 169}));
}

TEST_F(UsageTest, CacheServesChecksAndRecordsDeliveries)
{
    put("alice/new/1.M1P1.host,S=100", "");
    fs::create_directories(dir() / "alice/cur");
    age();
    MaildirUsage usage((dir() / "%u").string());
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{1, 100}));
    EXPECT_TRUE(cache_text().starts_with("pigeon-quota 2\n1 100 "));
    EXPECT_TRUE(cache_text().ends_with(" 1\n")); // trusted: cur/ is settled

    // A message another program put in new/ is not seen while the count stands: the cache, not
    // the directory, answered.
    put("alice/new/2.M2P2.host,S=5000", "");
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{1, 100}));
    // Deliveries through the tracker are appended and counted.
    usage.delivered("alice", 30, storage::now_ns());
    usage.delivered("alice", 12, storage::now_ns());
    EXPECT_TRUE(cache_text().ends_with("+30\n+12\n"));
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{3, 142}));
    // Before a refusal, a count older than refusal_recount_after is done again.
    MaildirUsage strict((dir() / "%u").string(),
                        UsageCacheOptions{256, std::chrono::seconds(3600), std::chrono::seconds(0)});
    EXPECT_EQ(strict.usage("alice", Freshness::cached).value(), (Usage{3, 142}));
    EXPECT_EQ(strict.usage("alice", Freshness::before_refusal).value(), (Usage{2, 5100}));
    EXPECT_FALSE(cache_text().ends_with("+12\n")); // a new count starts a new file
}

// A count made between a message's commit and the record of it (another delivery's check, in
// another process) lists the message already: the record must not count it a second time. A
// count made before the commit does not have it, and is added to.
TEST_F(UsageTest, ADeliveryIsNotRecordedOntoACountThatAlreadyHasIt)
{
    put("alice/new/1.M1P1.host,S=100", "");
    fs::create_directories(dir() / "alice/cur");
    age();
    MaildirUsage usage((dir() / "%u").string(),
                       UsageCacheOptions{256, std::chrono::seconds(3600), std::chrono::seconds(0)});
    ASSERT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{1, 100}));

    // Committed, then counted (a refusal's recount in another process), then recorded.
    put("alice/new/2.M2P2.host,S=30", "");
    const std::int64_t committed = storage::now_ns();
    ASSERT_EQ(usage.usage("alice", Freshness::before_refusal).value(), (Usage{2, 130}));
    usage.delivered("alice", 30, committed);
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{2, 130}));
    EXPECT_FALSE(cache_text().ends_with("+30\n"));

    // Counted, then committed and recorded: the count lacks it, the record adds it.
    put("alice/new/3.M3P3.host,S=12", "");
    usage.delivered("alice", 12, storage::now_ns());
    EXPECT_TRUE(cache_text().ends_with("+12\n"));
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{3, 142}));
}

TEST_F(UsageTest, TooManyRecordedDeliveriesOrAnOldCountMeanACount)
{
    put("alice/new/1.M1P1.host,S=10", "");
    fs::create_directories(dir() / "alice/cur");
    age();
    MaildirUsage usage((dir() / "%u").string(),
                       UsageCacheOptions{2, std::chrono::seconds(3600), std::chrono::seconds(60)});
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{1, 10}));
    put("alice/new/2.M2P2.host,S=20", ""); // unrecorded: seen only by a count
    usage.delivered("alice", 1, storage::now_ns());
    usage.delivered("alice", 1, storage::now_ns());
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{3, 12}));
    usage.delivered("alice", 1, storage::now_ns()); // the third line: past max_recorded_deliveries
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{2, 30}));

    MaildirUsage young((dir() / "%u").string(),
                       UsageCacheOptions{256, std::chrono::seconds(0), std::chrono::seconds(60)});
    put("alice/new/3.M3P3.host,S=40", "");
    EXPECT_EQ(young.usage("alice", Freshness::cached).value(), (Usage{3, 70}));
}

TEST_F(UsageTest, APop3DeletionIsNoticedThroughTheIndex)
{
    storage::MaildirStore store(storage::MaildirOptions{(dir() / "%u").string(), false, "host"});
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(storage::deliver_message(store, "alice", "Subject: x\n\nbody\n"));
    }
    {
        auto maildrop = store.open("alice"); // POP3 login: writes pigeon-index
        ASSERT_TRUE(maildrop);
    }
    age();
    MaildirUsage usage((dir() / "%u").string());
    const Usage full = usage.usage("alice", Freshness::cached).value();
    EXPECT_EQ(full.messages, 3U);
    EXPECT_EQ(full.octets, 3 * std::string("Subject: x\n\nbody\n").size());
    {
        auto maildrop = store.open("alice");
        ASSERT_TRUE(maildrop);
        const std::array<MessageIndex, 2> deletions{MessageIndex{0}, MessageIndex{2}};
        ASSERT_TRUE((*maildrop)->commit(deletions)); // DELE 1, DELE 3, QUIT
    }
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value().messages, 1U);
}

TEST_F(UsageTest, CorruptCacheIsCountedAgain)
{
    put("alice/new/1.M1P1.host,S=10", "");
    fs::create_directories(dir() / "alice/cur");
    for (const std::string garbage :
         {"", "pigeon-quota 2\n", "pigeon-quota 2\n1 10 0 0 0 0 0 0 1\n", "pigeon-quota 2\nx y\n",
          "pigeon-quota 2\n-1 10 0 0 0 0 0 0 1\n", "pigeon-quota 2\n1 10 0 0 0 0 0 0 1\n+abc\n"}) {
        put(std::string("alice/") + maildir_usage_file, garbage);
        MaildirUsage usage((dir() / "%u").string());
        EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{1, 10})) << garbage;
    }
}

TEST_F(UsageTest, MboxCountsFromLinesAfterBlankLinesAndReadsOnlyANewTail)
{
    auto store = std::make_shared<storage::MboxStore>(mbox_options());
    MboxUsage usage(store);
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{0, 0}));
    const std::string mbox =
        "From a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\nbody\nFrom here, after text: no From_ line\n"
        "\nFrom b@x Mon Jan  1 00:00:00 2024\r\nSubject: 2\r\n\r\n>From quoted\r\n"
        "\nFrom c@x Mon Jan  1 00:00:00 2024\nSubject: 3\n\nbody\n";
    put("alice", mbox);
    EXPECT_EQ(MboxUsage::count_messages((dir() / "alice").string()).value(), 3U);
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{3, mbox.size()}));
    // An MTA appends one message: counted from the tail.
    const std::string more = "\nFrom d@x Mon Jan  1 00:00:00 2024\nSubject: 4\n\nx\nFrom not a new one\n";
    {
        std::ofstream out(dir() / "alice", std::ios::binary | std::ios::app);
        out << more;
    }
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value(), (Usage{4, mbox.size() + more.size()}));
    // A rewrite that shrinks it (a POP3 deletion) is counted whole.
    put("alice", "From a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\nx\n");
    EXPECT_EQ(usage.usage("alice", Freshness::cached).value().messages, 1U);
}

TEST_F(UsageTest, MboxDeliveriesThroughTheStoreAreCounted)
{
    auto store = std::make_shared<storage::MboxStore>(mbox_options());
    MboxUsage usage(store);
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(storage::deliver_message(*store, "bob", "Subject: x\n\nFrom me\n\nFrom you\n"));
        EXPECT_EQ(usage.usage("bob", Freshness::cached).value().messages, static_cast<std::uint64_t>(i + 1));
    }
    EXPECT_EQ(usage.location("bob"), (dir() / "bob").string());
}

} // namespace
} // namespace pigeon::delivery
