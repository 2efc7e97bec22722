// Replays every tests/transcripts/*.pop3 against ServerSession, once with each client packet
// whole and once fed one byte at a time: the server's output must be the same.
#include "transcript.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace {

std::vector<std::string> transcript_files()
{
    return pigeon::test::transcript_files(PIGEON_TRANSCRIPT_DIR, ".pop3");
}

class TranscriptTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TranscriptTest, WholePackets)
{
    const auto transcript =
        pigeon::test::load_transcript(std::string(PIGEON_TRANSCRIPT_DIR) + "/" + GetParam());
    EXPECT_EQ(pigeon::test::run_transcript(transcript, false), "");
}

TEST_P(TranscriptTest, ByteAtATime)
{
    const auto transcript =
        pigeon::test::load_transcript(std::string(PIGEON_TRANSCRIPT_DIR) + "/" + GetParam());
    EXPECT_EQ(pigeon::test::run_transcript(transcript, true), "");
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info)
{
    return pigeon::test::transcript_test_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(Transcripts, TranscriptTest, ::testing::ValuesIn(transcript_files()), test_name);

TEST(Transcripts, AtLeastSixty)
{
    EXPECT_GE(transcript_files().size(), 60U);
}

} // namespace
