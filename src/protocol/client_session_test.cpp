#include "protocol/client_session.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pigeon::protocol {
namespace {

// Renders events as text so a dialogue can be compared in one assertion.
std::vector<std::string> drain(ClientSession& session, std::string* body = nullptr)
{
    std::vector<std::string> out;
    while (auto event = session.next_event()) {
        std::visit(
            [&](auto& e) {
                using T = std::decay_t<decltype(e)>;
                if constexpr (std::is_same_v<T, event::Greeting>) {
                    out.push_back("greeting " + e.apop_timestamp.value_or("-"));
                } else if constexpr (std::is_same_v<T, event::Status>) {
                    out.push_back(std::string(e.keyword) + (e.reply.ok() ? " +" : " -") +
                                  (e.reply.code.empty() ? "" : " [" + e.reply.code + "]") + " " +
                                  e.reply.text);
                } else if constexpr (std::is_same_v<T, event::ListingLine>) {
                    out.push_back("line " + e.text);
                } else if constexpr (std::is_same_v<T, event::BodyData>) {
                    if (body != nullptr) {
                        *body += e.bytes;
                    }
                } else if constexpr (std::is_same_v<T, event::End>) {
                    out.push_back("end");
                } else if constexpr (std::is_same_v<T, event::Continuation>) {
                    out.push_back("continue " + e.challenge_base64);
                } else if constexpr (std::is_same_v<T, event::StartTls>) {
                    out.push_back("starttls");
                } else {
                    out.push_back("failure " + e.error.message());
                }
            },
            *event);
    }
    return out;
}

const std::string server_dialogue = "+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n"
                                    "+OK Capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\n.\r\n"
                                    "+OK 2 320\r\n"
                                    "+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"
                                    "+OK\r\n1 uid-a\r\n2 uid-b\r\n.\r\n"
                                    "+OK 120 octets\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\n"
                                    "-ERR [SYS/TEMP] message unavailable\r\n"
                                    "+OK message 1 deleted\r\n"
                                    "+OK bye\r\n";

void queue_pipeline(ClientSession& session)
{
    session.send(command::Capa{});
    session.send(command::Stat{});
    session.send(command::List{});
    session.send(command::Uidl{});
    session.send(command::Retr{MessageNumber{1}});
    session.send(command::Retr{MessageNumber{2}});
    session.send(command::Dele{MessageNumber{1}});
    session.send(command::Quit{});
}

const std::vector<std::string> expected_events{
    "greeting <1896.697170952@dbc.mtview.ca.us>",
    "CAPA + Capability list follows",
    "line TOP",
    "line UIDL",
    "line PIPELINING",
    "end",
    "STAT + 2 320",
    "LIST + 2 messages",
    "line 1 120",
    "line 2 200",
    "end",
    "UIDL + ",
    "line 1 uid-a",
    "line 2 uid-b",
    "end",
    "RETR + 120 octets",
    "end",
    "RETR - [SYS/TEMP] message unavailable",
    "DELE + message 1 deleted",
    "QUIT + bye",
};

TEST(ClientSession, PipelinedDialogue)
{
    ClientSession session;
    queue_pipeline(session);
    EXPECT_EQ(session.take_output(),
              "CAPA\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nRETR 2\r\nDELE 1\r\nQUIT\r\n");
    session.receive(server_dialogue);
    std::string body;
    EXPECT_EQ(drain(session, &body), expected_events);
    EXPECT_EQ(body, "Subject: x\r\n\r\n.dot\r\nbody\r\n");
    EXPECT_EQ(session.pending_replies(), 0U);
}

TEST(ClientSession, SameEventsAtEveryChunkSize)
{
    for (std::size_t chunk = 1; chunk <= server_dialogue.size(); chunk += (chunk < 40 ? 1 : 37)) {
        ClientSession session;
        queue_pipeline(session);
        std::vector<std::string> events;
        std::string body;
        for (std::size_t pos = 0; pos < server_dialogue.size(); pos += chunk) {
            session.receive(std::string_view(server_dialogue).substr(pos, chunk));
            for (auto& e : drain(session, &body)) {
                events.push_back(std::move(e));
            }
        }
        EXPECT_EQ(events, expected_events) << "chunk " << chunk;
        EXPECT_EQ(body, "Subject: x\r\n\r\n.dot\r\nbody\r\n") << "chunk " << chunk;
    }
}

TEST(ClientSession, LargeBodyIsStreamedInBoundedPieces)
{
    ClientSession session;
    session.send(command::Retr{MessageNumber{1}});
    session.receive("+OK ready\r\n+OK\r\n");
    drain(session);
    const std::string line(998, 'x');
    std::string sent;
    for (int i = 0; i < 300; ++i) {
        sent += line + "\r\n";
    }
    session.receive(sent + ".\r\n");
    std::size_t total = 0;
    bool ended = false;
    while (auto event = session.next_event()) {
        if (auto* data = std::get_if<event::BodyData>(&*event)) {
            EXPECT_LE(data->bytes.size(), ClientSession::body_chunk_octets);
            total += data->bytes.size();
        } else {
            ended = std::holds_alternative<event::End>(*event);
        }
    }
    EXPECT_EQ(total, sent.size());
    EXPECT_TRUE(ended);
}

TEST(ClientSession, SaslContinuation)
{
    ClientSession session;
    session.send(command::Auth{std::string("PLAIN"), std::nullopt});
    session.receive("+OK hi\r\n+ \r\n");
    EXPECT_EQ(drain(session), (std::vector<std::string>{"greeting -", "continue "}));
    session.send_sasl_response("AGFsaWNlAHNlY3JldA==");
    EXPECT_EQ(session.take_output(), "AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n");
    session.receive("+OK Logged in\r\n");
    EXPECT_EQ(drain(session), (std::vector<std::string>{"AUTH + Logged in"}));
}

TEST(ClientSession, StlsThenHandshake)
{
    ClientSession session;
    session.send(command::Stls{});
    session.receive("+OK hi\r\n+OK Begin TLS\r\n");
    EXPECT_EQ(drain(session), (std::vector<std::string>{"greeting -", "starttls"}));
    session.on_tls_started();
    session.send(command::Capa{});
    session.receive("+OK\r\nUSER\r\n.\r\n");
    EXPECT_EQ(drain(session), (std::vector<std::string>{"CAPA + ", "line USER", "end"}));
}

// CVE-2021-22947 class: bytes after the STLS +OK, before the handshake, were injected by an
// attacker; they must never be taken as replies.
TEST(ClientSession, PlaintextAfterStlsOkIsRefused)
{
    ClientSession session;
    session.send(command::Stls{});
    session.receive("+OK hi\r\n+OK Begin TLS\r\n+OK 1 injected\r\n");
    const auto events = drain(session);
    ASSERT_EQ(events.size(), 2U);
    EXPECT_EQ(events[1], "failure " + make_error_code(errc::plaintext_after_stls).message());

    ClientSession later;
    later.send(command::Stls{});
    later.receive("+OK hi\r\n+OK Begin TLS\r\n");
    EXPECT_EQ(drain(later).back(), "starttls");
    later.receive("+OK injected\r\n");
    EXPECT_EQ(drain(later),
              (std::vector<std::string>{"failure " + make_error_code(errc::plaintext_after_stls).message()}));
}

TEST(ClientSession, ProtocolViolationsFail)
{
    ClientSession unsolicited;
    unsolicited.receive("+OK hi\r\n+OK surprise\r\n");
    EXPECT_EQ(drain(unsolicited).back(), "failure " + make_error_code(errc::unexpected_reply).message());

    ClientSession garbage;
    garbage.receive("HTTP/1.1 200 OK\r\n");
    EXPECT_EQ(drain(garbage).back(), "failure " + make_error_code(errc::malformed_response).message());

    ClientSession endless;
    endless.receive(std::string(20000, 'x') + "\r\n");
    EXPECT_EQ(drain(endless).back(), "failure " + make_error_code(errc::line_too_long).message());

    ClientSession unexpected_continuation;
    unexpected_continuation.send(command::Stat{});
    unexpected_continuation.receive("+OK hi\r\n+ challenge\r\n");
    EXPECT_EQ(drain(unexpected_continuation).back(),
              "failure " + make_error_code(errc::unexpected_reply).message());
}

TEST(ClientSession, FormatsEveryCommand)
{
    EXPECT_EQ(format_command(command::User{"alice"}), "USER alice\r\n");
    EXPECT_EQ(format_command(command::Pass{SecretString("a b")}), "PASS a b\r\n");
    EXPECT_EQ(format_command(command::Apop{"mrose", "c4c9"}), "APOP mrose c4c9\r\n");
    EXPECT_EQ(format_command(command::Auth{}), "AUTH\r\n");
    EXPECT_EQ(format_command(command::Auth{std::string("PLAIN"), std::string("=")}), "AUTH PLAIN =\r\n");
    EXPECT_EQ(format_command(command::Top{MessageNumber{3}, 0}), "TOP 3 0\r\n");
    EXPECT_EQ(format_command(command::List{MessageNumber{2}}), "LIST 2\r\n");
    EXPECT_EQ(format_command(command::Uidl{}), "UIDL\r\n");
    EXPECT_EQ(format_command(command::Utf8{}), "UTF8\r\n");
    EXPECT_EQ(format_command(command::Last{}), "LAST\r\n");
    EXPECT_EQ(format_command(command::Noop{}), "NOOP\r\n");
    EXPECT_EQ(format_command(command::Rset{}), "RSET\r\n");
}

} // namespace
} // namespace pigeon::protocol
