#include "storage/memory/memory_maildrop.hpp"

#include <gtest/gtest.h>

#include <array>

namespace pigeon::storage {
namespace {

std::string read_all(MessageReader& reader)
{
    std::string out;
    std::array<char, 3> buffer{};
    for (;;) {
        auto count = reader.read(buffer);
        EXPECT_TRUE(count);
        if (!count || *count == 0) {
            return out;
        }
        out.append(buffer.data(), *count);
    }
}

TEST(MemoryMaildrop, SnapshotListsSizesAndUniqueIds)
{
    MemoryMaildropStore store;
    store.add_message("alice", {"u1", "a\nb\n"});
    store.add_message("alice", {"u2", "c\r\n"});
    auto maildrop = store.open("alice");
    ASSERT_TRUE(maildrop);
    EXPECT_EQ((*maildrop)->message_count(), 2U);
    EXPECT_EQ((*maildrop)->message_octets(MessageIndex{0}), 6U);
    EXPECT_EQ((*maildrop)->message_octets(MessageIndex{1}), 3U);
    EXPECT_EQ((*maildrop)->unique_id(MessageIndex{1}), "u2");
    auto reader = (*maildrop)->open_message(MessageIndex{0});
    ASSERT_TRUE(reader);
    EXPECT_EQ(read_all(**reader), "a\nb\n");
    EXPECT_FALSE((*maildrop)->open_message(MessageIndex{2}));
}

TEST(MemoryMaildrop, OneSessionAtATime)
{
    MemoryMaildropStore store;
    auto first = store.open("alice");
    ASSERT_TRUE(first);
    auto second = store.open("alice");
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), make_error_code(errc::maildrop_in_use));
    EXPECT_TRUE(store.open("bob"));
    first->reset();
    EXPECT_TRUE(store.open("alice"));
}

TEST(MemoryMaildrop, DeliveryDuringSessionIsNotInSnapshotAndSurvivesCommit)
{
    MemoryMaildropStore store;
    store.add_message("alice", {"u1", "one\n"});
    auto maildrop = store.open("alice");
    ASSERT_TRUE(maildrop);
    store.add_message("alice", {"u2", "two\n"});
    EXPECT_EQ((*maildrop)->message_count(), 1U);
    const std::array<MessageIndex, 1> deletions{MessageIndex{0}};
    ASSERT_TRUE((*maildrop)->commit(deletions));
    const auto left = store.messages("alice");
    ASSERT_EQ(left.size(), 1U);
    EXPECT_EQ(left[0].unique_id, "u2");
}

TEST(MemoryMaildrop, DroppedSessionCommitsNothing)
{
    MemoryMaildropStore store;
    store.add_message("alice", {"u1", "one\n"});
    {
        auto maildrop = store.open("alice");
        ASSERT_TRUE(maildrop);
    }
    EXPECT_EQ(store.messages("alice").size(), 1U);
}

} // namespace
} // namespace pigeon::storage
