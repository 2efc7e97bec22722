// A listening socket: accepts connections and hands each to one of the event loops (round
// robin), after the connection limits. A refused client gets "-ERR [SYS/TEMP]" and a close,
// after the refusal delay while the limits have room to hold it (net/connection_limits.hpp).
#pragma once

#include "net/connection.hpp"
#include "net/connection_limits.hpp"

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace pigeon::net {

// The current Services, replaced as a whole by a reload.
class ServicesSource {
public:
    explicit ServicesSource(std::shared_ptr<const Services> services) : m_services(std::move(services)) {}
    [[nodiscard]] std::shared_ptr<const Services> current() const
    {
        const std::lock_guard guard(m_mutex);
        return m_services;
    }
    void replace(std::shared_ptr<const Services> services)
    {
        const std::lock_guard guard(m_mutex);
        m_services = std::move(services);
    }

private:
    mutable std::mutex m_mutex;
    std::shared_ptr<const Services> m_services;
};

class Listener {
public:
    // Binds and listens (an error names the address); the acceptor lives on `accept_context`.
    static tl::expected<std::unique_ptr<Listener>, std::string>
    open(asio::io_context& accept_context, const asio::ip::tcp::endpoint& endpoint, TlsMode mode,
         std::function<asio::io_context&()> next_loop, ServicesSource& services, ConnectionLimits& limits,
         SharedState& shared);

    // Takes an already listening socket (systemd socket activation).
    static tl::expected<std::unique_ptr<Listener>, std::string>
    adopt(asio::io_context& accept_context, int fd, TlsMode mode,
          std::function<asio::io_context&()> next_loop, ServicesSource& services, ConnectionLimits& limits,
          SharedState& shared);

    // Accepts until close().
    asio::awaitable<void> run();
    void close();
    [[nodiscard]] asio::ip::tcp::endpoint local_endpoint() const;
    [[nodiscard]] TlsMode mode() const noexcept { return m_mode; }

private:
    Listener(asio::io_context& accept_context, TlsMode mode, std::function<asio::io_context&()> next_loop,
             ServicesSource& services, ConnectionLimits& limits, SharedState& shared);

    // Answers a refused connection ("-ERR [SYS/TEMP]" unless implicit TLS) and closes it.
    void refuse(asio::ip::tcp::socket& socket) const;
    // Answers the held refusals as they fall due; on close(), all of them at once.
    asio::awaitable<void> answer_held();

    asio::ip::tcp::acceptor m_acceptor;
    TlsMode m_mode;
    std::function<asio::io_context&()> m_next_loop;
    ServicesSource& m_services;
    ConnectionLimits& m_limits;
    SharedState& m_shared;

    // Refusals and accept errors come in floods (a connection storm, descriptors exhausted): one
    // log line per kind per second, with the count of those it stood for.
    struct LogBudget {
        std::chrono::steady_clock::time_point last{};
        std::uint64_t suppressed = 0;
        // The number of lines skipped since the last one when a line may be written now.
        std::optional<std::uint64_t> admit(std::chrono::steady_clock::time_point now);
    };
    LogBudget m_refusal_log;

    // Refused connections waiting for their answer, oldest first (the same delay for all, so
    // in order of their due time); answered by answer_held(), which runs while any wait.
    struct HeldRefusal {
        asio::ip::tcp::socket socket;
        std::chrono::steady_clock::time_point due;
        ConnectionLimits::Hold hold;
    };
    std::deque<HeldRefusal> m_held;
    asio::steady_timer m_held_timer;
    bool m_answering = false;
    LogBudget m_accept_error_log;
};

} // namespace pigeon::net
