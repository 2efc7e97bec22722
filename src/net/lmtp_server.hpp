// pigeond's LMTP side (RFC 2033): listeners on Unix sockets and TCP, and one coroutine per MTA
// connection running a protocol::LmtpSession. Recipient checks, writes and commits are blocking
// (user database, fsync) and run on the worker pool through an LmtpDeliverer; the message is
// gathered in a bounded buffer (256 KiB) between pool calls, so a connection holds at most that
// much of a message in memory whatever its size.
//
// Rules:
// - 250 after DATA only once the deliverer's commit returned (the message is durable for that
//   recipient); a connection lost or timed out mid-message delivers nothing.
// - Every read and write has a time bound (`timeout`): a stalled MTA holds a slot, not a thread.
// - Connections are bounded (`max_connections`); one over it gets 421 4.3.2 and a close.
#pragma once

#include "net/registry.hpp"
#include "net/worker_pool.hpp"
#include "protocol/lmtp_session.hpp"

#include <asio/awaitable.hpp>
#include <asio/basic_socket_acceptor.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <unordered_map>
#include <vector>

namespace spdlog {
class logger;
}

namespace pigeon::net {

// One message being stored for several recipients. Every call blocks (worker pool only).
class LmtpDelivery {
public:
    LmtpDelivery() = default;
    LmtpDelivery(const LmtpDelivery&) = delete;
    LmtpDelivery& operator=(const LmtpDelivery&) = delete;
    virtual ~LmtpDelivery() = default; // an uncommitted delivery leaves nothing behind

    // Message bytes as received (CRLF line ends), in order.
    virtual void write(std::string_view bytes) = 0;
    // Makes the message durable for each recipient; one reply per recipient, in order.
    [[nodiscard]] virtual std::vector<protocol::LmtpReply> commit() = 0;
};

// What LMTP needs from the mail store and the user database. Thread-safe; calls block.
class LmtpDeliverer {
public:
    LmtpDeliverer() = default;
    LmtpDeliverer(const LmtpDeliverer&) = delete;
    LmtpDeliverer& operator=(const LmtpDeliverer&) = delete;
    virtual ~LmtpDeliverer() = default;

    // RCPT: 250 2.1.5, or 550 5.1.1 (no such user), 552 5.2.2 (over quota), 451 4.3.0...
    [[nodiscard]] virtual protocol::LmtpReply check_recipient(const std::string& address,
                                                              std::uint64_t declared_size) = 0;
    [[nodiscard]] virtual std::unique_ptr<LmtpDelivery> begin(const std::string& sender,
                                                              const std::vector<std::string>& recipients) = 0;
};

struct LmtpSettings {
    protocol::LmtpPolicy policy;
    std::chrono::milliseconds timeout{300'000}; // any one read or write (RFC 5321 §4.5.3.2: 5 minutes)
    std::uint32_t max_connections = 1000;
};

// What LMTP connections share; lives as long as the server.
struct LmtpShared {
    WorkerPool& pool;
    spdlog::logger& log;
};

class LmtpConnection;

// The live connections of a listener (shared with them, so either may go first).
using LmtpRegistry = Registry<LmtpConnection>;

// "unix:/run/pigeon/lmtp" or "127.0.0.1:24" / "[::1]:24".
// NOLINTNEXTLINE(bugprone-exception-escape): asio's generic endpoint is built only from valid endpoints here
struct LmtpEndpoint {
    std::string text;
    asio::generic::stream_protocol::endpoint endpoint;
    bool unix_socket = false;
    std::string path; // for a Unix socket
};
[[nodiscard]] tl::expected<LmtpEndpoint, std::string> parse_lmtp_endpoint(const std::string& text);

struct UnixSocketOwner {
    std::string user;  // chown when running as root (empty: keep)
    std::string group; // (empty: keep)
    unsigned mode = 0660;
};

class LmtpListener {
public:
    using SettingsSource = std::function<std::shared_ptr<const LmtpSettings>()>;
    using DelivererSource = std::function<std::shared_ptr<LmtpDeliverer>()>;

    // Binds (a stale Unix socket file is replaced) and listens.
    static tl::expected<std::unique_ptr<LmtpListener>, std::string>
    open(asio::io_context& accept_context, const LmtpEndpoint& endpoint, const UnixSocketOwner& owner,
         std::function<asio::io_context&()> next_loop, SettingsSource settings, DelivererSource deliverer,
         LmtpShared shared);
    ~LmtpListener();
    LmtpListener(const LmtpListener&) = delete;
    LmtpListener& operator=(const LmtpListener&) = delete;

    asio::awaitable<void> run();
    // Stops accepting (the Unix socket file is removed).
    void close();
    // Ends every live connection (a message in progress is not delivered).
    std::size_t abort_all();
    [[nodiscard]] std::size_t live() const;
    [[nodiscard]] const LmtpEndpoint& endpoint() const noexcept { return m_endpoint; }
    // The bound TCP port (for tests that bind port 0).
    [[nodiscard]] std::uint16_t port() const;

private:
    LmtpListener(asio::io_context& accept_context, LmtpEndpoint endpoint,
                 std::function<asio::io_context&()> next_loop, SettingsSource settings,
                 DelivererSource deliverer, LmtpShared shared);

    asio::basic_socket_acceptor<asio::generic::stream_protocol> m_acceptor;
    LmtpEndpoint m_endpoint;
    std::function<asio::io_context&()> m_next_loop;
    SettingsSource m_settings;
    DelivererSource m_deliverer;
    LmtpShared m_shared;
    std::shared_ptr<LmtpRegistry> m_registry = std::make_shared<LmtpRegistry>();
    std::atomic<bool> m_closed{false};
};

} // namespace pigeon::net
