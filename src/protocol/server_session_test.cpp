// Step-level tests of ServerSession: the order and content of steps, which transcripts cannot
// see. Whole dialogues are in tests/transcripts.
#include "protocol/server_session.hpp"

#include "core/base64.hpp"
#include "session_driver.hpp"

#include <gtest/gtest.h>

namespace pigeon::protocol {
namespace {

class FixedListing final : public MessageListing {
public:
    [[nodiscard]] std::uint32_t message_count() const noexcept override { return 2; }
    [[nodiscard]] std::uint64_t message_octets(MessageIndex index) const noexcept override
    {
        return index.value == 0 ? 120 : 200;
    }
    [[nodiscard]] std::string_view unique_id(MessageIndex index) const noexcept override
    {
        return index.value == 0 ? "uid-a" : "uid-b";
    }
};

std::string send_bytes(ServerSession& session)
{
    auto step = session.next_step();
    EXPECT_TRUE(std::holds_alternative<step::SendBytes>(step)) << "step " << step.index();
    return std::holds_alternative<step::SendBytes>(step) ? std::get<step::SendBytes>(step).bytes : "";
}

ServerSession logged_in_session()
{
    ServerPolicy policy;
    policy.plaintext_auth_without_tls = true;
    ServerSession session(policy);
    EXPECT_EQ(send_bytes(session), "+OK Pigeon POP3 server ready.\r\n");
    session.receive("USER alice\r\nPASS secret\r\n");
    EXPECT_EQ(send_bytes(session), "+OK\r\n");
    auto check = session.next_step();
    EXPECT_TRUE(std::holds_alternative<step::CheckCredentials>(check));
    EXPECT_TRUE(std::holds_alternative<step::Wait>(session.next_step()));
    session.on_credentials_checked({{}, "alice"});
    auto open = session.next_step();
    EXPECT_TRUE(std::holds_alternative<step::OpenMaildrop>(open));
    session.on_maildrop_opened({}, std::make_shared<FixedListing>());
    EXPECT_EQ(send_bytes(session), "+OK Logged in, maildrop has 2 messages (320 octets)\r\n");
    return session;
}

TEST(ServerSession, CredentialsStepCarriesWhatTheClientSent)
{
    ServerPolicy policy;
    policy.plaintext_auth_without_tls = true;
    ServerSession session(policy);
    (void)send_bytes(session);
    session.receive("USER alice\r\nPASS two words\r\n");
    (void)send_bytes(session);
    auto step = session.next_step();
    ASSERT_TRUE(std::holds_alternative<step::CheckCredentials>(step));
    const auto& check = std::get<step::CheckCredentials>(step);
    EXPECT_EQ(check.mechanism, "USER");
    const auto& password = std::get<sasl::PasswordCredentials>(check.credentials);
    EXPECT_EQ(password.authcid, "alice");
    EXPECT_EQ(password.password.view(), "two words");
    // Commands pipelined behind PASS wait until the check is answered.
    session.receive("STAT\r\n");
    EXPECT_TRUE(std::holds_alternative<step::Wait>(session.next_step()));
}

TEST(ServerSession, RetrAsksForTheMessageWithItsSize)
{
    auto session = logged_in_session();
    session.receive("RETR 2\r\nTOP 1 5\r\n");
    auto retr = session.next_step();
    ASSERT_TRUE(std::holds_alternative<step::StreamMessage>(retr));
    EXPECT_EQ(std::get<step::StreamMessage>(retr).message, MessageIndex{1});
    EXPECT_FALSE(std::get<step::StreamMessage>(retr).top_body_lines);
    EXPECT_EQ(std::get<step::StreamMessage>(retr).ok_line, "+OK 200 octets\r\n");
    session.on_message_sent();
    auto top = session.next_step();
    ASSERT_TRUE(std::holds_alternative<step::StreamMessage>(top));
    EXPECT_EQ(std::get<step::StreamMessage>(top).top_body_lines, 5U);
    session.on_message_failed(make_error_code(errc::message_unavailable));
    EXPECT_EQ(send_bytes(session), "-ERR [SYS/TEMP] Message unavailable, try again later.\r\n");
}

TEST(ServerSession, QuitCommitsExactlyTheMarkedMessages)
{
    auto session = logged_in_session();
    session.receive("DELE 2\r\nRETR 1\r\n");
    EXPECT_EQ(send_bytes(session), "+OK message 2 deleted\r\n");
    ASSERT_TRUE(std::holds_alternative<step::StreamMessage>(session.next_step()));
    session.on_message_sent();
    session.receive("QUIT\r\n");
    auto step = session.next_step();
    ASSERT_TRUE(std::holds_alternative<step::CommitUpdate>(step));
    const auto& update = std::get<step::CommitUpdate>(step);
    EXPECT_EQ(update.deletions, std::vector<MessageIndex>{MessageIndex{1}});
    EXPECT_EQ(update.retrieved, std::vector<MessageIndex>{MessageIndex{0}});
    EXPECT_EQ(session.state(), SessionState::update);
    session.on_update_committed({});
    EXPECT_EQ(send_bytes(session), "+OK Pigeon POP3 server signing off (1 message left).\r\n");
    EXPECT_TRUE(std::holds_alternative<step::Close>(session.next_step()));
    EXPECT_EQ(session.state(), SessionState::closed);
}

TEST(ServerSession, StlsDiscardsPipelinedPlaintext)
{
    ServerPolicy policy;
    policy.tls_available = true;
    ServerSession session(policy);
    (void)send_bytes(session);
    session.receive("STLS\r\nUSER injected\r\n");
    EXPECT_EQ(send_bytes(session), "+OK Begin TLS negotiation now.\r\n");
    EXPECT_TRUE(std::holds_alternative<step::StartTls>(session.next_step()));
    session.receive("PASS injected\r\n"); // still plaintext: ignored
    EXPECT_TRUE(std::holds_alternative<step::Wait>(session.next_step()));
    session.on_tls_started();
    EXPECT_TRUE(session.tls_active());
    EXPECT_TRUE(std::holds_alternative<step::NeedInput>(session.next_step()));
    session.receive("CAPA\r\n");
    const auto capa = send_bytes(session);
    EXPECT_EQ(capa.find("STLS"), std::string::npos);
    EXPECT_NE(capa.find("\r\nUSER\r\n"), std::string::npos); // plaintext is fine inside TLS
}

TEST(ServerSession, InputAfterQuitIsIgnored)
{
    ServerPolicy policy;
    ServerSession session(policy);
    (void)send_bytes(session);
    session.receive("QUIT\r\nNOOP\r\n");
    EXPECT_EQ(send_bytes(session), "+OK Pigeon POP3 server signing off.\r\n");
    EXPECT_TRUE(std::holds_alternative<step::Close>(session.next_step()));
    session.receive("NOOP\r\n");
    EXPECT_TRUE(std::holds_alternative<step::Close>(session.next_step()));
}

TEST(ServerSession, PipelinedRepliesAreCoalesced)
{
    auto session = logged_in_session();
    session.receive("STAT\r\nNOOP\r\nLIST 1\r\nUIDL 2\r\n");
    EXPECT_EQ(send_bytes(session), "+OK 2 320\r\n+OK\r\n+OK 1 120\r\n+OK 2 uid-b\r\n");
    EXPECT_TRUE(std::holds_alternative<step::NeedInput>(session.next_step()));
}

// A whole dialogue through the driver gives the same bytes however the client's bytes are cut.
TEST(ServerSession, SameDialogueAtEveryChunkSize)
{
    const std::string client =
        "CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\n"
        "DELE 1\r\nLIST 1\r\nRSET\r\nDELE 2\r\nQUIT\r\n";
    const auto run = [&](std::size_t chunk) {
        storage::MemoryMaildropStore store;
        auth::MemoryPassDb passdb;
        passdb.add_user("alice", "secret");
        store.add_message("alice", {"uid-1", "Subject: a\n\n.b\n"});
        store.add_message("alice", {"uid-2", "Subject: c\r\n\r\nd\r\ne\r\n"});
        ServerPolicy policy;
        policy.plaintext_auth_without_tls = true;
        test::SessionDriver driver(policy, store, passdb);
        std::string out = driver.run();
        for (std::size_t pos = 0; pos < client.size(); pos += chunk) {
            out += driver.feed(std::string_view(client).substr(pos, chunk));
        }
        EXPECT_TRUE(driver.closed());
        EXPECT_EQ(store.messages("alice").size(), 1U);
        return out;
    };
    const std::string whole = run(client.size());
    EXPECT_NE(whole.find("+OK 18 octets\r\nSubject: a\r\n\r\n..b\r\n.\r\n"), std::string::npos);
    for (std::size_t chunk = 1; chunk < client.size(); ++chunk) {
        EXPECT_EQ(run(chunk), whole) << "chunk " << chunk;
    }
}

} // namespace
} // namespace pigeon::protocol

namespace pigeon::protocol {
namespace {

// A RETR whose message could not be opened is neither an access (LAST) nor a retrieval (EXPIRE).
TEST(ServerSession, FailedRetrIsNotCountedAsRetrieved)
{
    ServerPolicy policy;
    policy.plaintext_auth_without_tls = true;
    policy.last_command = true;
    ServerSession session(policy);
    (void)send_bytes(session);
    session.receive("USER alice\r\nPASS secret\r\n");
    (void)send_bytes(session);
    ASSERT_TRUE(std::holds_alternative<step::CheckCredentials>(session.next_step()));
    session.on_credentials_checked({{}, "alice"});
    ASSERT_TRUE(std::holds_alternative<step::OpenMaildrop>(session.next_step()));
    session.on_maildrop_opened({}, std::make_shared<FixedListing>());
    (void)send_bytes(session);
    session.receive("RETR 2\r\nLAST\r\nQUIT\r\n");
    ASSERT_TRUE(std::holds_alternative<step::StreamMessage>(session.next_step()));
    session.on_message_failed(make_error_code(errc::message_unavailable));
    EXPECT_EQ(send_bytes(session), "-ERR [SYS/TEMP] Message unavailable, try again later.\r\n+OK 0\r\n");
    auto update = session.next_step();
    ASSERT_TRUE(std::holds_alternative<step::CommitUpdate>(update));
    EXPECT_TRUE(std::get<step::CommitUpdate>(update).retrieved.empty());
}

} // namespace
} // namespace pigeon::protocol

namespace pigeon::protocol {
namespace {

// Drives AUTH SCRAM-SHA-256 through the session with Pigeon's own SCRAM client: the session asks
// for the stored secret, sends the server-final as a last challenge, and logs in after the
// client's empty answer.
std::string scram_login(ServerSession& session, std::string_view password, std::string_view stored)
{
    auto client =
        sasl::make_scram_client("SCRAM-SHA-256", "", "alice", SecretString(std::string(password)), {});
    const auto first = client->initial_response();
    session.receive("AUTH SCRAM-SHA-256 " + base64_encode(*first) + "\r\n");
    std::string transcript;
    for (int round = 0; round < 10; ++round) {
        auto step = session.next_step();
        if (auto* lookup = std::get_if<step::LookupSecret>(&step)) {
            EXPECT_EQ(lookup->user, "alice");
            EXPECT_EQ(lookup->mechanism, "SCRAM-SHA-256");
            session.on_secret_looked_up({}, sasl::StoredSecret{"alice", SecretString(std::string(stored))});
        } else if (auto* send = std::get_if<step::SendBytes>(&step)) {
            transcript += send->bytes;
            if (send->bytes.starts_with("+ ")) {
                const auto challenge = base64_decode(send->bytes.substr(2, send->bytes.size() - 4));
                auto answer = client->respond(*challenge);
                session.receive((answer ? base64_encode(*answer) : std::string("*")) + "\r\n");
            } else if (send->bytes.starts_with("-ERR")) {
                return transcript;
            }
        } else if (std::holds_alternative<step::OpenMaildrop>(step)) {
            session.on_maildrop_opened({}, std::make_shared<FixedListing>());
        } else {
            return transcript;
        }
    }
    return transcript;
}

TEST(ServerSession, AuthScramThroughTheSession)
{
    ServerPolicy policy;
    policy.sasl_mechanisms = {"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "PLAIN"};
    ServerSession session(policy);
    (void)send_bytes(session);
    session.receive("CAPA\r\n");
    // Without TLS: no PLAIN (plaintext) and no -PLUS (nothing to bind to).
    EXPECT_NE(send_bytes(session).find("\r\nSASL SCRAM-SHA-256\r\n"), std::string::npos);
    const auto transcript = scram_login(session, "secret", "{PLAIN}secret");
    EXPECT_NE(transcript.find("+OK Logged in"), std::string::npos) << transcript;
    EXPECT_EQ(session.state(), SessionState::transaction);
    EXPECT_EQ(session.user(), "alice");
}

TEST(ServerSession, AuthScramWrongPasswordFails)
{
    ServerPolicy policy;
    policy.sasl_mechanisms = {"SCRAM-SHA-256"};
    ServerSession session(policy);
    (void)send_bytes(session);
    const auto transcript = scram_login(session, "wrong", "{PLAIN}secret");
    EXPECT_NE(transcript.find("-ERR [AUTH] Authentication failed."), std::string::npos) << transcript;
    EXPECT_EQ(session.state(), SessionState::authorization);
}

TEST(ServerSession, PlusMechanismsOnlyWithChannelBinding)
{
    ServerPolicy policy;
    policy.sasl_mechanisms = {"SCRAM-SHA-256-PLUS"};
    policy.tls_available = true;
    ServerSession session(policy);
    (void)send_bytes(session);
    session.receive("AUTH SCRAM-SHA-256-PLUS\r\nSTLS\r\n");
    EXPECT_EQ(send_bytes(session),
              "-ERR Unsupported authentication mechanism.\r\n+OK Begin TLS negotiation now.\r\n");
    ASSERT_TRUE(std::holds_alternative<step::StartTls>(session.next_step()));
    session.on_tls_started(std::string(32, 'x'));
    session.receive("CAPA\r\n");
    EXPECT_NE(send_bytes(session).find("\r\nSASL SCRAM-SHA-256-PLUS\r\n"), std::string::npos);
}

} // namespace
} // namespace pigeon::protocol
