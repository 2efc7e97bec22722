// One conformance suite for every storage backend (shared/DESIGN.md §9): each backend must
// behave like the in-memory reference for everything POP3 and delivery rely on.
#include "protocol/dot_stuffer.hpp"
#include "storage/delivery.hpp"
#include "storage/maildir/maildir_store.hpp"
#include "storage/maildrop.hpp"
#include "storage/mbox/mbox_store.hpp"
#include "storage/memory/memory_maildrop.hpp"

#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <functional>
#include <set>

namespace pigeon::storage {
namespace {

struct BackendInstance {
    BackendInstance() = default;
    BackendInstance(const BackendInstance&) = delete;
    BackendInstance& operator=(const BackendInstance&) = delete;
    virtual ~BackendInstance() = default;
    virtual MaildropStore& store() = 0;
    virtual Delivery& delivery() = 0;
};

struct Backend {
    std::string name;
    std::function<std::unique_ptr<BackendInstance>(const std::filesystem::path& root)> make;
};

struct MaildirInstance final : BackendInstance {
    explicit MaildirInstance(const std::filesystem::path& root)
        : maildir(MaildirOptions{(root / "%u").string(), false, "test.example"})
    {
    }
    MaildirStore maildir;
    MaildropStore& store() override { return maildir; }
    Delivery& delivery() override { return maildir; }
};

struct MboxInstance final : BackendInstance {
    explicit MboxInstance(const std::filesystem::path& root) : mbox(make_options(root)) {}
    static MboxOptions make_options(const std::filesystem::path& root)
    {
        MboxOptions options;
        options.path_template = (root / "%u").string();
        options.lock_timeout = std::chrono::seconds(5);
        return options;
    }
    MboxStore mbox;
    MaildropStore& store() override { return mbox; }
    Delivery& delivery() override { return mbox; }
};

struct MemoryInstance final : BackendInstance {
    MemoryMaildropStore memory;
    MaildropStore& store() override { return memory; }
    Delivery& delivery() override { return memory; }
};

// Each backend adds one entry here.
std::vector<Backend> backends()
{
    return {
        {"memory", [](const std::filesystem::path&) { return std::make_unique<MemoryInstance>(); }},
        {"maildir",
         [](const std::filesystem::path& root) { return std::make_unique<MaildirInstance>(root); }},
        {"mbox", [](const std::filesystem::path& root) { return std::make_unique<MboxInstance>(root); }},
    };
}

std::string read_message(Maildrop& maildrop, MessageIndex index)
{
    auto reader = maildrop.open_message(index);
    EXPECT_TRUE(reader) << (reader ? "" : reader.error().message());
    if (!reader) {
        return {};
    }
    std::string out;
    std::array<char, 4096> buffer{};
    for (;;) {
        auto count = (*reader)->read(buffer);
        EXPECT_TRUE(count);
        if (!count || *count == 0) {
            return out;
        }
        out.append(buffer.data(), *count);
    }
}

// Messages that exercise what backends get wrong: mbox From_ lines and their quoting, no final
// newline, CRLF, 8-bit bytes, NUL, dot lines, an empty body.
const std::vector<std::string> awkward_messages{
    "From: a@example.org\nSubject: one\n\nbody\n",
    "From: b@example.org\nSubject: from lines\n\nFrom here on\n>From quoted\n>>From twice\n",
    "Subject: no final newline\n\nlast line",
    "Subject: crlf\r\n\r\nline\r\n.\r\n..\r\n",
    std::string("Subject: 8bit\n\n\xc3\xa9t\xc3\xa9 \xff\x00 nul\n", 28),
    "Subject: empty body\n\n",
};

class StorageConformance : public ::testing::TestWithParam<Backend> {
protected:
    void SetUp() override
    {
        m_root = std::filesystem::temp_directory_path() /
                 ("pigeon-conformance-" + std::to_string(::getpid()) + "-" + GetParam().name + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(m_root);
        std::filesystem::create_directories(m_root);
        m_backend = GetParam().make(m_root);
    }
    void TearDown() override
    {
        m_backend.reset();
        std::filesystem::remove_all(m_root);
    }
    std::string deliver(const std::string& user, const std::string& message)
    {
        auto uid = deliver_message(m_backend->delivery(), user, message);
        EXPECT_TRUE(uid) << (uid ? "" : uid.error().message());
        return uid ? *uid : "";
    }
    std::unique_ptr<Maildrop> open(const std::string& user)
    {
        auto maildrop = m_backend->store().open(user);
        EXPECT_TRUE(maildrop) << (maildrop ? "" : maildrop.error().message());
        return maildrop ? std::move(*maildrop) : nullptr;
    }
    std::vector<std::string> unique_ids(Maildrop& maildrop)
    {
        std::vector<std::string> out;
        for (std::uint32_t i = 0; i < maildrop.message_count(); ++i) {
            out.emplace_back(maildrop.unique_id(MessageIndex{i}));
        }
        return out;
    }

    std::filesystem::path m_root;
    std::unique_ptr<BackendInstance> m_backend;
};

TEST_P(StorageConformance, EmptyMaildropOpens)
{
    auto maildrop = open("alice");
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_count(), 0U);
}

TEST_P(StorageConformance, DeliveredMessagesReadBackByteIdenticalWithExactSizes)
{
    for (const auto& message : awkward_messages) {
        deliver("alice", message);
    }
    auto maildrop = open("alice");
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), awkward_messages.size());
    std::set<std::string> seen;
    for (std::uint32_t i = 0; i < maildrop->message_count(); ++i) {
        const MessageIndex index{i};
        EXPECT_EQ(read_message(*maildrop, index), awkward_messages[i]) << "message " << i;
        EXPECT_EQ(maildrop->message_octets(index), protocol::wire_size(awkward_messages[i]))
            << "message " << i;
        const std::string uid(maildrop->unique_id(index));
        // RFC 1939 §7: 1-70 characters in 0x21-0x7E, unique within the maildrop.
        EXPECT_GE(uid.size(), 1U);
        EXPECT_LE(uid.size(), 70U);
        for (const char c : uid) {
            EXPECT_TRUE(c >= 0x21 && c <= 0x7E) << uid;
        }
        EXPECT_TRUE(seen.insert(uid).second) << "duplicate " << uid;
    }
}

TEST_P(StorageConformance, UniqueIdsAreStableAcrossSessions)
{
    deliver("alice", awkward_messages[0]);
    deliver("alice", awkward_messages[1]);
    std::vector<std::string> first;
    {
        auto maildrop = open("alice");
        ASSERT_TRUE(maildrop);
        first = unique_ids(*maildrop);
    }
    auto again = open("alice");
    ASSERT_TRUE(again);
    EXPECT_EQ(unique_ids(*again), first);
}

TEST_P(StorageConformance, OneSessionAtATime)
{
    auto first = open("alice");
    ASSERT_TRUE(first);
    auto second = m_backend->store().open("alice");
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), make_error_code(errc::maildrop_in_use));
    EXPECT_TRUE(open("bob"));
    first.reset();
    EXPECT_TRUE(open("alice"));
}

TEST_P(StorageConformance, DeliveryDuringSessionShowsInTheNextOne)
{
    deliver("alice", awkward_messages[0]);
    {
        auto maildrop = open("alice");
        ASSERT_TRUE(maildrop);
        deliver("alice", awkward_messages[1]);
        EXPECT_EQ(maildrop->message_count(), 1U);
        EXPECT_EQ(read_message(*maildrop, MessageIndex{0}), awkward_messages[0]);
    }
    auto next = open("alice");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->message_count(), 2U);
}

TEST_P(StorageConformance, CommitRemovesExactlyTheMarkedMessages)
{
    for (const auto& message : awkward_messages) {
        deliver("alice", message);
    }
    std::vector<std::string> before;
    {
        auto maildrop = open("alice");
        ASSERT_TRUE(maildrop);
        before = unique_ids(*maildrop);
        const std::array<MessageIndex, 2> deletions{MessageIndex{1}, MessageIndex{3}};
        ASSERT_TRUE(maildrop->commit(deletions));
    }
    auto after = open("alice");
    ASSERT_TRUE(after);
    const std::vector<std::string> expected{before[0], before[2], before[4], before[5]};
    EXPECT_EQ(unique_ids(*after), expected);
    EXPECT_EQ(read_message(*after, MessageIndex{1}), awkward_messages[2]);
    EXPECT_EQ(read_message(*after, MessageIndex{3}), awkward_messages[5]);
}

TEST_P(StorageConformance, CommitKeepsMessagesDeliveredDuringTheSession)
{
    deliver("alice", awkward_messages[0]);
    auto maildrop = open("alice");
    ASSERT_TRUE(maildrop);
    const std::string late = deliver("alice", awkward_messages[1]);
    const std::array<MessageIndex, 1> deletions{MessageIndex{0}};
    ASSERT_TRUE(maildrop->commit(deletions));
    maildrop.reset();
    auto next = open("alice");
    ASSERT_TRUE(next);
    ASSERT_EQ(next->message_count(), 1U);
    EXPECT_EQ(read_message(*next, MessageIndex{0}), awkward_messages[1]);
    EXPECT_EQ(next->unique_id(MessageIndex{0}), late);
}

TEST_P(StorageConformance, SessionWithoutCommitRemovesNothing)
{
    deliver("alice", awkward_messages[0]);
    {
        auto maildrop = open("alice");
        ASSERT_TRUE(maildrop);
    }
    auto next = open("alice");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->message_count(), 1U);
}

TEST_P(StorageConformance, UncommittedDeliveryLeavesNothing)
{
    {
        auto pending = m_backend->delivery().begin("alice");
        ASSERT_TRUE(pending);
        ASSERT_TRUE((*pending)->write("Subject: never\n\nabandoned\n"));
    }
    auto maildrop = open("alice");
    ASSERT_TRUE(maildrop);
    EXPECT_EQ(maildrop->message_count(), 0U);
}

TEST_P(StorageConformance, LargeMessageDeliveredAndReadInPieces)
{
    std::string message = "Subject: large\n\n";
    while (message.size() < 3 * 1024 * 1024) {
        message += "From the line that must be quoted in mbox, and a long line of text to fill it up.\n";
    }
    auto pending = m_backend->delivery().begin("alice");
    ASSERT_TRUE(pending);
    for (std::size_t pos = 0; pos < message.size(); pos += 65536) {
        ASSERT_TRUE((*pending)->write(std::string_view(message).substr(pos, 65536)));
    }
    ASSERT_TRUE((*pending)->commit());
    auto maildrop = open("alice");
    ASSERT_TRUE(maildrop);
    ASSERT_EQ(maildrop->message_count(), 1U);
    EXPECT_EQ(maildrop->message_octets(MessageIndex{0}), protocol::wire_size(message));
    EXPECT_TRUE(read_message(*maildrop, MessageIndex{0}) == message);
}

TEST_P(StorageConformance, UsersAreSeparate)
{
    deliver("alice", awkward_messages[0]);
    deliver("bob@example.org", awkward_messages[1]);
    auto alice = open("alice");
    auto bob = open("bob@example.org");
    ASSERT_TRUE(alice && bob);
    EXPECT_EQ(alice->message_count(), 1U);
    ASSERT_EQ(bob->message_count(), 1U);
    EXPECT_EQ(read_message(*bob, MessageIndex{0}), awkward_messages[1]);
}

INSTANTIATE_TEST_SUITE_P(Backends, StorageConformance, ::testing::ValuesIn(backends()),
                         [](const ::testing::TestParamInfo<Backend>& param) { return param.param.name; });

} // namespace
} // namespace pigeon::storage
