#include "protocol/dot_stuffer.hpp"
#include "protocol/dot_unstuffer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace pigeon::protocol {
namespace {

// What a client must get back from any stored message: LF becomes CRLF unless a CR precedes it,
// bare CRs stay, and an unterminated last line is completed with CRLF.
std::string crlf_normalise(std::string_view message)
{
    std::string out;
    for (std::size_t i = 0; i < message.size(); ++i) {
        if (message[i] == '\n' && (i == 0 || message[i - 1] != '\r')) {
            out += "\r\n";
        } else {
            out.push_back(message[i]);
        }
    }
    if (!message.empty() && message.back() != '\n') {
        out += "\r\n";
    }
    return out;
}

std::string stuff_in_chunks(std::string_view message, std::size_t chunk,
                            std::optional<std::uint32_t> top = {})
{
    std::string out;
    DotStuffer stuffer(top);
    for (std::size_t pos = 0; pos < message.size(); pos += chunk) {
        const auto piece = message.substr(pos, chunk);
        const auto before = out.size();
        stuffer.feed(piece, out);
        EXPECT_LE(out.size() - before, 2 * piece.size() + 2); // the documented output bound
    }
    stuffer.finish(out);
    return out;
}

TEST(DotStuffer, ConvertsLineEndsAndDoublesLeadingDots)
{
    EXPECT_EQ(dot_stuff("a\nb\n"), "a\r\nb\r\n.\r\n");
    EXPECT_EQ(dot_stuff("a\r\nb\r\n"), "a\r\nb\r\n.\r\n");
    EXPECT_EQ(dot_stuff(".\n..x\n.y\r\nz.\n"), "..\r\n...x\r\n..y\r\nz.\r\n.\r\n");
    EXPECT_EQ(dot_stuff("no newline"), "no newline\r\n.\r\n");
    EXPECT_EQ(dot_stuff(""), ".\r\n");
    EXPECT_EQ(dot_stuff("\n"), "\r\n.\r\n");
    EXPECT_EQ(dot_stuff("."), "..\r\n.\r\n");
}

TEST(DotStuffer, BareCrAnd8BitBytesPassThrough)
{
    EXPECT_EQ(dot_stuff("a\rb\n"), "a\rb\r\n.\r\n");
    EXPECT_EQ(dot_stuff("end\r"), "end\r\r\n.\r\n");
    EXPECT_EQ(dot_stuff(std::string("\xff\x00\x80\n", 4)), std::string("\xff\x00\x80\r\n.\r\n", 8));
}

TEST(DotStuffer, LongLinesAreNotSplit)
{
    const std::string line(100000, 'x');
    EXPECT_EQ(dot_stuff(line + "\n"), line + "\r\n.\r\n");
}

TEST(DotStuffer, TopSendsHeaderAndBodyLines)
{
    const std::string message = "From: a\nSubject: b\n\nline 1\nline 2\nline 3\n";
    EXPECT_EQ(dot_stuff(message, 0), "From: a\r\nSubject: b\r\n\r\n.\r\n");
    EXPECT_EQ(dot_stuff(message, 2), "From: a\r\nSubject: b\r\n\r\nline 1\r\nline 2\r\n.\r\n");
    EXPECT_EQ(dot_stuff(message, 10), crlf_normalise(message) + ".\r\n");
    // CRLF-stored header end, and a header with no body at all.
    EXPECT_EQ(dot_stuff("A: 1\r\n\r\n.b\r\nc\r\n", 1), "A: 1\r\n\r\n..b\r\n.\r\n");
    EXPECT_EQ(dot_stuff("A: 1\nB: 2", 3), "A: 1\r\nB: 2\r\n.\r\n");
}

TEST(DotStuffer, TopCompletesAndIgnoresTheRest)
{
    DotStuffer stuffer(1);
    std::string out;
    stuffer.feed("H: x\n\nbody\nmore\n", out);
    EXPECT_TRUE(stuffer.complete());
    stuffer.feed("ignored\n", out);
    stuffer.finish(out);
    EXPECT_EQ(out, "H: x\r\n\r\nbody\r\n.\r\n");
}

TEST(DotStuffer, WireSizeIsWhatTheClientReceives)
{
    for (const std::string_view message :
         {"", "a", "a\n", "a\r\n", ".\n.\n", "x\ry", "end\r", "\n\n\n", "A\r\n\r\nB"}) {
        const std::string received = dot_unstuff(dot_stuff(message));
        EXPECT_EQ(wire_size(message), received.size()) << message;
        EXPECT_EQ(received, crlf_normalise(message)) << message;
    }
}

// Split-at-every-byte: every chunking gives the same bytes, for RETR and TOP.
TEST(DotStuffer, SameOutputAtEveryChunkSize)
{
    const std::string message =
        "Received: x\r\nSubject: .hi\n\n.dot\r\nbare\rcr\n\xc3\xa9t\xc3\xa9\n..\n.\r\nend";
    for (const std::optional<std::uint32_t> top :
         {std::optional<std::uint32_t>{}, std::optional<std::uint32_t>{0}, std::optional<std::uint32_t>{2}}) {
        const std::string whole = stuff_in_chunks(message, message.size(), top);
        for (std::size_t chunk = 1; chunk < message.size(); ++chunk) {
            EXPECT_EQ(stuff_in_chunks(message, chunk, top), whole) << "chunk " << chunk;
        }
    }
    WireSizeCounter counter;
    for (const char c : message) {
        counter.feed(std::string_view(&c, 1));
    }
    EXPECT_EQ(counter.finish(), wire_size(message));
}

// Property: for random messages built from the troublesome bytes, un-stuff(stuff(x)) equals x
// with CRLF normalisation, the predicted size equals the bytes produced, and the body parses
// back to the end exactly.
TEST(DotStuffer, RoundTripProperty)
{
    std::mt19937 random(20261128);
    const char alphabet[] = {'.', '\r', '\n', 'a', 'Z', ' ', '\0', '\xff', '\x80'};
    std::uniform_int_distribution<std::size_t> pick(0, sizeof(alphabet) - 1);
    std::uniform_int_distribution<std::size_t> length(0, 200);
    std::uniform_int_distribution<std::size_t> chunking(1, 32);
    for (int round = 0; round < 3000; ++round) {
        std::string message(length(random), '\0');
        for (auto& c : message) {
            c = alphabet[pick(random)];
        }
        const std::string stuffed = stuff_in_chunks(message, chunking(random));
        std::string received;
        DotUnstuffer unstuffer;
        std::size_t consumed = 0;
        const std::size_t chunk = chunking(random);
        for (std::size_t pos = 0; pos < stuffed.size(); pos += chunk) {
            consumed += unstuffer.feed(std::string_view(stuffed).substr(pos, chunk), received).consumed;
        }
        ASSERT_TRUE(unstuffer.complete());
        ASSERT_EQ(consumed, stuffed.size());
        ASSERT_EQ(received, crlf_normalise(message));
        ASSERT_EQ(wire_size(message), received.size());
    }
}

} // namespace
} // namespace pigeon::protocol
