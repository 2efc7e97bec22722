// The connection driver (shared/DESIGN.md §3, §6): one coroutine per client runs a
// protocol::ServerSession over a TCP socket, plain, upgraded by STLS, or TLS from the first byte
// (RFC 8314). It performs each step the session asks for: sends bytes, checks credentials and
// looks up secrets on the worker pool (after the address's brute-force penalty), opens the
// maildrop and commits deletions on the pool, streams messages through the dot-stuffer with a
// bounded buffer (a client that stops reading holds one buffer, not the message), runs the TLS
// handshake. It enforces the pre-login timeout and RFC 1939's autologout, and logs one line when a
// session starts, one per login and failure, and one when it ends.
//
// Rules:
// - Replies are gathered and sent together until a step needs the network or the pool, so
//   pipelined commands cost one write, not one per reply.
// - A session that ends without QUIT commits nothing: the maildrop is dropped unchanged.
// - Errors are values (asio::experimental::as_tuple); nothing here throws on peer input.
#pragma once

#include "auth/passdb.hpp"
#include "auth/throttle.hpp"
#include "net/connection_limits.hpp"
#include "net/registry.hpp"
#include "net/verify_gate.hpp"
#include "net/worker_pool.hpp"
#include "protocol/server_session.hpp"
#include "storage/maildrop.hpp"
#include "tls/tls_context.hpp"

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace spdlog {
class logger;
}

namespace pigeon::net {

struct LmtpSettings;
class LmtpDeliverer;

enum class TlsMode {
    none,     // plain, no STLS
    starttls, // plain, STLS offered (RFC 2595)
    implicit  // TLS from the first byte (RFC 8314, port 995)
};

enum class PlaintextAuth {
    never,    // only inside TLS
    loopback, // also on loopback connections (Dovecot's default treats them as secured)
    always
};

struct SessionSettings {
    protocol::ServerPolicy policy; // the connection-specific fields are filled in per connection
    PlaintextAuth plaintext_auth = PlaintextAuth::loopback;
    std::chrono::milliseconds login_timeout{60'000};  // from connect to login, TLS handshakes included
    std::chrono::milliseconds idle_timeout{600'000};  // RFC 1939 §3: autologout of at least 10 minutes
    std::string unknown_user_scheme = "SHA512-CRYPT"; // what an unknown user's password is hashed with
    std::string host_name = "localhost";              // in APOP timestamps
    bool apop = false;                                // offer APOP (needs passwords stored as {PLAIN})
    std::size_t output_buffer_octets = std::size_t{64} * 1024; // the bound on what is held per client
};

// What a connection works with. A reload makes a new Services; connections keep the one they
// started with.
struct Services {
    SessionSettings settings;
    std::shared_ptr<tls::ServerTlsContext> tls; // null: no TLS
    std::shared_ptr<auth::PassDb> passdb;
    std::shared_ptr<storage::MaildropStore> store;
    std::shared_ptr<const auth::BearerVerifier> bearer; // null: OAuth bearer tokens are refused
    // LMTP (net/lmtp_server.hpp): what its connections are started with; null without [lmtp].
    std::shared_ptr<const LmtpSettings> lmtp_settings;
    std::shared_ptr<LmtpDeliverer> lmtp;
};

// Counters for status and benchmarks.
struct ServerCounters {
    std::atomic<std::uint64_t> sessions{0};
    std::atomic<std::uint64_t> logins{0};
    std::atomic<std::uint64_t> auth_failures{0};
    std::atomic<std::uint64_t> retrieved_octets{0};
};

class Connection;

// The live POP3 connections, so that a shutdown can end them.
using ConnectionRegistry = Registry<Connection>;

// RFC 2449 §6.5 LOGIN-DELAY, enforced: a user who logged in less than `delay` ago is refused
// with [LOGIN-DELAY]. Memory: one entry per user seen within the delay (older ones are pruned).
class LoginDelayTracker {
public:
    using Clock = std::chrono::steady_clock;
    // True (and the login recorded) if the user may log in now.
    [[nodiscard]] bool admit(const std::string& user, std::chrono::seconds delay, Clock::time_point now);

private:
    std::mutex m_mutex;
    std::unordered_map<std::string, Clock::time_point> m_last_login;
    Clock::time_point m_last_prune{};
};

// What lives as long as the server, across reloads.
struct SharedState {
    LoginDelayTracker& login_delays;
    auth::AuthThrottle& throttle;
    VerifyGate& verify_gate;
    WorkerPool& pool;
    spdlog::logger& log;
    ConnectionRegistry& registry;
    ServerCounters& counters;
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(asio::ip::tcp::socket socket, TlsMode mode, std::shared_ptr<const Services> services,
               SharedState& shared, ConnectionLimits::Slot slot);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection();

    // The whole life of the connection; start it with co_spawn on the socket's executor.
    static asio::awaitable<void> run(std::shared_ptr<Connection> self);
    // Ends the connection soon (from any thread): a session in the middle of a step finishes it.
    void abort();

private:
    // The socket, plain or with TLS. TLS runs OpenSSL directly on the non-blocking socket, with
    // Asio only waiting for readiness: asio::ssl::stream would keep four buffers of a whole TLS
    // record (about 68 KiB) for the life of every connection, while an idle SSL object here
    // keeps none (SSL_MODE_RELEASE_BUFFERS on the context).
    class Transport {
    public:
        explicit Transport(asio::ip::tcp::socket socket) : m_socket(std::move(socket)) {}
        asio::awaitable<std::pair<std::error_code, std::size_t>> read_some(asio::mutable_buffer buffer);
        asio::awaitable<std::error_code> write(asio::const_buffer buffer);
        asio::awaitable<std::error_code> handshake(asio::ssl::context& context);
        [[nodiscard]] asio::ip::tcp::socket& socket() noexcept { return m_socket; }
        [[nodiscard]] SSL* ssl() noexcept { return m_ssl.get(); }
        void cancel() noexcept;
        void close() noexcept;
        // True when the client has closed its side (checked without reading).
        [[nodiscard]] bool peer_closed() noexcept;

    private:
        // Waits until the socket is ready for what OpenSSL asked (`ssl_error` is SSL_get_error's
        // answer): an error code for a failure, a cancelled wait or a closed connection.
        asio::awaitable<std::error_code> wait_for(int ssl_error, int result);

        asio::ip::tcp::socket m_socket;
        struct SslFree {
            void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
        };
        std::unique_ptr<SSL, SslFree> m_ssl;
        bool m_ssl_failed = false;
    };

    // One authentication attempt in the throttle's books, from begin_attempt() to end_attempt().
    class AttemptSlot {
    public:
        AttemptSlot(auth::AuthThrottle& throttle, std::string address);
        ~AttemptSlot();
        AttemptSlot(const AttemptSlot&) = delete;
        AttemptSlot& operator=(const AttemptSlot&) = delete;
        [[nodiscard]] std::chrono::milliseconds penalty() const noexcept { return m_penalty; }

    private:
        auth::AuthThrottle& m_throttle;
        std::string m_address;
        std::chrono::milliseconds m_penalty;
    };
    // A turn of this address at the password checks (VerifyGate), given back when destroyed.
    class GateTurn {
    public:
        GateTurn(VerifyGate& gate, std::string address) : m_gate(gate), m_address(std::move(address)) {}
        ~GateTurn() { m_gate.leave(m_address); }
        GateTurn(const GateTurn&) = delete;
        GateTurn& operator=(const GateTurn&) = delete;
        GateTurn(GateTurn&&) = delete;
        GateTurn& operator=(GateTurn&&) = delete;

    private:
        VerifyGate& m_gate;
        std::string m_address;
    };
    // Waits out the attempt's penalty; nothing if the attempt should not be verified after all
    // (the client left, the server is stopping, or the login deadline came first).
    asio::awaitable<std::optional<std::chrono::milliseconds>> wait_penalty(const AttemptSlot& slot);

    asio::awaitable<void> serve();
    asio::awaitable<bool> start_tls();
    asio::awaitable<bool> flush();
    asio::awaitable<bool> read_input(protocol::ServerSession& session);
    asio::awaitable<void> check_credentials(protocol::ServerSession& session,
                                            protocol::step::CheckCredentials& check);
    asio::awaitable<bool> stream_message(protocol::ServerSession& session,
                                         const protocol::step::StreamMessage& stream);
    asio::awaitable<void> look_up_secret(protocol::ServerSession& session,
                                         const protocol::step::LookupSecret& lookup);
    asio::awaitable<void> open_maildrop(protocol::ServerSession& session,
                                        const protocol::step::OpenMaildrop& open);
    asio::awaitable<void> commit(protocol::ServerSession& session, protocol::step::CommitUpdate& update);
    // Performs one step; false when the connection is over.
    asio::awaitable<bool> perform(protocol::ServerSession& session, protocol::Step& step);
    asio::awaitable<void> sleep(std::chrono::milliseconds delay);
    // The same, ended early if the client closes the connection meanwhile (noticed when the
    // socket first becomes readable; data sent meanwhile does not end it).
    asio::awaitable<void> sleep_unless_closed(std::chrono::milliseconds delay);
    // A mechanism that verified its own proof (SCRAM, CRAM-MD5) failed: log, count, delay.
    asio::awaitable<void> account_mechanism_failure();
    void arm(std::chrono::milliseconds timeout);
    [[nodiscard]] std::chrono::milliseconds login_time_left() const;
    void disarm();
    [[nodiscard]] protocol::ServerPolicy make_policy() const;
    void log_end();

    Transport m_transport;
    TlsMode m_mode;
    std::shared_ptr<const Services> m_services;
    SharedState& m_shared;
    ConnectionLimits::Slot m_slot;
    asio::steady_timer m_timer;
    std::uint64_t m_timer_generation = 0;
    bool m_timed_out = false;
    std::atomic<bool> m_aborted{false};

    std::string m_id;
    std::string m_remote;
    bool m_loopback = false;
    std::chrono::steady_clock::time_point m_started;
    std::string m_out;
    std::vector<char> m_file_buffer; // allocated on the first RETR or TOP
    std::shared_ptr<storage::Maildrop> m_maildrop;
    protocol::SessionState m_state = protocol::SessionState::authorization;

    // For the log.
    std::string m_user;
    std::string m_mechanism;
    std::string m_attempt_user;      // the user of the SASL exchange in progress (LookupSecret)
    std::string m_attempt_mechanism; // and its mechanism
    std::uint32_t m_failures_seen = 0;
    std::string m_tls_description;
    std::string m_end_reason = "disconnected";
    std::uint32_t m_retrieved = 0;
    std::uint64_t m_retrieved_octets = 0;
    std::uint32_t m_top = 0;
    std::uint32_t m_deleted = 0;
};

} // namespace pigeon::net
