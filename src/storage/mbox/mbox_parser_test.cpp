#include "storage/mbox/mbox_parser.hpp"

#include "protocol/dot_stuffer.hpp"

#include <gtest/gtest.h>

#include <random>

namespace pigeon::storage::mbox {
namespace {

std::string quote(std::string_view message)
{
    std::string out;
    Quoter quoter;
    quoter.feed(message, out);
    quoter.finish(out);
    return out;
}

// One mbox entry as Postfix writes it (two spaces after the sender, as its mail_copy() does).
std::string postfix_entry(std::string_view message, int second = 0)
{
    std::string out = "From sender@example.org  Mon Jan  1 00:00:" + std::string(second < 10 ? "0" : "") +
                      std::to_string(second) + " 2024\n";
    out += quote(message);
    if (!message.empty() && message.back() != '\n') {
        out += '\n';
    }
    return out + "\n";
}

std::vector<std::string> contents(std::string_view mbox)
{
    std::vector<std::string> out;
    for (auto& message : parse_all(mbox)) {
        out.push_back(std::move(message.content));
    }
    return out;
}

const std::vector<std::string> tricky_messages{
    "Subject: plain\n\nbody\n",
    "From: a@example.org\n\nFrom here\n>From there\n>>From everywhere\n>>>From\n",
    "Subject: near misses\n\nFrom\nFro\n>\n>>\n>Fro\n>>Fr\nFrom\tx\n From x\n",
    "Subject: crlf\r\n\r\nline\r\nFrom crlf\r\n>From crlf\r\n\r\n",
    "Subject: ends quoted\n\n>From",
    "From the first line of the message\nSubject: x\n\n",
    "Subject: blank lines\n\n\n\n\nFrom after blanks\n\n",
    "",
    "\n",
    "\n\n",
    "no header at all",
    "Subject: x\n\n>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>From deep\n",
};

TEST(MboxParser, MboxrdQuotingRoundTripsEveryMessage)
{
    std::string mbox;
    for (std::size_t i = 0; i < tricky_messages.size(); ++i) {
        mbox += postfix_entry(tricky_messages[i], static_cast<int>(i));
    }
    const auto parsed = parse_all(mbox);
    ASSERT_EQ(parsed.size(), tricky_messages.size());
    for (std::size_t i = 0; i < tricky_messages.size(); ++i) {
        std::string expected = tricky_messages[i];
        if (!expected.empty() && expected.back() != '\n') {
            expected += '\n'; // mbox cannot store a missing final newline (MboxStore's index can)
        }
        EXPECT_EQ(parsed[i].content, expected) << "message " << i;
        EXPECT_EQ(parsed[i].parsed.wire_octets, protocol::wire_size(expected)) << "message " << i;
        EXPECT_TRUE(mbox.substr(parsed[i].parsed.from_offset).starts_with("From sender@example.org"));
    }
}

TEST(MboxParser, QuotingAddsOneLevelToFromLinesOnly)
{
    EXPECT_EQ(quote("From x\n>From y\n>>From z\nFromage\n>Fromage\n x From\n"),
              ">From x\n>>From y\n>>>From z\nFromage\n>Fromage\n x From\n");
    EXPECT_EQ(quote("Fr"), "Fr");
    EXPECT_EQ(quote(">>From"), ">>From");
    EXPECT_EQ(quote(">>From "), ">>>From ");
}

TEST(MboxParser, ReadsMboxoWithoutLoss)
{
    // mboxo quotes only "From " (no '>' before it); read as mboxrd that gives back the original
    // unless it had ">From " lines of its own.
    const std::string mbox = "From a  Mon Jan  1 00:00:00 2024\nSubject: x\n\n>From the mboxo writer\n"
                             "> quoted reply\n>> From deeper\n\n";
    EXPECT_EQ(contents(mbox), std::vector<std::string>{
                                  "Subject: x\n\nFrom the mboxo writer\n> quoted reply\n>> From deeper\n"});
}

TEST(MboxParser, FromLineStartsAMessageOnlyAfterABlankLine)
{
    const std::string mbox =
        "From a  Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\nFrom unquoted in text\nmore\n\n"
        "From b  Mon Jan  1 00:00:01 2024\nSubject: y\n\ntwo\n\n";
    const auto messages = contents(mbox);
    ASSERT_EQ(messages.size(), 2U);
    EXPECT_EQ(messages[0], "Subject: x\n\nbody\nFrom unquoted in text\nmore\n");
    EXPECT_EQ(messages[1], "Subject: y\n\ntwo\n");
}

TEST(MboxParser, ContentLengthIsNotTrusted)
{
    const std::string mbox = "From a  Mon Jan  1 00:00:00 2024\nContent-Length: 3\n\nlonger than three\n\n"
                             "From b  Mon Jan  1 00:00:01 2024\nContent-Length: 999\n\nshort\n\n";
    const auto messages = contents(mbox);
    ASSERT_EQ(messages.size(), 2U);
    EXPECT_EQ(messages[0], "Content-Length: 3\n\nlonger than three\n");
    EXPECT_EQ(messages[1], "Content-Length: 999\n\nshort\n");
}

TEST(MboxParser, LeadingGarbageIsNotAMessage)
{
    const std::string garbage = "\xef\xbb\xbfnot a From_ line\n\nneither\n";
    const std::string mbox = garbage + "From a  Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n\n";
    const auto parsed = parse_all(mbox);
    ASSERT_EQ(parsed.size(), 1U);
    EXPECT_EQ(parsed[0].parsed.from_offset, garbage.size());
    EXPECT_EQ(parsed[0].content, "Subject: x\n\nbody\n");
    EXPECT_TRUE(parse_all("no message here\nat all\n").empty());
    EXPECT_TRUE(parse_all("").empty());
    // Before the first message no blank line is needed.
    EXPECT_EQ(parse_all("junk\nFrom a\nbody\n").size(), 1U);
}

TEST(MboxParser, SeparatorAndEndOfFileRules)
{
    // The blank line before a From_ line, or a last blank line, is the separator; without it the
    // message ends at the end of the file as it is.
    EXPECT_EQ(contents("From a\nbody\n"), std::vector<std::string>{"body\n"});
    EXPECT_EQ(contents("From a\nbody\n\n"), std::vector<std::string>{"body\n"});
    EXPECT_EQ(contents("From a\nbody\n\n\n"), std::vector<std::string>{"body\n\n"});
    EXPECT_EQ(contents("From a\nbody"), std::vector<std::string>{"body"});
    EXPECT_EQ(contents("From a"), std::vector<std::string>{""});
    EXPECT_EQ(contents("From a\n\nFrom b\n"), (std::vector<std::string>{"", ""}));
    EXPECT_EQ(contents("From a\nx\n\nFro"), std::vector<std::string>{"x\n\nFro"});
}

TEST(MboxParser, SplitAtEveryOctetGivesTheSameMessages)
{
    std::string mbox = "garbage\n";
    for (std::size_t i = 0; i < tricky_messages.size(); ++i) {
        mbox += postfix_entry(tricky_messages[i], static_cast<int>(i));
    }
    mbox += "From last\nX-UIDL: abc\n\nno separator";
    std::vector<ParsedMessage> whole;
    {
        Parser parser;
        parser.feed(mbox, whole);
        parser.finish(whole);
    }
    const auto same = [&](const std::vector<ParsedMessage>& other, const std::string& how) {
        ASSERT_EQ(other.size(), whole.size()) << how;
        for (std::size_t i = 0; i < whole.size(); ++i) {
            EXPECT_EQ(other[i].from_offset, whole[i].from_offset) << how << " message " << i;
            EXPECT_EQ(other[i].content_offset, whole[i].content_offset) << how << " message " << i;
            EXPECT_EQ(other[i].content_end, whole[i].content_end) << how << " message " << i;
            EXPECT_EQ(other[i].wire_octets, whole[i].wire_octets) << how << " message " << i;
            EXPECT_EQ(other[i].wire_octets_without_final_lf, whole[i].wire_octets_without_final_lf) << how;
            EXPECT_EQ(other[i].digest, whole[i].digest) << how << " message " << i;
            EXPECT_EQ(other[i].x_uidl, whole[i].x_uidl) << how << " message " << i;
        }
    };
    for (std::size_t split = 0; split <= mbox.size(); ++split) {
        std::vector<ParsedMessage> parts;
        Parser parser;
        parser.feed(std::string_view(mbox).substr(0, split), parts);
        parser.feed(std::string_view(mbox).substr(split), parts);
        parser.finish(parts);
        same(parts, "split at " + std::to_string(split));
    }
    std::vector<ParsedMessage> octets;
    Parser parser;
    for (const char c : mbox) {
        parser.feed(std::string_view(&c, 1), octets);
    }
    parser.finish(octets);
    same(octets, "one octet at a time");
    EXPECT_EQ(whole.back().x_uidl, "abc");
}

TEST(MboxParser, UnquoterGivesTheSameResultWhateverTheChunks)
{
    const std::string stored = quote(tricky_messages[1] + tricky_messages[2] + tricky_messages[11]);
    std::string whole;
    Unquoter unquoter;
    unquoter.feed(stored, whole);
    unquoter.finish(whole);
    EXPECT_EQ(whole, tricky_messages[1] + tricky_messages[2] + tricky_messages[11]);
    for (std::size_t split = 0; split <= stored.size(); ++split) {
        std::string out;
        Unquoter parts;
        parts.feed(std::string_view(stored).substr(0, split), out);
        parts.feed(std::string_view(stored).substr(split), out);
        parts.finish(out);
        EXPECT_EQ(out, whole) << "split at " << split;
    }
}

TEST(MboxParser, XUidlIsUsedOnlyWhenValid)
{
    const auto x_uidl = [](const std::string& header) {
        const auto parsed = parse_all("From a\n" + header + "\nbody\n");
        return parsed.empty() ? std::string("<none>") : parsed[0].parsed.x_uidl;
    };
    EXPECT_EQ(x_uidl("X-UIDL: abc-123\n"), "abc-123");
    EXPECT_EQ(x_uidl("x-uidl:\t  abc  \r\n"), "abc");
    EXPECT_EQ(x_uidl("X-UIDL: " + std::string(70, 'u') + "\n"), std::string(70, 'u'));
    EXPECT_EQ(x_uidl("X-UIDL: " + std::string(71, 'u') + "\n"), "");
    EXPECT_EQ(x_uidl("X-UIDL: " + std::string(5000, 'u') + "\n"), "");
    EXPECT_EQ(x_uidl("X-UIDL: two words\n"), "");
    EXPECT_EQ(x_uidl("X-UIDL: \xc3\xa9t\xc3\xa9\n"), "");
    EXPECT_EQ(x_uidl("X-UIDL:\n"), "");
    EXPECT_EQ(x_uidl("X-UIDL: folded\n continued\n"), "");
    EXPECT_EQ(x_uidl("X-UIDL: first\nX-UIDL: second\n"), "first");
    EXPECT_EQ(x_uidl("Subject: x\n\nX-UIDL: in the body\n"), "");
}

TEST(MboxParser, DigestCoversFromLineAndHeaderButNotStatusFields)
{
    const auto digest = [](const std::string& mbox) { return parse_all(mbox).at(0).parsed.digest; };
    const std::string base = digest("From a  Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n");
    EXPECT_EQ(base.size(), 32U);
    EXPECT_EQ(digest("From a  Mon Jan  1 00:00:00 2024\nSubject: x\nStatus: RO\nX-Status: A\n"
                     "Content-Length: 5\nX-Keywords: $x\n  folded\n\nbody\n"),
              base);
    EXPECT_EQ(digest("From a  Mon Jan  1 00:00:00 2024\nSubject: x\n\nanother body\n"), base);
    EXPECT_NE(digest("From a  Mon Jan  1 00:00:01 2024\nSubject: x\n\nbody\n"), base);
    EXPECT_NE(digest("From a  Mon Jan  1 00:00:00 2024\nSubject: y\n\nbody\n"), base);
    EXPECT_NE(digest("From a  Mon Jan  1 00:00:00 2024\nSubject: x\nX-Statusx: 1\n\nbody\n"), base);
}

TEST(MboxParser, SizeWithoutTheFinalNewline)
{
    const auto parsed = parse_all("From a\nline\r\nlast\n\n");
    ASSERT_EQ(parsed.size(), 1U);
    EXPECT_TRUE(parsed[0].parsed.ends_with_lf);
    EXPECT_EQ(parsed[0].parsed.wire_octets, protocol::wire_size("line\r\nlast\n"));
    EXPECT_EQ(parsed[0].parsed.wire_octets_without_final_lf, protocol::wire_size("line\r\nlast"));
    const auto cr = parse_all("From a\nends in cr\r\n\n");
    EXPECT_EQ(cr[0].parsed.wire_octets_without_final_lf, protocol::wire_size("ends in cr\r"));
}

TEST(MboxParser, HostileInputNeverBreaksTheInvariants)
{
    std::mt19937 random(20240601);
    std::vector<std::string> inputs{
        std::string(1 << 20, 'x'),
        "From a\n" + std::string(1 << 20, '>') + "From deep\n",
        "From " + std::string(1 << 20, 'f') + "\n\n",
        std::string(100000, '\n'),
        "From a\n" + std::string(1000, '\r') + "\n\n" + std::string(1000, '\0'),
    };
    static constexpr std::string_view alphabet[] = {"From ", ">",           "\n", "\r\n",
                                                    "\n\n",  "X-UIDL: a\n", "x",  "\0"};
    for (int i = 0; i < 300; ++i) {
        std::string input;
        const int pieces = static_cast<int>(random() % 200);
        for (int p = 0; p < pieces; ++p) {
            if (random() % 4 == 0) {
                input.push_back(static_cast<char>(random() % 256));
            } else {
                input += alphabet[random() % std::size(alphabet)];
            }
        }
        inputs.push_back(std::move(input));
    }
    for (const auto& input : inputs) {
        const auto parsed = parse_all(input);
        std::uint64_t previous_end = 0;
        for (const auto& message : parsed) {
            EXPECT_GE(message.parsed.from_offset, previous_end);
            EXPECT_EQ(std::string_view(input).substr(message.parsed.from_offset, 5), "From ");
            EXPECT_GE(message.parsed.content_offset, message.parsed.from_offset + 5);
            EXPECT_LE(message.parsed.content_offset, message.parsed.content_end);
            EXPECT_LE(message.parsed.content_end, input.size());
            EXPECT_EQ(message.parsed.wire_octets, protocol::wire_size(message.content));
            previous_end = message.parsed.content_end;
        }
    }
}

} // namespace
} // namespace pigeon::storage::mbox
