// pigeond's server over real loopback sockets: sessions and their log lines, STLS and implicit
// TLS, hostile input (a 1 MB line, NUL bytes and junk, a command smuggled with STLS), 1,000
// connections from one address, a reader that stops mid-RETR, clients that vanish, timeouts,
// LOGIN-DELAY, the brute-force log line, reload and graceful shutdown.
#include "test_server.hpp"

#include "auth/memory/memory_passdb.hpp"
#include "core/base64.hpp"
#include "sasl/scram_endpoint.hpp"
#include "storage/maildir/maildir_store.hpp"
#include "storage/memory/memory_maildrop.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sys/resource.h>
#include <unistd.h>

namespace pigeon::test {
namespace {

using namespace std::chrono_literals;

struct Fixture {
    std::shared_ptr<storage::MemoryMaildropStore> store = std::make_shared<storage::MemoryMaildropStore>();
    std::shared_ptr<auth::MemoryPassDb> passdb = std::make_shared<auth::MemoryPassDb>();
    Fixture()
    {
        passdb->add_user("alice", "secret");
        passdb->add_user("bob", "hunter2");
        store->add_message("alice", {"uid-1", "Subject: one\n\nfirst\n.leading dot\n"});
        store->add_message("alice", {"uid-2", "Subject: two\r\n\r\nsecond\r\n"});
    }
};

std::string login(TestClient& client, std::string_view user = "alice", std::string_view password = "secret")
{
    client.send(fmt::format("USER {}\r\nPASS {}\r\n", user, password));
    client.line();
    return client.line();
}

TEST(Server, SessionRetrDeleQuitAndTheLogLines)
{
    Fixture f;
    TestServer server(test_services(f.store, f.passdb));
    {
        TestClient client(server.port());
        ASSERT_TRUE(client.connected());
        EXPECT_EQ(client.line(), "+OK Pigeon POP3 server ready.\r\n");
        EXPECT_TRUE(login(client).starts_with("+OK Logged in"));
        client.send("RETR 1\r\n");
        EXPECT_EQ(client.line(), "+OK 37 octets\r\n");
        EXPECT_EQ(client.until("\r\n.\r\n"), "Subject: one\r\n\r\nfirst\r\n..leading dot\r\n.\r\n");
        client.send("DELE 1\r\nQUIT\r\n");
        EXPECT_EQ(client.line(), "+OK message 1 deleted\r\n");
        EXPECT_TRUE(client.line().starts_with("+OK"));
        EXPECT_TRUE(client.eof());
    }
    EXPECT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    EXPECT_EQ(f.store->messages("alice").size(), 1U);
    EXPECT_EQ(server.log().count("login: user=alice rip=127.0.0.1 mech=USER tls=no"), 1U);
    EXPECT_EQ(
        server.log().count("disconnect: user=alice rip=127.0.0.1 mech=USER tls=no retr=1/38 top=0 dele=1"),
        1U);
    EXPECT_EQ(server.log().count("reason=\"quit\""), 1U);
}

TEST(Server, VanishedClientCommitsNothing)
{
    Fixture f;
    TestServer server(test_services(f.store, f.passdb));
    {
        TestClient client(server.port());
        client.line();
        login(client);
        client.send("DELE 1\r\nDELE 2\r\n");
        client.line();
        client.line();
    } // gone without QUIT
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    EXPECT_EQ(f.store->messages("alice").size(), 2U);
    EXPECT_EQ(server.log().count("reason=\"disconnected\""), 1U);
    // The maildrop is free again.
    TestClient again(server.port());
    again.line();
    EXPECT_TRUE(login(again).starts_with("+OK Logged in, maildrop has 2 messages"));
}

TEST(Server, StlsDiscardsACommandSentInTheSamePacket)
{
    Fixture f;
    TestServer server(test_services(f.store, f.passdb, test_tls_context()));
    TestClient client(server.port());
    client.line();
    // The injected USER must never be answered, inside TLS or out (RFC 2595 §4, CVE-2011-0411).
    client.send("STLS\r\nUSER alice\r\n");
    EXPECT_EQ(client.line(), "+OK Begin TLS negotiation now.\r\n");
    ASSERT_TRUE(client.start_tls());
    client.send("PASS secret\r\n");
    EXPECT_TRUE(client.line().starts_with("-ERR")); // no USER was accepted
    client.send("CAPA\r\n");
    const auto capa = client.until("\r\n.\r\n");
    EXPECT_EQ(capa.find("STLS"), std::string::npos); // not offered again inside TLS
    EXPECT_NE(capa.find("USER"), std::string::npos);
    EXPECT_TRUE(login(client).starts_with("+OK Logged in"));
    client.send("QUIT\r\n");
    client.line();
    EXPECT_TRUE(eventually([&] { return server.log().count("tls=TLSv1.3") >= 1; }));
}

TEST(Server, TlsDefaultsRefuseOldProtocolsAndWeakCiphers)
{
    Fixture f;
    TestServer server(test_services(f.store, f.passdb, test_tls_context()), test_tuning(),
                      {net::TlsMode::implicit});
    const auto handshake = [&server](int min_version, int max_version, const char* ciphers) {
        TestClient client(server.port());
        return client.start_tls_offering(min_version, max_version, ciphers);
    };
    // The defaults (tls.min_version = TLSv1.2, OpenSSL's cipher list): TLS 1.0 and 1.1 are refused
    // whatever the suite...
    EXPECT_FALSE(handshake(TLS1_VERSION, TLS1_VERSION, "ALL:@SECLEVEL=0"));
    EXPECT_FALSE(handshake(TLS1_1_VERSION, TLS1_1_VERSION, "ALL:@SECLEVEL=0"));
    // ...and in TLS 1.2, suites without encryption, without authentication, export-grade, RC4,
    // single DES, 3DES and MD5 ones are never chosen.
    for (const char* weak : {"eNULL", "aNULL", "EXPORT", "RC4", "DES", "3DES", "MD5", "IDEA", "SEED"}) {
        EXPECT_FALSE(handshake(TLS1_2_VERSION, TLS1_2_VERSION, weak)) << weak;
    }
    // What clients use today works: TLS 1.2 with ECDHE and AES-GCM, and TLS 1.3.
    EXPECT_TRUE(handshake(TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256"));
    EXPECT_TRUE(handshake(TLS1_3_VERSION, TLS1_3_VERSION, "DEFAULT"));
}

TEST(Server, ImplicitTlsAndPlaintextPolicy)
{
    Fixture f;
    auto services = test_services(f.store, f.passdb, test_tls_context());
    services->settings.plaintext_auth = net::PlaintextAuth::never;
    TestServer server(services, test_tuning(), {net::TlsMode::starttls, net::TlsMode::implicit});
    {
        // Plain connection: USER/PASS and PLAIN refused before STLS, and not offered.
        TestClient plain(server.port(0));
        plain.line();
        plain.send("CAPA\r\n");
        const auto capa = plain.until("\r\n.\r\n");
        EXPECT_EQ(capa.find("\r\nUSER\r\n"), std::string::npos);
        EXPECT_NE(capa.find("STLS"), std::string::npos);
        plain.send("USER alice\r\n");
        EXPECT_TRUE(plain.line().starts_with("-ERR [AUTH]"));
    }
    TestClient tls(server.port(1));
    ASSERT_TRUE(tls.start_tls());
    EXPECT_EQ(tls.line(), "+OK Pigeon POP3 server ready.\r\n");
    tls.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"); // \0alice\0secret
    EXPECT_TRUE(tls.line().starts_with("+OK Logged in"));
    tls.send("STAT\r\nQUIT\r\n");
    EXPECT_EQ(tls.line(), "+OK 2 61\r\n");
}

TEST(Server, ExternalNeedsAUserTheDatabaseLetsIn)
{
    // The client certificate (CN=localhost, trusted as its own CA) names the user; the user
    // database still decides: unknown and "nologin" users are refused like a wrong password.
    Fixture f;
    tls::TlsOptions options;
    options.certificates.push_back({test_certificate().certificate, test_certificate().key});
    options.client_ca_file = test_certificate().certificate;
    auto context = tls::ServerTlsContext::load(options);
    ASSERT_TRUE(context) << context.error();
    auto services = test_services(f.store, f.passdb, *context);
    services->settings.policy.sasl_mechanisms = {"EXTERNAL"};
    TestServer server(services, test_tuning(), {net::TlsMode::implicit});
    const auto try_external = [&] {
        TestClient client(server.port());
        EXPECT_TRUE(client.start_tls(&test_certificate()));
        client.line();
        client.send("AUTH EXTERNAL =\r\n");
        return client.line();
    };
    EXPECT_EQ(try_external(), "-ERR [AUTH] Authentication failed.\r\n"); // no user "localhost"
    auth::UserRecord disabled;
    disabled.name = "localhost";
    disabled.extra_fields.emplace_back("nologin", "");
    f.passdb->add_record(std::move(disabled));
    EXPECT_EQ(try_external(), "-ERR [AUTH] Authentication failed.\r\n");
    EXPECT_TRUE(eventually([&] {
        return server.log().count("auth failed: user=localhost rip=127.0.0.1 mech=EXTERNAL "
                                  "reason=unknown_or_disabled_user") == 2;
    }));
    auth::UserRecord allowed;
    allowed.name = "localhost";
    f.passdb->add_record(std::move(allowed));
    EXPECT_TRUE(try_external().starts_with("+OK Logged in"));
}

// Accepts the token "good-token" as alice's; the JWT checks themselves are jwt_validator_test's.
class FixedTokenVerifier final : public auth::BearerVerifier {
public:
    [[nodiscard]] Result<std::string> verify_bearer(std::string_view token, std::string_view claimed_user,
                                                    std::string_view* /*reason*/) const override
    {
        if (token == "good-token" && (claimed_user.empty() || claimed_user == "alice")) {
            return std::string("alice");
        }
        return fail(errc::auth_failed);
    }
};

TEST(Server, BearerTokensAreCheckedByTheConfiguredVerifier)
{
    Fixture f;
    auto services = test_services(f.store, f.passdb);
    services->settings.policy.sasl_mechanisms = {"XOAUTH2", "OAUTHBEARER"};
    services->bearer = std::make_shared<FixedTokenVerifier>();
    TestServer server(services);
    const auto attempt = [&](std::string_view command) {
        TestClient client(server.port());
        client.line();
        client.send(command);
        return client.line();
    };
    // XOAUTH2, one line: base64("user=alice\x01auth=Bearer good-token\x01\x01").
    EXPECT_TRUE(attempt("AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciBnb29kLXRva2VuAQE=\r\n")
                    .starts_with("+OK Logged in"));
    // OAUTHBEARER: base64("n,a=alice,\x01auth=Bearer good-token\x01\x01").
    EXPECT_TRUE(attempt("AUTH OAUTHBEARER bixhPWFsaWNlLAFhdXRoPUJlYXJlciBnb29kLXRva2VuAQE=\r\n")
                    .starts_with("+OK Logged in"));
    // A token the verifier refuses, and a good token claimed for another user.
    // base64("user=alice\x01auth=Bearer forged\x01\x01"), base64("user=bob\x01auth=Bearer
    // good-token\x01\x01").
    EXPECT_FALSE(attempt("AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciBmb3JnZWQBAQ==\r\n").starts_with("+OK"));
    EXPECT_FALSE(attempt("AUTH XOAUTH2 dXNlcj1ib2IBYXV0aD1CZWFyZXIgZ29vZC10b2tlbgEB\r\n").starts_with("+OK"));
    EXPECT_TRUE(eventually([&] { return server.log().count("login: user=alice") == 2; }));
    // RFC 7628 §3.2.2: the refusal is an error challenge, then -ERR after the dummy response.
    TestClient client(server.port());
    client.line();
    client.send("AUTH OAUTHBEARER bixhPWFsaWNlLAFhdXRoPUJlYXJlciBmb3JnZWQBAQ==\r\n"); // "forged"
    EXPECT_EQ(client.line(), "+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NoZW1lcyI6ImJlYXJlciJ9\r\n");
    client.send("AQ==\r\n");
    EXPECT_EQ(client.line(), "-ERR [AUTH] Authentication failed.\r\n");
    EXPECT_TRUE(eventually([&] { return server.log().count("auth failed: user=alice") >= 2; }));
}

TEST(Server, ExpireZeroDeletesRetrievedMessagesAtQuit)
{
    Fixture f;
    auto services = test_services(f.store, f.passdb);
    services->settings.policy.expire_days = 0;
    TestServer server(services);
    {
        TestClient client(server.port());
        client.line();
        ASSERT_TRUE(login(client).starts_with("+OK Logged in"));
        client.send("CAPA\r\n");
        EXPECT_NE(client.until("\r\n.\r\n").find("\r\nEXPIRE 0\r\n"), std::string::npos);
        client.send("RETR 2\r\n");
        client.until("\r\n.\r\n");
        client.send("QUIT\r\n");
        EXPECT_TRUE(client.line().starts_with("+OK"));
    }
    EXPECT_TRUE(
        eventually([&] { return server.log().count("expired: user=alice messages=1 expire_days=0") == 1; }));
    const auto left = f.store->messages("alice");
    ASSERT_EQ(left.size(), 1U);
    EXPECT_EQ(left[0].unique_id, "uid-1"); // the message not retrieved stays
}

TEST(Server, ScramPlusBindsToTheCertificateWhereTlsHasNoExporter)
{
    // TLS 1.2 without extended master secret has no RFC 9266 exporter; SCRAM-SHA-256-PLUS is
    // still offered and binds to the server certificate (RFC 5929 tls-server-end-point).
    Fixture f;
    auto services = test_services(f.store, f.passdb, test_tls_context());
    services->settings.policy.sasl_mechanisms = {"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};
    TestServer server(services, test_tuning(), {net::TlsMode::implicit});
    const auto login_with = [&](const std::string& binding_data) {
        TestClient client(server.port());
        EXPECT_TRUE(client.start_tls(nullptr, true));
        client.line();
        client.send("CAPA\r\n");
        EXPECT_NE(client.until("\r\n.\r\n").find("SCRAM-SHA-256-PLUS"), std::string::npos);
        sasl::MechanismContext context;
        context.tls_server_end_point = binding_data;
        auto mechanism =
            sasl::make_scram_client("SCRAM-SHA-256-PLUS", "", "alice", SecretString("secret"), context);
        EXPECT_TRUE(mechanism);
        if (!mechanism) {
            return std::string();
        }
        client.send("AUTH SCRAM-SHA-256-PLUS " + base64_encode(*mechanism->initial_response()) + "\r\n");
        for (int round = 0; round < 4; ++round) {
            const std::string line = client.line();
            if (!line.starts_with("+ ")) {
                return line;
            }
            auto challenge = base64_decode(std::string_view(line).substr(2, line.size() - 4));
            auto answer =
                challenge ? mechanism->respond(*challenge) : Result<std::string>(fail(errc::auth_failed));
            client.send((answer ? base64_encode(*answer) : std::string("*")) + "\r\n");
        }
        return std::string("no end");
    };
    TestClient probe(server.port());
    ASSERT_TRUE(probe.start_tls(nullptr, true));
    const std::string binding = sasl::tls_server_end_point(probe.peer_certificate_der());
    ASSERT_EQ(binding.size(), 32U); // the test certificate is signed with SHA-256
    EXPECT_TRUE(login_with(binding).starts_with("+OK Logged in"));
    // A client that saw another certificate (a man in the middle) is refused.
    EXPECT_TRUE(login_with(std::string(32, '\0')).starts_with("-ERR"));
}

TEST(Server, MegabyteLineGetsAnErrorAndTheServerGoesOn)
{
    Fixture f;
    TestServer server(test_services(f.store, f.passdb));
    {
        TestClient client(server.port());
        client.line();
        client.send(std::string(1 << 20, 'A'));
        client.send("\r\nQUIT\r\n");
        const auto first = client.line();
        EXPECT_TRUE(first.starts_with("-ERR")) << first;
        // The server resynchronised at the line's end and answers the next command.
        EXPECT_EQ(client.line(), "+OK Pigeon POP3 server signing off.\r\n");
        EXPECT_TRUE(client.eof());
    }
    TestClient next(server.port());
    EXPECT_EQ(next.line(), "+OK Pigeon POP3 server ready.\r\n");
    EXPECT_TRUE(login(next).starts_with("+OK Logged in"));
}

TEST(Server, NulBytesAndRandomJunkEndInACleanClose)
{
    Fixture f;
    TestServer server(test_services(f.store, f.passdb));
    std::mt19937 random(12345);
    for (int round = 0; round < 5; ++round) {
        TestClient client(server.port());
        client.line();
        std::string junk(64 * 1024, '\0');
        for (auto& c : junk) {
            c = static_cast<char>(random() % 7 == 0 ? '\n' : random() % 256);
        }
        client.send(junk);
        std::string rest;
        EXPECT_TRUE(client.eof(&rest)); // too many bad commands: -ERR lines, then a close
        EXPECT_NE(rest.find("-ERR"), std::string::npos);
    }
    TestClient next(server.port());
    next.line();
    EXPECT_TRUE(login(next).starts_with("+OK Logged in"));
}

TEST(Server, ThousandConnectionsFromOneAddress)
{
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 4096);
    setrlimit(RLIMIT_NOFILE, &limit);
    ASSERT_GE(limit.rlim_cur, 2200U) << "the test needs 2,200 file descriptors";

    Fixture f;
    auto tuning = test_tuning();
    tuning.max_connections_per_ip = 100;
    TestServer server(test_services(f.store, f.passdb), tuning);
    std::vector<std::unique_ptr<TestClient>> clients;
    for (int i = 0; i < 1000; ++i) {
        clients.push_back(std::make_unique<TestClient>(server.port()));
        ASSERT_TRUE(clients.back()->connected());
    }
    int greeted = 0;
    int refused = 0;
    for (auto& client : clients) {
        const auto line = client->line();
        if (line == "+OK Pigeon POP3 server ready.\r\n") {
            ++greeted;
        } else if (line == "-ERR [SYS/TEMP] Too many connections, try again later.\r\n") {
            ++refused;
            EXPECT_TRUE(client->eof());
        }
    }
    EXPECT_EQ(greeted, 100);
    EXPECT_EQ(refused, 900);
    clients.clear();
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    TestClient after(server.port());
    EXPECT_EQ(after.line(), "+OK Pigeon POP3 server ready.\r\n");
}

// limits.refusal_delay: a connection over the limits is answered after the delay, so a client that
// reconnects as soon as it is refused (a password sprayer) opens one connection per delay, not
// thousands a second.
TEST(Server, ARefusedConnectionIsAnsweredAfterTheRefusalDelay)
{
    Fixture f;
    auto tuning = test_tuning();
    tuning.max_connections_per_ip = 1;
    tuning.refusal_delay = std::chrono::milliseconds(700);
    TestServer server(test_services(f.store, f.passdb), tuning);
    TestClient first(server.port());
    ASSERT_EQ(first.line(), "+OK Pigeon POP3 server ready.\r\n");
    const auto began = std::chrono::steady_clock::now();
    TestClient refused(server.port());
    EXPECT_EQ(refused.line(), "-ERR [SYS/TEMP] Too many connections, try again later.\r\n");
    EXPECT_GE(std::chrono::steady_clock::now() - began, std::chrono::milliseconds(700));
    EXPECT_TRUE(refused.eof());
    // The session that holds the address's place is not disturbed.
    EXPECT_TRUE(login(first).starts_with("+OK Logged in"));
}

// At most max_held_refusals wait; the next refusals are answered at once, and a stop answers the
// waiting ones without waiting out their delay.
TEST(Server, RefusalsBeyondTheHeldOnesAreAnsweredAtOnceAndAStopAnswersTheHeld)
{
    Fixture f;
    auto tuning = test_tuning();
    tuning.max_connections_per_ip = 1;
    tuning.refusal_delay = std::chrono::milliseconds(600'000);
    tuning.max_held_refusals = 2;
    TestServer server(test_services(f.store, f.passdb), tuning);
    TestClient first(server.port());
    ASSERT_EQ(first.line(), "+OK Pigeon POP3 server ready.\r\n");
    TestClient held1(server.port());
    TestClient held2(server.port());
    // Both wait (the listener accepts in order, so they are held before the next one is seen).
    TestClient over(server.port());
    EXPECT_EQ(over.line(), "-ERR [SYS/TEMP] Too many connections, try again later.\r\n");
    EXPECT_TRUE(over.eof());
    server.stop();
    for (auto* held : {&held1, &held2}) {
        EXPECT_EQ(held->line(), "-ERR [SYS/TEMP] Too many connections, try again later.\r\n");
        EXPECT_TRUE(held->eof());
    }
}

// The held places are given back: after the held refusal is answered, the next one waits again.
TEST(Server, AnsweredRefusalsGiveTheirHeldPlaceBack)
{
    Fixture f;
    auto tuning = test_tuning();
    tuning.max_connections_per_ip = 1;
    tuning.refusal_delay = std::chrono::milliseconds(300);
    tuning.max_held_refusals = 1;
    TestServer server(test_services(f.store, f.passdb), tuning);
    TestClient first(server.port());
    ASSERT_EQ(first.line(), "+OK Pigeon POP3 server ready.\r\n");
    for (int round = 0; round < 3; ++round) {
        const auto began = std::chrono::steady_clock::now();
        TestClient refused(server.port());
        EXPECT_EQ(refused.line(), "-ERR [SYS/TEMP] Too many connections, try again later.\r\n");
        EXPECT_GE(std::chrono::steady_clock::now() - began, std::chrono::milliseconds(300)) << round;
    }
}

// A client that reconnects and logs in while its old connection is still open (a dropped link
// the server has not noticed) takes the maildrop over: the old session's QUIT deletes nothing,
// and that is logged as the designed outcome (info), not as a failure.
TEST(Server, AQuitAfterATakeoverDeletesNothingAndIsNoError)
{
    namespace fs = std::filesystem;
    const fs::path root = fs::temp_directory_path() / ("pigeon-takeover-" + std::to_string(::getpid()));
    fs::remove_all(root);
    for (const char* folder : {"new", "cur", "tmp"}) {
        fs::create_directories(root / "alice" / folder);
    }
    std::ofstream(root / "alice/new/1000.M1P1.host", std::ios::binary) << "Subject: one\r\n\r\nfirst\r\n";
    std::ofstream(root / "alice/new/1001.M2P1.host", std::ios::binary) << "Subject: two\r\n\r\nsecond\r\n";
    storage::MaildirOptions options;
    options.path_template = (root / "%u").string();
    options.takeover = true;
    auto passdb = std::make_shared<auth::MemoryPassDb>();
    passdb->add_user("alice", "secret");
    {
        TestServer server(test_services(std::make_shared<storage::MaildirStore>(options), passdb));
        TestClient old_session(server.port());
        old_session.line();
        ASSERT_TRUE(login(old_session).starts_with("+OK Logged in"));
        old_session.send("DELE 1\r\n");
        ASSERT_TRUE(old_session.line().starts_with("+OK"));

        TestClient new_session(server.port());
        new_session.line();
        ASSERT_TRUE(login(new_session).starts_with("+OK Logged in"));
        old_session.send("QUIT\r\n");
        EXPECT_TRUE(old_session.line().starts_with("-ERR [SYS/TEMP]"));
        new_session.send("STAT\r\nQUIT\r\n");
        EXPECT_TRUE(new_session.line().starts_with("+OK 2 "));
        EXPECT_TRUE(new_session.line().starts_with("+OK"));
        EXPECT_TRUE(eventually([&] {
            return server.log().count("commit for user=alice refused: the maildrop was taken over") == 1;
        }));
        EXPECT_EQ(server.log().count("commit for user=alice failed"), 0U);
    }
    std::size_t files = 0;
    for (const char* folder : {"new", "cur"}) {
        files += static_cast<std::size_t>(
            std::distance(fs::directory_iterator(root / "alice" / folder), fs::directory_iterator()));
    }
    EXPECT_EQ(files, 2U);
    fs::remove_all(root);
}

// A maildrop whose readers count the bytes they hand out.
class CountingStore final : public storage::MaildropStore {
public:
    explicit CountingStore(std::shared_ptr<storage::MemoryMaildropStore> inner) : m_inner(std::move(inner)) {}
    Result<std::unique_ptr<storage::Maildrop>> open(std::string_view user) override
    {
        auto maildrop = m_inner->open(user);
        if (!maildrop) {
            return maildrop;
        }
        return std::make_unique<Counting>(std::move(*maildrop), m_read);
    }
    std::atomic<std::uint64_t> m_read{0};

private:
    class Reader final : public storage::MessageReader {
    public:
        Reader(std::unique_ptr<storage::MessageReader> inner, std::atomic<std::uint64_t>& read)
            : m_inner(std::move(inner)), m_read(read)
        {
        }
        Result<std::size_t> read(std::span<char> buffer) override
        {
            auto n = m_inner->read(buffer);
            if (n) {
                m_read += *n;
            }
            return n;
        }

    private:
        std::unique_ptr<storage::MessageReader> m_inner;
        std::atomic<std::uint64_t>& m_read;
    };
    class Counting final : public storage::Maildrop {
    public:
        Counting(std::unique_ptr<storage::Maildrop> inner, std::atomic<std::uint64_t>& read)
            : m_inner(std::move(inner)), m_read(read)
        {
        }
        std::uint32_t message_count() const noexcept override { return m_inner->message_count(); }
        std::uint64_t message_octets(MessageIndex i) const noexcept override
        {
            return m_inner->message_octets(i);
        }
        std::string_view unique_id(MessageIndex i) const noexcept override { return m_inner->unique_id(i); }
        Result<std::unique_ptr<storage::MessageReader>> open_message(MessageIndex i) override
        {
            auto reader = m_inner->open_message(i);
            if (!reader) {
                return reader;
            }
            return std::make_unique<Reader>(std::move(*reader), m_read);
        }
        Result<void> commit(std::span<const MessageIndex> deletions) override
        {
            return m_inner->commit(deletions);
        }

    private:
        std::unique_ptr<storage::Maildrop> m_inner;
        std::atomic<std::uint64_t>& m_read;
    };
    std::shared_ptr<storage::MemoryMaildropStore> m_inner;
};

TEST(Server, AReaderThatStopsHoldsABoundedBuffer)
{
    auto memory = std::make_shared<storage::MemoryMaildropStore>();
    auto passdb = std::make_shared<auth::MemoryPassDb>();
    passdb->add_user("alice", "secret");
    std::string big;
    const std::string line(998, 'x');
    while (big.size() < (64U << 20)) {
        big += line;
        big += '\n';
    }
    memory->add_message("alice", {"big", big});
    auto store = std::make_shared<CountingStore>(memory);
    TestServer server(test_services(store, passdb));
    TestClient client(server.port());
    client.line();
    login(client);
    client.send("RETR 1\r\n");
    std::uint64_t received = client.exactly(1 << 20).size(); // then the client stops reading
    ASSERT_EQ(received, 1U << 20);
    // What the server read from storage but the client has not taken is the server's output
    // buffer, one file chunk and what the kernel's socket buffers hold: far from 64 MB.
    ASSERT_TRUE(eventually([&] { return store->m_read.load() > received; }));
    const auto held = store->m_read.load() - received;
    EXPECT_LT(held, 16U << 20) << "the server read " << held << " bytes ahead of a stalled client";
    // And the whole message still arrives, byte for byte, once the client reads again.
    std::string rest = client.until("\r\n.\r\n");
    received += rest.size();
    const auto wire = big.size() + big.size() / 999; // every LF became CRLF
    EXPECT_EQ(received, fmt::format("+OK {} octets\r\n", wire).size() + wire + 3);
}

TEST(Server, LoginTimeoutClosesAnIdleConnection)
{
    Fixture f;
    auto services = test_services(f.store, f.passdb);
    services->settings.login_timeout = 200ms;
    TestServer server(services);
    TestClient client(server.port());
    client.line();
    EXPECT_TRUE(client.eof()); // within the client's 10 s bound
    EXPECT_TRUE(eventually([&] { return server.log().count("reason=\"login timeout\"") == 1; }));
}

TEST(Server, LoginTimeoutIsOneDeadlineNotPerCommand)
{
    // A client that keeps talking but never logs in is still closed when login_timeout has
    // passed since it connected: the timer is not restarted by each command.
    Fixture f;
    auto services = test_services(f.store, f.passdb);
    services->settings.login_timeout = 300ms;
    TestServer server(services);
    TestClient client(server.port());
    client.line();
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    bool closed = false;
    for (int i = 0; i < 1'000'000 && std::chrono::steady_clock::now() < give_up; ++i) {
        if (!client.send("CAPA\r\n") || client.until(".\r\n").empty()) {
            closed = true;
            break;
        }
    }
    EXPECT_TRUE(closed) << "the server still answered after 5 s of commands without a login";
    EXPECT_TRUE(eventually([&] { return server.log().count("reason=\"login timeout\"") == 1; }));
}

TEST(Server, LoginDelayIsEnforced)
{
    Fixture f;
    auto services = test_services(f.store, f.passdb);
    services->settings.policy.login_delay_seconds = 3600;
    TestServer server(services);
    {
        TestClient client(server.port());
        client.line();
        EXPECT_TRUE(login(client).starts_with("+OK Logged in"));
        client.send("QUIT\r\n");
        client.line();
    }
    TestClient again(server.port());
    again.line();
    EXPECT_EQ(login(again), "-ERR [LOGIN-DELAY] Logged in too recently, try again later.\r\n");
    // Another user is not affected.
    EXPECT_TRUE(login(again, "bob", "hunter2").starts_with("+OK Logged in"));
}

TEST(Server, FailedLoginsLogOneMatchableLineAndAreDelayed)
{
    Fixture f;
    auto tuning = test_tuning();
    tuning.throttle.base_delay = 20ms;
    tuning.throttle.max_delay = 1000ms;
    tuning.throttle.free_failures = 0;
    TestServer server(test_services(f.store, f.passdb), tuning);
    TestClient client(server.port());
    client.line();
    const auto started = std::chrono::steady_clock::now();
    EXPECT_TRUE(login(client, "alice", "wrong").starts_with("-ERR [AUTH]"));
    EXPECT_TRUE(login(client, "alice", "wrong2").starts_with("-ERR [AUTH]"));
    const auto elapsed = std::chrono::steady_clock::now() - started;
    EXPECT_GE(elapsed, 20ms + 40ms); // the failures were answered after their delays
    const std::regex fail2ban(
        R"(auth failed: user=alice rip=127\.0\.0\.1 mech=USER reason=invalid_credentials)");
    int matched = 0;
    for (const auto& line : server.log().lines()) {
        matched += std::regex_search(line, fail2ban) ? 1 : 0;
        EXPECT_EQ(line.find("wrong"), std::string::npos) << "a password reached the log: " << line;
    }
    EXPECT_EQ(matched, 2);
}

// An attempt waiting out its address's penalty ends when its client closes the connection: its
// place among the address's attempts in flight is given back at once, not after the penalty (a
// sprayer's closed connections would otherwise push the address's next attempt, a real user's
// perhaps, past the login timeout).
TEST(Server, AnAttemptWaitingItsPenaltyEndsWhenItsClientLeaves)
{
    Fixture f;
    auto tuning = test_tuning();
    tuning.throttle.base_delay = 20'000ms;
    tuning.throttle.max_delay = 20'000ms;
    tuning.throttle.free_failures = 0;
    TestServer server(test_services(f.store, f.passdb), tuning);
    auto& throttle = server.server().throttle();
    throttle.record_failure("127.0.0.1", "mallory", auth::AuthThrottle::Clock::now());
    {
        TestClient waiting(server.port());
        waiting.line();
        waiting.send("USER alice\r\nPASS secret\r\n");
        ASSERT_TRUE(eventually([&] { return throttle.attempts_in_flight() == 1; }));
    }
    // Well within the 20 s penalty.
    EXPECT_TRUE(eventually([&] { return throttle.attempts_in_flight() == 0; }, 5'000ms));
    EXPECT_TRUE(eventually([&] { return server.server().live_connections() == 0; }, 5'000ms));
}

TEST(Server, ReloadReplacesTheUserDatabaseWithoutDroppingSessions)
{
    Fixture f;
    TestServer server(test_services(f.store, f.passdb));
    TestClient old_session(server.port());
    old_session.line();
    EXPECT_TRUE(login(old_session).starts_with("+OK Logged in"));

    auto passdb = std::make_shared<auth::MemoryPassDb>();
    passdb->add_user("alice", "new-password");
    server.server().replace_services(test_services(f.store, passdb), test_tuning());

    old_session.send("STAT\r\n");
    EXPECT_EQ(old_session.line(), "+OK 2 61\r\n");
    old_session.send("QUIT\r\n");
    old_session.line();
    TestClient fresh(server.port());
    fresh.line();
    EXPECT_TRUE(login(fresh, "alice", "secret").starts_with("-ERR"));
    EXPECT_TRUE(login(fresh, "alice", "new-password").starts_with("+OK Logged in"));
}

TEST(Server, ShutdownEndsSessionsWithoutCommittingTheirDeletions)
{
    Fixture f;
    auto tuning = test_tuning();
    tuning.shutdown_grace = 100ms;
    TestServer server(test_services(f.store, f.passdb), tuning);
    TestClient client(server.port());
    client.line();
    login(client);
    client.send("DELE 1\r\n");
    EXPECT_EQ(client.line(), "+OK message 1 deleted\r\n");
    server.stop(); // returns once the server's loops are done
    EXPECT_TRUE(client.eof());
    EXPECT_EQ(f.store->messages("alice").size(), 2U);
    EXPECT_EQ(server.log().count("reason=\"shutdown\""), 1U);
}

} // namespace
} // namespace pigeon::test
