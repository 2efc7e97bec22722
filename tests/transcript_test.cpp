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
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(PIGEON_TRANSCRIPT_DIR)) {
        if (entry.path().extension() == ".pop3") {
            files.push_back(entry.path().filename().string());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
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
    std::string name = info.param.substr(0, info.param.find('.'));
    std::replace_if(
        name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
    return name;
}

INSTANTIATE_TEST_SUITE_P(Transcripts, TranscriptTest, ::testing::ValuesIn(transcript_files()), test_name);

TEST(Transcripts, AtLeastSixty)
{
    EXPECT_GE(transcript_files().size(), 60U);
}

} // namespace
