#include "net/listener.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/logger.h>

#include <utility>

#include <exception>

namespace pigeon::net {
namespace {

constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);

std::string remote_address(const asio::ip::tcp::socket& socket)
{
    std::error_code ec;
    auto address = socket.remote_endpoint(ec).address();
    if (ec) {
        return "unknown";
    }
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    return address.to_string();
}

} // namespace

Listener::Listener(asio::io_context& accept_context, TlsMode mode,
                   std::function<asio::io_context&()> next_loop, ServicesSource& services,
                   ConnectionLimits& limits, SharedState& shared)
    : m_acceptor(accept_context), m_mode(mode), m_next_loop(std::move(next_loop)), m_services(services),
      m_limits(limits), m_shared(shared), m_held_timer(accept_context)
{
}

tl::expected<std::unique_ptr<Listener>, std::string>
Listener::open(asio::io_context& accept_context, const asio::ip::tcp::endpoint& endpoint, TlsMode mode,
               std::function<asio::io_context&()> next_loop, ServicesSource& services,
               ConnectionLimits& limits, SharedState& shared)
{
    std::unique_ptr<Listener> listener(
        new Listener(accept_context, mode, std::move(next_loop), services, limits, shared));
    std::error_code ec;
    auto& acceptor = listener->m_acceptor;
    const auto where = [&endpoint] {
        return endpoint.address().is_v6()
                   ? fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port())
                   : fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
    };
    if (acceptor.open(endpoint.protocol(), ec); ec) {
        return tl::unexpected(fmt::format("cannot listen on {}: {}", where(), ec.message()));
    }
    acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
    if (endpoint.address().is_v6()) {
        acceptor.set_option(asio::ip::v6_only(true), ec);
    }
    if (acceptor.bind(endpoint, ec); ec) {
        return tl::unexpected(fmt::format("cannot listen on {}: {}", where(), ec.message()));
    }
    if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
        return tl::unexpected(fmt::format("cannot listen on {}: {}", where(), ec.message()));
    }
    return listener;
}

tl::expected<std::unique_ptr<Listener>, std::string>
Listener::adopt(asio::io_context& accept_context, int fd, TlsMode mode,
                std::function<asio::io_context&()> next_loop, ServicesSource& services,
                ConnectionLimits& limits, SharedState& shared)
{
    std::unique_ptr<Listener> listener(
        new Listener(accept_context, mode, std::move(next_loop), services, limits, shared));
    std::error_code ec;
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        return tl::unexpected(fmt::format("socket {} from systemd is not a socket", fd));
    }
    const auto protocol = address.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4();
    if (listener->m_acceptor.assign(protocol, fd, ec); ec) {
        return tl::unexpected(fmt::format("cannot use socket {} from systemd: {}", fd, ec.message()));
    }
    return listener;
}

asio::ip::tcp::endpoint Listener::local_endpoint() const
{
    std::error_code ec;
    return m_acceptor.local_endpoint(ec);
}

void Listener::close()
{
    std::error_code ignored;
    m_acceptor.close(ignored);
    m_held_timer.cancel();
}

void Listener::refuse(asio::ip::tcp::socket& socket) const
{
    // A best-effort answer: the line is short and the socket's buffer empty, so it goes out
    // without waiting (or not at all, if the client left).
    std::error_code ignored;
    socket.non_blocking(true, ignored);
    static constexpr std::string_view refusal = "-ERR [SYS/TEMP] Too many connections, try again later.\r\n";
    if (m_mode != TlsMode::implicit) {
        socket.write_some(asio::buffer(refusal), ignored);
    }
    socket.close(ignored);
}

asio::awaitable<void> Listener::answer_held()
{
    while (!m_held.empty()) {
        if (m_acceptor.is_open()) {
            m_held_timer.expires_at(m_held.front().due);
            co_await m_held_timer.async_wait(nothrow);
        }
        const bool closing = !m_acceptor.is_open();
        const auto now = std::chrono::steady_clock::now();
        while (!m_held.empty() && (closing || m_held.front().due <= now)) {
            refuse(m_held.front().socket);
            m_held.pop_front();
        }
    }
    m_answering = false;
}

std::optional<std::uint64_t> Listener::LogBudget::admit(std::chrono::steady_clock::time_point now)
{
    if (last != std::chrono::steady_clock::time_point{} && now - last < std::chrono::seconds(1)) {
        ++suppressed;
        return std::nullopt;
    }
    last = now;
    return std::exchange(suppressed, 0);
}

asio::awaitable<void> Listener::run()
{
    for (;;) {
        auto& loop = m_next_loop();
        asio::ip::tcp::socket socket(loop);
        auto [ec] = co_await m_acceptor.async_accept(socket, nothrow);
        if (ec) {
            if (ec == asio::error::operation_aborted || !m_acceptor.is_open()) {
                co_return;
            }
            // Out of file descriptors or memory: wait a little instead of spinning.
            if (const auto skipped = m_accept_error_log.admit(std::chrono::steady_clock::now())) {
                m_shared.log.error("accept failed: {} ({} more since the last line)", ec.message(), *skipped);
            }
            asio::steady_timer pause(m_acceptor.get_executor(), std::chrono::milliseconds(100));
            co_await pause.async_wait(nothrow);
            continue;
        }
        const std::string address = remote_address(socket);
        ConnectionLimits::Refusal why{};
        auto slot = m_limits.try_acquire(address, why);
        if (!slot) {
            if (const auto skipped = m_refusal_log.admit(std::chrono::steady_clock::now())) {
                m_shared.log.warn(
                    "connection refused: rip={} reason={} (and {} more refused since the last line)", address,
                    why == ConnectionLimits::Refusal::total ? "max_connections" : "max_connections_per_ip",
                    *skipped);
            }
            // Held for the refusal delay if there is room: a client that reconnects as soon as
            // it is refused then waits that long between its attempts.
            if (auto hold = m_limits.try_hold(); hold && m_acceptor.is_open()) {
                m_held.push_back({std::move(socket),
                                  std::chrono::steady_clock::now() + m_limits.refusal_delay(),
                                  std::move(*hold)});
                if (!std::exchange(m_answering, true)) {
                    asio::co_spawn(m_acceptor.get_executor(), answer_held(), asio::detached);
                }
            } else {
                refuse(socket);
            }
            continue;
        }
        auto connection = std::make_shared<Connection>(std::move(socket), m_mode, m_services.current(),
                                                       m_shared, std::move(*slot));
        auto& log = m_shared.log;
        asio::co_spawn(loop, Connection::run(std::move(connection)), [&log](const std::exception_ptr& error) {
            if (error) {
                try {
                    std::rethrow_exception(error);
                } catch (const std::exception& e) {
                    log.error("connection ended by an exception: {}", e.what());
                }
            }
        });
    }
}

} // namespace pigeon::net
