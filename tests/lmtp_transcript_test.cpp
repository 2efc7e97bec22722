// Replays every tests/transcripts/*.lmtp against LmtpSession, once with each client packet whole
// and once fed one byte at a time: the server's output and what it delivered must be the same.
//
// Beyond the POP3 transcripts' C:/S:/# lines (tests/support/transcript.hpp), an .lmtp file has:
//   ! policy max_message_size=N max_recipients=N max_bad_commands=N
//   ! user ADDRESS              RCPT accepts it (250 2.1.5)
//   ! over-quota ADDRESS        RCPT answers 552 5.2.2
//   ! temp-fail ADDRESS         RCPT answers 451 4.3.0
//   ! fail-delivery ADDRESS     delivering to it answers 452 4.2.2 (the maildrop filled up)
//   ! closed                    the server must have closed the connection
//   ! expect-message ADDRESS    the next message delivered to ADDRESS; its lines follow as
//   | line                      "| text" (each ends with CRLF in the message)
//   ! expect-aborted N          N messages were begun and then dropped (too big)
#include "transcript.hpp"

#include "protocol/lmtp_session.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace pigeon::protocol;

std::vector<std::string> lmtp_files()
{
    return pigeon::test::transcript_files(PIGEON_TRANSCRIPT_DIR, ".lmtp");
}

class Mta {
public:
    std::set<std::string> users, over_quota, temp_fail, fail_delivery;
    std::map<std::string, std::vector<std::string>> delivered;
    std::size_t aborted = 0;

    // Runs the session until it needs input; returns its output.
    std::string drive(LmtpSession& session, bool& closed)
    {
        std::string output;
        for (int guard = 0; guard < 1'000'000; ++guard) {
            auto step = session.next_step();
            if (auto* send = std::get_if<lmtp_step::SendBytes>(&step)) {
                output += send->bytes;
            } else if (auto* rcpt = std::get_if<lmtp_step::CheckRecipient>(&step)) {
                session.on_recipient_checked(check(rcpt->address));
            } else if (auto* begin = std::get_if<lmtp_step::BeginMessage>(&step)) {
                m_recipients = begin->recipients;
                m_message.clear();
            } else if (auto* part = std::get_if<lmtp_step::MessageData>(&step)) {
                m_message += part->bytes;
            } else if (std::holds_alternative<lmtp_step::AbortMessage>(step)) {
                ++aborted;
                m_message.clear();
            } else if (std::holds_alternative<lmtp_step::EndMessage>(step)) {
                std::vector<LmtpReply> replies;
                for (const auto& to : m_recipients) {
                    if (fail_delivery.contains(to)) {
                        replies.push_back({452, "4.2.2", fmt::format("<{}> Mailbox full", to)});
                    } else {
                        delivered[to].push_back(m_message);
                        replies.push_back({250, "2.0.0", fmt::format("<{}> Saved", to)});
                    }
                }
                session.on_message_delivered(std::move(replies));
            } else if (std::holds_alternative<lmtp_step::Close>(step)) {
                closed = true;
                return output;
            } else if (std::holds_alternative<lmtp_step::NeedInput>(step)) {
                return output;
            } else {
                ADD_FAILURE() << "the session waits for an answer it was given";
                return output;
            }
        }
        ADD_FAILURE() << "the session never asked for input";
        return output;
    }

private:
    LmtpReply check(const std::string& address) const
    {
        if (over_quota.contains(address)) {
            return {552, "5.2.2", fmt::format("<{}> Quota exceeded", address)};
        }
        if (temp_fail.contains(address)) {
            return {451, "4.3.0", fmt::format("<{}> Temporary user lookup failure", address)};
        }
        if (users.contains(address)) {
            return {250, "2.1.5", fmt::format("<{}> Ok", address)};
        }
        return {550, "5.1.1", fmt::format("<{}> User doesn't exist", address)};
    }

    std::vector<std::string> m_recipients;
    std::string m_message;
};

std::string run(const pigeon::test::Transcript& transcript, bool bytewise)
{
    LmtpPolicy policy;
    policy.host_name = "mx.pigeon.test";
    Mta mta;
    std::size_t i = 0;
    for (; i < transcript.lines.size() && transcript.lines[i].kind == '!'; ++i) {
        const auto& words = transcript.lines[i].words;
        if (words[0] == "policy") {
            for (std::size_t w = 1; w < words.size(); ++w) {
                const auto eq = words[w].find('=');
                const std::string key = words[w].substr(0, eq);
                const auto value = std::stoull(words[w].substr(eq + 1));
                if (key == "max_message_size") {
                    policy.max_message_size = value;
                } else if (key == "max_recipients") {
                    policy.max_recipients = static_cast<std::uint32_t>(value);
                } else if (key == "max_bad_commands") {
                    policy.max_bad_commands = static_cast<std::uint32_t>(value);
                }
            }
        } else if (words[0] == "user") {
            mta.users.insert(words.at(1));
        } else if (words[0] == "over-quota") {
            mta.over_quota.insert(words.at(1));
        } else if (words[0] == "temp-fail") {
            mta.temp_fail.insert(words.at(1));
        } else if (words[0] == "fail-delivery") {
            mta.users.insert(words.at(1));
            mta.fail_delivery.insert(words.at(1));
        } else {
            break;
        }
    }
    LmtpSession session(policy);
    bool closed = false;
    std::string output = mta.drive(session, closed);
    std::map<std::string, std::size_t> next_message;
    for (; i < transcript.lines.size(); ++i) {
        const auto& line = transcript.lines[i];
        const std::string where = fmt::format("{}:{}: ", transcript.name, line.line_number);
        if (line.kind == 'C') {
            std::string packet = line.text;
            while (i + 1 < transcript.lines.size() && transcript.lines[i + 1].kind == 'C') {
                packet += transcript.lines[++i].text;
            }
            if (bytewise) {
                for (const char c : packet) {
                    session.receive(std::string_view(&c, 1));
                    output += mta.drive(session, closed);
                }
            } else {
                session.receive(packet);
                output += mta.drive(session, closed);
            }
        } else if (line.kind == 'S') {
            const std::string want = line.text + "\r\n";
            if (!output.starts_with(want)) {
                return where +
                       fmt::format("expected {:?}, the server sent {:?}", want, output.substr(0, 200));
            }
            output.erase(0, want.size());
        } else if (line.kind == '!' && line.words[0] == "closed") {
            if (!closed) {
                return where + "the server did not close the connection";
            }
        } else if (line.kind == '!' && line.words[0] == "expect-message") {
            std::string want;
            while (i + 1 < transcript.lines.size() && transcript.lines[i + 1].kind == '|') {
                want += transcript.lines[++i].text + "\r\n";
            }
            const auto& got = mta.delivered[line.words.at(1)];
            const std::size_t n = next_message[line.words.at(1)]++;
            if (n >= got.size()) {
                return where + fmt::format("no message {} for {}", n + 1, line.words[1]);
            }
            if (got[n] != want) {
                return where + fmt::format("message {:?}, expected {:?}", got[n], want);
            }
        } else if (line.kind == '!' && line.words[0] == "expect-aborted") {
            if (mta.aborted != std::stoull(line.words.at(1))) {
                return where + fmt::format("{} messages aborted", mta.aborted);
            }
        } else {
            return where + "unknown line";
        }
    }
    if (!output.empty()) {
        return fmt::format("{}: unexpected output at the end: {:?}", transcript.name, output);
    }
    for (const auto& [rcpt, messages] : mta.delivered) {
        if (next_message[rcpt] != messages.size()) {
            return fmt::format("{}: {} got {} messages, the transcript checks {}", transcript.name, rcpt,
                               messages.size(), next_message[rcpt]);
        }
    }
    return "";
}

class LmtpTranscriptTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LmtpTranscriptTest, WholePackets)
{
    EXPECT_EQ(
        run(pigeon::test::load_transcript(std::string(PIGEON_TRANSCRIPT_DIR) + "/" + GetParam()), false), "");
}

TEST_P(LmtpTranscriptTest, ByteAtATime)
{
    EXPECT_EQ(run(pigeon::test::load_transcript(std::string(PIGEON_TRANSCRIPT_DIR) + "/" + GetParam()), true),
              "");
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info)
{
    return pigeon::test::transcript_test_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(LmtpTranscripts, LmtpTranscriptTest, ::testing::ValuesIn(lmtp_files()), test_name);

TEST(LmtpTranscripts, AtLeastTwelve)
{
    EXPECT_GE(lmtp_files().size(), 12U);
}

} // namespace
