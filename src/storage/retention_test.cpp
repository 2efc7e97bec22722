#include "storage/retention.hpp"

#include "storage/fs_util.hpp"
#include "storage/maildir/maildir_store.hpp"
#include "storage/memory/memory_maildrop.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace pigeon::storage {
namespace {

namespace fs = std::filesystem;
constexpr std::int64_t day = 86'400;
constexpr std::int64_t t0 = 1'800'000'000;

class Listing final : public MessageListing {
public:
    explicit Listing(std::vector<std::string> uids) : m_uids(std::move(uids)) {}
    [[nodiscard]] std::uint32_t message_count() const noexcept override
    {
        return static_cast<std::uint32_t>(m_uids.size());
    }
    [[nodiscard]] std::uint64_t message_octets(MessageIndex /*index*/) const noexcept override { return 10; }
    [[nodiscard]] std::string_view unique_id(MessageIndex index) const noexcept override
    {
        return m_uids[index.value];
    }

private:
    std::vector<std::string> m_uids;
};

std::vector<std::uint32_t> values(const std::vector<MessageIndex>& indexes)
{
    std::vector<std::uint32_t> out;
    for (const auto index : indexes) {
        out.push_back(index.value);
    }
    return out;
}

TEST(Retention, ExpireZeroDeletesWhatWasRetrievedAndWhatTheClientDeleted)
{
    const Listing listing({"a", "b", "c", "d"});
    const std::vector<MessageIndex> dele{MessageIndex{3}};
    const std::vector<MessageIndex> retr{MessageIndex{0}, MessageIndex{3}};
    const auto plan = plan_retention(listing, "", dele, retr, t0, 0);
    EXPECT_EQ(values(plan.deletions), (std::vector<std::uint32_t>{0, 3}));
    EXPECT_EQ(plan.expired, 1U);
    EXPECT_TRUE(plan.record.empty());
}

TEST(Retention, ExpireDaysCountsFromTheFirstRetrieval)
{
    const Listing listing({"a", "b", "c"});
    const std::vector<MessageIndex> none;
    const std::vector<MessageIndex> first{MessageIndex{0}};
    auto plan = plan_retention(listing, "", none, first, t0, 3);
    EXPECT_TRUE(plan.deletions.empty()); // retrieved now: kept for three days
    EXPECT_EQ(plan.record, "pigeon-retrieved 1\n1800000000 a\n");
    // Retrieved again two days later: the first retrieval still counts; "b" is new.
    const std::vector<MessageIndex> again{MessageIndex{0}, MessageIndex{1}};
    plan = plan_retention(listing, plan.record, none, again, t0 + 2 * day, 3);
    EXPECT_TRUE(plan.deletions.empty());
    EXPECT_EQ(plan.record, "pigeon-retrieved 1\n1800000000 a\n1800172800 b\n");
    // Three days after the first: "a" goes, "b" stays, "c" (never retrieved) stays.
    plan = plan_retention(listing, plan.record, none, none, t0 + 3 * day, 3);
    EXPECT_EQ(values(plan.deletions), std::vector<std::uint32_t>{0});
    EXPECT_EQ(plan.expired, 1U);
    EXPECT_EQ(plan.record, "pigeon-retrieved 1\n1800172800 b\n");
}

TEST(Retention, AHostileOrDamagedRecordNeverExpiresEarly)
{
    const Listing listing({"a", "b", "c", "d"});
    const std::vector<MessageIndex> none;
    const std::string record = "pigeon-retrieved 1\n"
                               "-5 a\n"             // negative: dropped
                               "99999999999999 b\n" // in the future: counts as now
                               "12x c\n"            // not a number: dropped
                               "1000 d e\n"         // a UIDL with a space: dropped
                               "1000 " +
                               std::string(71, 'x') +
                               "\n"      // too long a UIDL
                               "1000 d"; // torn last line: dropped
    const auto plan = plan_retention(listing, record, none, none, t0, 1);
    EXPECT_TRUE(plan.deletions.empty());
    EXPECT_EQ(plan.record, "pigeon-retrieved 1\n1800000000 b\n");
    // A record without its header is not trusted at all.
    const auto headless = plan_retention(listing, "1000 a\n", none, none, t0, 1);
    EXPECT_TRUE(headless.deletions.empty());
}

TEST(Retention, MaildirEndToEnd)
{
    const fs::path root = fs::temp_directory_path() / ("pigeon-retention-" + std::to_string(::getpid()));
    fs::remove_all(root);
    for (const char* sub : {"cur", "new", "tmp"}) {
        fs::create_directories(root / sub);
    }
    std::ofstream(root / "new/1700000000.M1P1.host") << "Subject: one\n\nbody\n";
    std::ofstream(root / "new/1700000001.M1P1.host") << "Subject: two\n\nbody\n";
    MaildirStore store(MaildirOptions{"/unused/%u", false, "test.example"});
    const std::vector<MessageIndex> none;
    {
        auto maildrop = store.open_path(root.string());
        ASSERT_TRUE(maildrop);
        const std::vector<MessageIndex> retr{MessageIndex{0}};
        auto expired = commit_with_retention(**maildrop, none, retr, t0, 2);
        ASSERT_TRUE(expired);
        EXPECT_EQ(*expired, 0U);
    }
    EXPECT_TRUE(fs::exists(root / maildir_retrieval_record_file));
    {
        auto maildrop = store.open_path(root.string());
        ASSERT_TRUE(maildrop);
        ASSERT_EQ((*maildrop)->message_count(), 2U);
        auto expired = commit_with_retention(**maildrop, none, none, t0 + 2 * day, 2);
        ASSERT_TRUE(expired);
        EXPECT_EQ(*expired, 1U);
    }
    {
        auto maildrop = store.open_path(root.string());
        ASSERT_TRUE(maildrop);
        ASSERT_EQ((*maildrop)->message_count(), 1U);
        EXPECT_EQ((*maildrop)->unique_id(MessageIndex{0}), "1700000001.M1P1.host");
    }
    fs::remove_all(root);
}

TEST(Retention, WithoutARecordOnlyExpireZeroApplies)
{
    MemoryMaildropStore store;
    store.add_message("alice", {"u1", "Subject: a\n\nx\n"});
    store.add_message("alice", {"u2", "Subject: b\n\ny\n"});
    const std::vector<MessageIndex> none;
    const std::vector<MessageIndex> retr{MessageIndex{0}};
    {
        auto maildrop = store.open("alice");
        ASSERT_TRUE(maildrop);
        auto expired = commit_with_retention(**maildrop, none, retr, t0, 5);
        ASSERT_TRUE(expired);
        EXPECT_EQ(*expired, 0U);
    }
    EXPECT_EQ(store.messages("alice").size(), 2U);
    {
        auto maildrop = store.open("alice");
        ASSERT_TRUE(maildrop);
        auto expired = commit_with_retention(**maildrop, none, retr, t0, 0);
        ASSERT_TRUE(expired);
        EXPECT_EQ(*expired, 1U);
    }
    ASSERT_EQ(store.messages("alice").size(), 1U);
    EXPECT_EQ(store.messages("alice")[0].unique_id, "u2");
}

} // namespace
} // namespace pigeon::storage
