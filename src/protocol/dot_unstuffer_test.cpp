#include "protocol/dot_unstuffer.hpp"

#include <gtest/gtest.h>

namespace pigeon::protocol {
namespace {

TEST(DotUnstuffer, RemovesStuffingAndStopsAtTheTerminator)
{
    std::string out;
    DotUnstuffer unstuffer;
    const std::string input = "a\r\n..b\r\n...\r\n.\r\n+OK next reply\r\n";
    const auto progress = unstuffer.feed(input, out);
    EXPECT_TRUE(progress.complete);
    EXPECT_EQ(out, "a\r\n.b\r\n..\r\n");
    EXPECT_EQ(input.substr(progress.consumed), "+OK next reply\r\n");
}

TEST(DotUnstuffer, EmptyBody)
{
    std::string out;
    DotUnstuffer unstuffer;
    EXPECT_TRUE(unstuffer.feed(".\r\n", out).complete);
    EXPECT_EQ(out, "");
}

TEST(DotUnstuffer, ToleratesBareLfServers)
{
    std::string out;
    DotUnstuffer unstuffer;
    const auto progress = unstuffer.feed("x\n..y\n.\nrest", out);
    EXPECT_TRUE(progress.complete);
    EXPECT_EQ(out, "x\n.y\n");
    EXPECT_EQ(progress.consumed, 8U);
}

TEST(DotUnstuffer, DotFollowedByBareCrIsData)
{
    std::string out;
    DotUnstuffer unstuffer;
    unstuffer.feed(".\rx\r\n.\r\n", out);
    EXPECT_EQ(out, "\rx\r\n");
}

TEST(DotUnstuffer, SameResultAtEveryChunkSize)
{
    const std::string input = "Subject: x\r\n\r\n..dot\r\n.\rcr\r\nbody\r\n.\r\nNEXT";
    std::string whole;
    const auto reference = DotUnstuffer().feed(input, whole);
    ASSERT_TRUE(reference.complete);
    for (std::size_t chunk = 1; chunk <= input.size(); ++chunk) {
        std::string out;
        DotUnstuffer unstuffer;
        std::size_t consumed = 0;
        for (std::size_t pos = 0; pos < input.size() && !unstuffer.complete(); pos += chunk) {
            consumed += unstuffer.feed(std::string_view(input).substr(pos, chunk), out).consumed;
        }
        EXPECT_EQ(out, whole) << "chunk " << chunk;
        EXPECT_EQ(consumed, reference.consumed) << "chunk " << chunk;
    }
}

TEST(DotUnstuffer, IncompleteBodyIsNotComplete)
{
    std::string out;
    DotUnstuffer unstuffer;
    const auto progress = unstuffer.feed("line\r\n.", out);
    EXPECT_FALSE(progress.complete);
    EXPECT_EQ(progress.consumed, 7U);
    EXPECT_TRUE(unstuffer.feed("\r\n", out).complete);
    EXPECT_EQ(out, "line\r\n");
}

} // namespace
} // namespace pigeon::protocol
