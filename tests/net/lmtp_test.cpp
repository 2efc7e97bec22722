// pigeond's LMTP listeners over real sockets (TCP on loopback and a Unix socket), with a
// deliverer that records what it is given: replies, what reaches the store and when, time
// bounds, connection bounds, and a client that vanishes mid-message.
#include "test_server.hpp"

#include "auth/memory/memory_passdb.hpp"
#include "net/lmtp_server.hpp"
#include "storage/memory/memory_maildrop.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <mutex>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace pigeon::test {
namespace {

using protocol::LmtpReply;

struct Store {
    std::mutex mutex;
    std::map<std::string, std::vector<std::string>> messages; // by recipient
    std::atomic<int> begun{0};
    std::atomic<int> dropped{0}; // deliveries destroyed uncommitted
    std::atomic<int> writes{0};  // write() calls
    std::atomic<std::size_t> largest_write{0};
};

class FakeDelivery final : public net::LmtpDelivery {
public:
    FakeDelivery(Store& store, std::vector<std::string> recipients)
        : m_store(store), m_recipients(std::move(recipients))
    {
    }
    FakeDelivery(const FakeDelivery&) = delete;
    FakeDelivery& operator=(const FakeDelivery&) = delete;
    ~FakeDelivery() override
    {
        if (!m_committed) {
            ++m_store.dropped;
        }
    }
    void write(std::string_view bytes) override
    {
        ++m_store.writes;
        std::size_t largest = m_store.largest_write;
        while (bytes.size() > largest &&
               !m_store.largest_write.compare_exchange_weak(largest, bytes.size())) {
        }
        m_data.append(bytes);
    }
    std::vector<LmtpReply> commit() override
    {
        m_committed = true;
        std::vector<LmtpReply> replies;
        const std::lock_guard guard(m_store.mutex);
        for (const auto& rcpt : m_recipients) {
            m_store.messages[rcpt].push_back(m_data);
            replies.push_back({250, "2.0.0", fmt::format("<{}> Saved", rcpt)});
        }
        return replies;
    }

private:
    Store& m_store;
    std::vector<std::string> m_recipients;
    std::string m_data;
    bool m_committed = false;
};

class FakeDeliverer final : public net::LmtpDeliverer {
public:
    explicit FakeDeliverer(Store& store) : m_store(store) {}
    LmtpReply check_recipient(const std::string& address, std::uint64_t /*declared_size*/) override
    {
        if (address.starts_with("alice@") || address.starts_with("bob@")) {
            return {250, "2.1.5", "Ok"};
        }
        return {550, "5.1.1", fmt::format("<{}> User doesn't exist", address)};
    }
    std::unique_ptr<net::LmtpDelivery> begin(const std::string& /*sender*/,
                                             const std::vector<std::string>& recipients) override
    {
        ++m_store.begun;
        return std::make_unique<FakeDelivery>(m_store, recipients);
    }

private:
    Store& m_store;
};

class LmtpServer : public ::testing::Test {
protected:
    std::shared_ptr<net::Services> services(net::LmtpSettings settings = {})
    {
        auto result = test_services(std::make_shared<storage::MemoryMaildropStore>(),
                                    std::make_shared<auth::MemoryPassDb>());
        settings.policy.host_name = "mx.pigeon.test";
        result->lmtp_settings = std::make_shared<net::LmtpSettings>(settings);
        result->lmtp = std::make_shared<FakeDeliverer>(store);
        return result;
    }
    static std::vector<server::LmtpListenerSpec> tcp()
    {
        server::LmtpListenerSpec spec;
        spec.endpoint = *net::parse_lmtp_endpoint("127.0.0.1:0");
        return {spec};
    }
    std::vector<server::LmtpListenerSpec> unix_socket()
    {
        socket_path = std::filesystem::temp_directory_path() / fmt::format("pigeon-lmtp-{}.sock", ::getpid());
        server::LmtpListenerSpec spec;
        spec.endpoint = *net::parse_lmtp_endpoint("unix:" + socket_path.string());
        spec.owner.mode = 0620;
        return {spec};
    }
    // LHLO then a MAIL; the replies are read.
    static void start(TestClient& client)
    {
        ASSERT_TRUE(client.connected());
        EXPECT_EQ(client.line(), "220 mx.pigeon.test Pigeon LMTP ready\r\n");
        client.send("LHLO mta.pigeon.test\r\n");
        EXPECT_NE(client.until("250 CHUNKING\r\n").find("250-PIPELINING"), std::string::npos);
    }

    Store store;
    std::filesystem::path socket_path;
};

TEST_F(LmtpServer, DeliversOverTcpWithOneReplyPerRecipient)
{
    TestServer server(services(), test_tuning(), {net::TlsMode::none}, tcp());
    TestClient client(server.lmtp_port());
    start(client);
    client.send(
        "MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@pigeon.test>\r\nRCPT TO:<nobody@pigeon.test>\r\n"
        "RCPT TO:<bob@pigeon.test>\r\nDATA\r\n");
    EXPECT_EQ(client.line(), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(client.line(), "250 2.1.5 Ok\r\n");
    EXPECT_EQ(client.line(), "550 5.1.1 <nobody@pigeon.test> User doesn't exist\r\n");
    EXPECT_EQ(client.line(), "250 2.1.5 Ok\r\n");
    EXPECT_EQ(client.line(), "354 Start mail input; end with <CRLF>.<CRLF>\r\n");
    client.send("Subject: hello\r\n\r\n..dot\r\n.\r\n");
    EXPECT_EQ(client.line(), "250 2.0.0 <alice@pigeon.test> Saved\r\n");
    EXPECT_EQ(client.line(), "250 2.0.0 <bob@pigeon.test> Saved\r\n");
    client.send("QUIT\r\n");
    EXPECT_EQ(client.line(), "221 2.0.0 mx.pigeon.test closing connection\r\n");
    EXPECT_TRUE(client.eof());
    const std::lock_guard guard(store.mutex);
    ASSERT_EQ(store.messages["alice@pigeon.test"].size(), 1U);
    EXPECT_EQ(store.messages["alice@pigeon.test"][0], "Subject: hello\r\n\r\n.dot\r\n");
    EXPECT_EQ(store.messages["bob@pigeon.test"], store.messages["alice@pigeon.test"]);
    EXPECT_EQ(store.messages.count("nobody@pigeon.test"), 0U);
}

TEST_F(LmtpServer, UnixSocketWithItsModeRemovedAtStop)
{
    {
        TestServer server(services(), test_tuning(), {net::TlsMode::none}, unix_socket());
        struct stat st {};
        ASSERT_EQ(::stat(socket_path.c_str(), &st), 0);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 0777, 0620U);
        TestClient client(socket_path.string());
        start(client);
        client.send("MAIL FROM:<>\r\nRCPT TO:<alice@pigeon.test>\r\nBDAT 5 LAST\r\nhello");
        EXPECT_EQ(client.line(), "250 2.1.0 Ok\r\n");
        EXPECT_EQ(client.line(), "250 2.1.5 Ok\r\n");
        EXPECT_EQ(client.line(), "250 2.0.0 <alice@pigeon.test> Saved\r\n");
        server.stop();
    }
    EXPECT_FALSE(std::filesystem::exists(socket_path));
    const std::lock_guard guard(store.mutex);
    EXPECT_EQ(store.messages["alice@pigeon.test"], std::vector<std::string>{"hello"});
}

TEST_F(LmtpServer, AStaleSocketFileIsReplacedButNotAnyOtherFile)
{
    auto specs = unix_socket();
    std::ofstream(socket_path) << "not a socket";
    EXPECT_THROW(TestServer(services(), test_tuning(), {net::TlsMode::none}, specs), std::runtime_error);
    std::filesystem::remove(socket_path);
    ASSERT_EQ(::mkfifo(socket_path.c_str(), 0600), 0);
    EXPECT_THROW(TestServer(services(), test_tuning(), {net::TlsMode::none}, specs), std::runtime_error);
    std::filesystem::remove(socket_path);
    // A socket file left behind, as by a killed pigeond: bound, then its descriptor closed.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.string().size() + 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ::close(fd);
    ASSERT_TRUE(std::filesystem::is_socket(socket_path));
    TestServer server(services(), test_tuning(), {net::TlsMode::none}, specs);
    TestClient client(socket_path.string());
    start(client);
}

TEST_F(LmtpServer, AClientLostMidMessageDeliversNothing)
{
    TestServer server(services(), test_tuning(), {net::TlsMode::none}, tcp());
    {
        TestClient client(server.lmtp_port());
        start(client);
        client.send("MAIL FROM:<a@b>\r\nRCPT TO:<alice@pigeon.test>\r\nDATA\r\n");
        EXPECT_EQ(client.until("354 Start mail input; end with <CRLF>.<CRLF>\r\n").substr(0, 3), "250");
        client.send("Subject: cut\r\n\r\nhalf of a mess");
    }
    EXPECT_TRUE(eventually([&] { return store.dropped == 1; }));
    EXPECT_EQ(store.begun, 1);
    const std::lock_guard guard(store.mutex);
    EXPECT_TRUE(store.messages.empty());
}

TEST_F(LmtpServer, ALargeMessageIsWrittenInBoundedPieces)
{
    TestServer server(services(), test_tuning(), {net::TlsMode::none}, tcp());
    TestClient client(server.lmtp_port());
    start(client);
    client.send("MAIL FROM:<a@b>\r\nRCPT TO:<alice@pigeon.test>\r\nDATA\r\n");
    client.until("354 Start mail input; end with <CRLF>.<CRLF>\r\n");
    const std::string line(998, 'x');
    std::string body;
    for (int i = 0; i < 3000; ++i) { // about 3 MB
        body += line + "\r\n";
    }
    client.send(body);
    client.send(".\r\n");
    EXPECT_EQ(client.line(), "250 2.0.0 <alice@pigeon.test> Saved\r\n");
    EXPECT_GE(store.writes, 10);
    EXPECT_LE(store.largest_write, std::size_t{256} * 1024 + std::size_t{16} * 1024);
    const std::lock_guard guard(store.mutex);
    ASSERT_EQ(store.messages["alice@pigeon.test"].size(), 1U);
    EXPECT_EQ(store.messages["alice@pigeon.test"][0], body);
}

TEST_F(LmtpServer, ASilentClientIsDisconnectedAfterTheTimeout)
{
    net::LmtpSettings settings;
    settings.timeout = std::chrono::milliseconds(200);
    TestServer server(services(settings), test_tuning(), {net::TlsMode::none}, tcp());
    TestClient client(server.lmtp_port());
    EXPECT_EQ(client.line(), "220 mx.pigeon.test Pigeon LMTP ready\r\n");
    EXPECT_TRUE(client.eof());
    EXPECT_TRUE(eventually([&] { return server.log().count("timed out") == 1; }));
}

TEST_F(LmtpServer, AReloadWithoutLmtpRefusesWithoutCrashing)
{
    TestServer server(services(), test_tuning(), {net::TlsMode::none}, tcp());
    // SIGHUP with [lmtp] removed: the listener stays (it moves only with a restart) but has
    // nothing to deliver with.
    auto without = test_services(std::make_shared<storage::MemoryMaildropStore>(),
                                 std::make_shared<auth::MemoryPassDb>());
    server.server().replace_services(without, test_tuning());
    TestClient client(server.lmtp_port());
    EXPECT_EQ(client.line(), "421 4.3.0 LMTP is not configured here, try again later\r\n");
    EXPECT_TRUE(client.eof());
    EXPECT_TRUE(
        eventually([&] { return server.log().count("no [lmtp] in the running configuration") == 1; }));
}

TEST_F(LmtpServer, ConnectionsPastTheBoundAreRefused)
{
    net::LmtpSettings settings;
    settings.max_connections = 1;
    TestServer server(services(settings), test_tuning(), {net::TlsMode::none}, tcp());
    TestClient first(server.lmtp_port());
    EXPECT_EQ(first.line(), "220 mx.pigeon.test Pigeon LMTP ready\r\n");
    TestClient second(server.lmtp_port());
    EXPECT_EQ(second.line(), "421 4.3.2 Too many connections, try again later\r\n");
    EXPECT_TRUE(second.eof());
    first.send("QUIT\r\n");
    EXPECT_EQ(first.line(), "221 2.0.0 mx.pigeon.test closing connection\r\n");
}

} // namespace
} // namespace pigeon::test
