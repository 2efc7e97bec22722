#include "protocol/line_reader.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pigeon::protocol {
namespace {

// Lines as strings, with "<too long>" for an overlong line.
std::vector<std::string> drain(LineReader& reader, std::size_t limit)
{
    std::vector<std::string> lines;
    while (auto event = reader.next(limit)) {
        lines.push_back(event->kind == LineEvent::Kind::line ? std::string(event->text) : "<too long>");
    }
    return lines;
}

std::vector<std::string> read_in_chunks(std::string_view input, std::size_t chunk, std::size_t limit)
{
    LineReader reader;
    std::vector<std::string> lines;
    for (std::size_t pos = 0; pos < input.size(); pos += chunk) {
        reader.append(input.substr(pos, chunk));
        for (auto& line : drain(reader, limit)) {
            lines.push_back(std::move(line));
        }
        // The buffer never holds more than one line's bound plus one chunk.
        EXPECT_LE(reader.buffered(), limit + chunk);
    }
    return lines;
}

TEST(LineReader, SplitsCrlfAndBareLf)
{
    LineReader reader;
    reader.append("USER a\r\nNOOP\nSTAT\r\npartial");
    EXPECT_EQ(drain(reader, 255), (std::vector<std::string>{"USER a", "NOOP", "STAT"}));
    reader.append("\r\n");
    EXPECT_EQ(drain(reader, 255), (std::vector<std::string>{"partial"}));
}

TEST(LineReader, OverlongLineIsReportedOnceAndResyncs)
{
    const std::string input = "NOOP\r\n" + std::string(1000, 'x') + "\r\nSTAT\r\n";
    const std::vector<std::string> expected{"NOOP", "<too long>", "STAT"};
    EXPECT_EQ(read_in_chunks(input, input.size(), 255), expected);
}

TEST(LineReader, BoundCountsTheCrlf)
{
    const std::string exact = std::string(253, 'a') + "\r\n"; // 255 octets: allowed
    const std::string over = std::string(254, 'a') + "\r\n";  // 256 octets: too long
    EXPECT_EQ(read_in_chunks(exact, exact.size(), 255), (std::vector<std::string>{std::string(253, 'a')}));
    EXPECT_EQ(read_in_chunks(over, over.size(), 255), (std::vector<std::string>{"<too long>"}));
}

// "Parsegrind": every chunk size gives the same lines.
TEST(LineReader, SameResultAtEveryChunkSize)
{
    const std::string input = "USER alice\r\nPASS a b c\r\n\r\n" + std::string(400, 'y') +
                              "\nLIST 1\r\nRETR 2\n" + std::string(254, 'z') + "\r\nQUIT\r\n";
    const auto expected = read_in_chunks(input, input.size(), 255);
    ASSERT_EQ(expected.size(), 8U);
    for (std::size_t chunk = 1; chunk <= input.size(); ++chunk) {
        EXPECT_EQ(read_in_chunks(input, chunk, 255), expected) << "chunk " << chunk;
    }
}

TEST(LineReader, ClearDropsEverythingBuffered)
{
    LineReader reader;
    reader.append("STLS\r\nCAPA\r\n" + std::string(300, 'q'));
    auto first = reader.next(255);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->text, "STLS");
    reader.clear();
    EXPECT_EQ(reader.buffered(), 0U);
    reader.append("NOOP\r\n");
    EXPECT_EQ(drain(reader, 255), (std::vector<std::string>{"NOOP"}));
}

TEST(LineReader, RawAccessForBodies)
{
    LineReader reader;
    reader.append("+OK\r\nbody bytes");
    auto status = reader.next(512);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->text, "+OK");
    EXPECT_EQ(reader.peek_raw(), "body bytes");
    reader.consume_raw(5);
    EXPECT_EQ(reader.peek_raw(), "bytes");
}

} // namespace
} // namespace pigeon::protocol
