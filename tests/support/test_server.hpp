// pigeond in-process for tests: a server::Server with the given Services on loopback ports
// chosen by the kernel, run on its own thread and stopped (and joined) by the destructor; a
// blocking loopback client with time bounds on every read (a bound is a failure, never a
// synchronisation); and a log sink whose lines tests can search.
#pragma once

#include "net/connection.hpp"
#include "server/server.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <openssl/ssl.h>
#include <string>
#include <thread>
#include <vector>

namespace pigeon::test {

// Collects log lines.
class LogCapture {
public:
    void add(std::string line);
    [[nodiscard]] std::vector<std::string> lines() const;
    [[nodiscard]] std::size_t count(std::string_view needle) const;

private:
    mutable std::mutex m_mutex;
    std::vector<std::string> m_lines;
};

// Tuning for tests: one event loop, two workers, no brute-force delays unless a test asks.
[[nodiscard]] server::Tuning test_tuning();

// A self-signed RSA-2048 certificate for "localhost" in a temporary directory (made once per
// process with OpenSSL).
struct TestCertificate {
    std::string certificate;
    std::string key;
};
[[nodiscard]] const TestCertificate& test_certificate();
[[nodiscard]] std::shared_ptr<tls::ServerTlsContext> test_tls_context();

class TestServer {
public:
    explicit TestServer(std::shared_ptr<const net::Services> services, server::Tuning tuning = test_tuning(),
                        const std::vector<net::TlsMode>& modes = {net::TlsMode::starttls},
                        std::vector<server::LmtpListenerSpec> lmtp = {});
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;
    ~TestServer();

    [[nodiscard]] std::uint16_t port(std::size_t listener = 0) const;
    // The TCP port of an LMTP listener (0 for a Unix socket).
    [[nodiscard]] std::uint16_t lmtp_port(std::size_t listener = 0) const
    {
        return m_lmtp_ports.at(listener);
    }
    [[nodiscard]] server::Server& server() noexcept { return *m_server; }
    [[nodiscard]] LogCapture& log() noexcept { return *m_log; }
    // Stops gracefully and waits for the server's thread (the destructor does it too).
    void stop();

private:
    std::shared_ptr<LogCapture> m_log;
    std::unique_ptr<server::Server> m_server;
    std::vector<std::uint16_t> m_ports;
    std::vector<std::uint16_t> m_lmtp_ports;
    std::thread m_thread;
};

class TestClient {
public:
    static constexpr std::chrono::milliseconds default_bound{10'000};

    explicit TestClient(std::uint16_t port, std::chrono::milliseconds bound = default_bound);
    // Over a Unix socket (LMTP).
    explicit TestClient(const std::string& unix_path, std::chrono::milliseconds bound = default_bound);
    TestClient(const TestClient&) = delete;
    TestClient& operator=(const TestClient&) = delete;
    ~TestClient();

    [[nodiscard]] bool connected() const noexcept { return m_fd >= 0; }
    bool send(std::string_view bytes);
    // One line with its CRLF; empty on EOF or when the bound passes.
    std::string line();
    // Reads until `terminator` has been read (included); what was read if EOF or the bound comes first.
    std::string until(std::string_view terminator);
    // At least `count` octets (fewer on EOF or the bound).
    std::string exactly(std::size_t count);
    // True if the server closes the connection within the bound; the bytes before go to `rest`.
    bool eof(std::string* rest = nullptr);
    // Runs a TLS handshake on the connection (after STLS's +OK, or at once for implicit TLS),
    // presenting `client_certificate` when given. `legacy_tls12` limits it to TLS 1.2 without the
    // extended master secret, a session with no RFC 9266 exporter.
    bool start_tls(const TestCertificate* client_certificate = nullptr, bool legacy_tls12 = false);
    // A handshake offering only these protocol versions and TLS 1.2 cipher suites (OpenSSL
    // names), with OpenSSL's security level 0 so that the client side offers even what it would
    // refuse itself: for tests of what the server accepts.
    bool start_tls_offering(int min_version, int max_version, const char* tls12_ciphers);
    // The DER certificate the server presented (empty before TLS).
    [[nodiscard]] std::string peer_certificate_der() const;
    [[nodiscard]] bool tls_active() const noexcept { return m_ssl != nullptr; }
    void close();
    [[nodiscard]] int fd() const noexcept { return m_fd; }

private:
    // Some bytes into m_buffer; false on EOF, error or the bound.
    bool fill();

    int m_fd = -1;
    std::chrono::milliseconds m_bound;
    std::string m_buffer;
    SSL_CTX* m_ctx = nullptr;
    SSL* m_ssl = nullptr;
};

// Waits for a condition the server reaches on its own (a session noticing its client left),
// checking every millisecond up to a bound: the bound is a failure, not a synchronisation.
template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds bound = std::chrono::seconds(10))
{
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (!predicate()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// The Services of a test: memory backends, plaintext allowed, no TLS unless given.
[[nodiscard]] std::shared_ptr<net::Services>
test_services(std::shared_ptr<storage::MaildropStore> store, std::shared_ptr<auth::PassDb> passdb,
              std::shared_ptr<tls::ServerTlsContext> tls = nullptr);

} // namespace pigeon::test
