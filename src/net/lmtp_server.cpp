#include "net/lmtp_server.hpp"

#include "core/crash_point.hpp"

#include <arpa/inet.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <variant>

namespace pigeon::net {
namespace {

constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);
using Socket = asio::generic::stream_protocol::socket;

// The message is written to the deliveries in pieces of at most this.
constexpr std::size_t message_buffer_octets = std::size_t{256} * 1024;

std::string replies_text(const std::vector<protocol::LmtpReply>& replies)
{
    std::string text;
    for (const auto& reply : replies) {
        text += fmt::format("{}{} {}", text.empty() ? "" : ", ", reply.code, reply.enhanced);
    }
    return text;
}

// The peer's IP address, for the log.
std::string peer_text(const Socket& socket)
{
    std::error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    if (ec) {
        return "unknown";
    }
    std::array<char, INET6_ADDRSTRLEN> text{};
    const auto* address = reinterpret_cast<const sockaddr*>(remote.data());
    const void* raw =
        address->sa_family == AF_INET6
            ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr)
            : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(address)->sin_addr);
    if (::inet_ntop(address->sa_family, raw, text.data(), text.size()) == nullptr) {
        return "unknown";
    }
    return text.data();
}

} // namespace

// --- one connection -------------------------------------------------------------------------

class LmtpConnection : public std::enable_shared_from_this<LmtpConnection> {
public:
    LmtpConnection(Socket socket, std::shared_ptr<const LmtpSettings> settings,
                   std::shared_ptr<LmtpDeliverer> deliverer, LmtpShared shared,
                   std::shared_ptr<LmtpRegistry> registry, std::string peer)
        : m_socket(std::move(socket)), m_settings(std::move(settings)), m_deliverer(std::move(deliverer)),
          m_shared(shared), m_registry(std::move(registry)), m_timer(m_socket.get_executor()),
          m_peer(std::move(peer))
    {
    }
    LmtpConnection(const LmtpConnection&) = delete;
    LmtpConnection& operator=(const LmtpConnection&) = delete;
    ~LmtpConnection() { m_registry->remove(this); }

    static asio::awaitable<void> run(std::shared_ptr<LmtpConnection> self) { co_await self->serve(); }

    void abort()
    {
        m_aborted = true; // no new input is read; a commit in progress still sends its replies
        asio::post(m_socket.get_executor(), [self = shared_from_this()] {
            self->m_end_reason = "shutdown";
            std::error_code ec;
            self->m_socket.cancel(ec);
            self->m_timer.cancel();
        });
    }

private:
    asio::awaitable<void> serve();
    asio::awaitable<bool> send(std::string bytes);
    // Writes what is buffered to the delivery, on the pool.
    asio::awaitable<void> flush_message();

    void arm()
    {
        const auto generation = ++m_timer_generation;
        m_timer.expires_after(m_settings->timeout);
        m_timer.async_wait([self = shared_from_this(), generation](std::error_code ec) {
            if (!ec && generation == self->m_timer_generation) {
                self->m_end_reason = "timed out";
                std::error_code ignored;
                self->m_socket.cancel(ignored);
            }
        });
    }
    void disarm()
    {
        ++m_timer_generation;
        m_timer.cancel();
    }

    Socket m_socket;
    std::shared_ptr<const LmtpSettings> m_settings;
    std::shared_ptr<LmtpDeliverer> m_deliverer;
    LmtpShared m_shared;
    std::shared_ptr<LmtpRegistry> m_registry;
    asio::steady_timer m_timer;
    std::uint64_t m_timer_generation = 0;
    std::string m_peer;
    std::string m_end_reason = "disconnected";
    std::atomic<bool> m_aborted{false};
    std::unique_ptr<LmtpDelivery> m_delivery;
    std::string m_buffer;
    std::uint64_t m_delivered = 0;
};

asio::awaitable<bool> LmtpConnection::send(std::string bytes)
{
    arm();
    auto [ec, n] = co_await asio::async_write(m_socket, asio::buffer(bytes), nothrow);
    disarm();
    static_cast<void>(n);
    co_return !ec;
}

asio::awaitable<void> LmtpConnection::flush_message()
{
    if (m_buffer.empty() || !m_delivery) {
        m_buffer.clear();
        co_return;
    }
    auto write_it = [delivery = m_delivery.get(), bytes = std::move(m_buffer)]() mutable {
        delivery->write(bytes);
        return true;
    };
    m_buffer = std::string();
    (void)co_await m_shared.pool.run(std::move(write_it));
}

asio::awaitable<void> LmtpConnection::serve()
{
    protocol::LmtpSession session(m_settings->policy);
    m_shared.log.info("lmtp: connect from {}", m_peer);
    std::array<char, std::size_t{16} * 1024> input{};
    bool running = true;
    while (running) {
        auto step = session.next_step();
        if (auto* out = std::get_if<protocol::lmtp_step::SendBytes>(&step)) {
            if (!co_await send(std::move(out->bytes))) {
                break;
            }
        } else if (auto* rcpt = std::get_if<protocol::lmtp_step::CheckRecipient>(&step)) {
            auto check = [deliverer = m_deliverer, address = rcpt->address, size = rcpt->declared_size] {
                return deliverer->check_recipient(address, size);
            };
            auto reply = co_await m_shared.pool.run(std::move(check));
            if (!reply.positive()) {
                m_shared.log.info("lmtp: {}: rcpt <{}> refused: {} {} {}", m_peer, rcpt->address, reply.code,
                                  reply.enhanced, reply.text);
            }
            session.on_recipient_checked(reply);
        } else if (auto* begin = std::get_if<protocol::lmtp_step::BeginMessage>(&step)) {
            auto open_it = [deliverer = m_deliverer, sender = begin->sender, recipients = begin->recipients] {
                return deliverer->begin(sender, recipients);
            };
            m_delivery = co_await m_shared.pool.run(std::move(open_it));
            m_buffer.clear();
        } else if (auto* data = std::get_if<protocol::lmtp_step::MessageData>(&step)) {
            m_buffer += data->bytes;
            if (m_buffer.size() >= message_buffer_octets) {
                co_await flush_message();
            }
        } else if (std::holds_alternative<protocol::lmtp_step::AbortMessage>(step)) {
            m_buffer.clear();
            auto drop = [delivery = std::move(m_delivery)]() mutable {
                delivery.reset(); // removes what was written: file system work, on the pool
                return true;
            };
            (void)co_await m_shared.pool.run(std::move(drop));
        } else if (auto* end = std::get_if<protocol::lmtp_step::EndMessage>(&step)) {
            co_await flush_message();
            auto commit_it = [delivery = std::move(m_delivery)]() mutable {
                return delivery ? delivery->commit() : std::vector<protocol::LmtpReply>{};
            };
            auto replies = co_await m_shared.pool.run(std::move(commit_it));
            crash_point("lmtp", "committed"); // stored, the MTA not yet told
            ++m_delivered;
            m_shared.log.info("lmtp: {}: message of {} octets: {}", m_peer, end->octets,
                              replies_text(replies));
            session.on_message_delivered(std::move(replies));
        } else if (std::holds_alternative<protocol::lmtp_step::NeedInput>(step)) {
            if (m_aborted) {
                break; // stopping: what was committed has had its replies
            }
            arm();
            auto [ec, n] = co_await m_socket.async_read_some(asio::buffer(input), nothrow);
            disarm();
            if (ec) {
                break;
            }
            session.receive(std::string_view(input.data(), n));
        } else {
            running = false; // Close (Wait cannot happen: every step above is answered at once)
        }
    }
    if (m_delivery) {
        // Lost mid-message: nothing is delivered (the MTA did not get its 250 and will retry).
        auto drop = [delivery = std::move(m_delivery)]() mutable {
            delivery.reset();
            return true;
        };
        (void)co_await m_shared.pool.run(std::move(drop));
    }
    std::error_code ec;
    m_socket.shutdown(asio::socket_base::shutdown_both, ec);
    m_socket.close(ec);
    m_shared.log.info("lmtp: {}: {} ({} messages)", m_peer, session.quit_received() ? "quit" : m_end_reason,
                      m_delivered);
}

// --- endpoints and the listener ---------------------------------------------------------------

tl::expected<LmtpEndpoint, std::string> parse_lmtp_endpoint(const std::string& text)
{
    LmtpEndpoint result;
    result.text = text;
    if (text.starts_with("unix:")) {
        result.path = text.substr(5);
        if (result.path.empty() || result.path.front() != '/') {
            return tl::unexpected(fmt::format("\"{}\": a Unix socket needs an absolute path", text));
        }
        if (result.path.size() >= sizeof(sockaddr_un::sun_path)) {
            return tl::unexpected(fmt::format("\"{}\": the path is too long for a Unix socket", text));
        }
        result.unix_socket = true;
        result.endpoint = asio::local::stream_protocol::endpoint(result.path);
        return result;
    }
    std::string host;
    std::string_view port_text;
    if (text.starts_with('[')) {
        const auto close = text.find("]:");
        if (close == std::string::npos) {
            return tl::unexpected(fmt::format("\"{}\": expected [ADDRESS]:PORT", text));
        }
        host = text.substr(1, close - 1);
        port_text = std::string_view(text).substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) {
            return tl::unexpected(
                fmt::format("\"{}\": expected unix:PATH, ADDRESS:PORT or [ADDRESS]:PORT", text));
        }
        host = text.substr(0, colon);
        port_text = std::string_view(text).substr(colon + 1);
    }
    std::uint16_t port = 0;
    const auto parsed = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (parsed.ec != std::errc{} || parsed.ptr != port_text.data() + port_text.size()) {
        return tl::unexpected(fmt::format("\"{}\": bad port", text));
    }
    std::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) {
        return tl::unexpected(fmt::format(R"("{}": "{}" is not an IP address)", text, host));
    }
    result.endpoint = asio::ip::tcp::endpoint(address, port);
    return result;
}

LmtpListener::LmtpListener(asio::io_context& accept_context, LmtpEndpoint endpoint,
                           std::function<asio::io_context&()> next_loop, SettingsSource settings,
                           DelivererSource deliverer, LmtpShared shared)
    : m_acceptor(accept_context), m_endpoint(std::move(endpoint)), m_next_loop(std::move(next_loop)),
      m_settings(std::move(settings)), m_deliverer(std::move(deliverer)), m_shared(shared)
{
}

LmtpListener::~LmtpListener()
{
    close();
}

tl::expected<std::unique_ptr<LmtpListener>, std::string>
LmtpListener::open(asio::io_context& accept_context, const LmtpEndpoint& endpoint,
                   const UnixSocketOwner& owner, std::function<asio::io_context&()> next_loop,
                   SettingsSource settings, DelivererSource deliverer, LmtpShared shared)
{
    std::unique_ptr<LmtpListener> listener(new LmtpListener(
        accept_context, endpoint, std::move(next_loop), std::move(settings), std::move(deliverer), shared));
    auto& acceptor = listener->m_acceptor;
    std::error_code ec;
    if (endpoint.unix_socket) {
        // A socket file left by a previous run (not any other kind of file) is replaced.
        struct stat st {};
        if (::lstat(endpoint.path.c_str(), &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                return tl::unexpected(fmt::format("lmtp {}: exists and is not a socket", endpoint.text));
            }
            ::unlink(endpoint.path.c_str());
        }
        std::filesystem::create_directories(std::filesystem::path(endpoint.path).parent_path(), ec);
        ec.clear();
    }
    acceptor.open(endpoint.endpoint.protocol(), ec);
    if (!ec && !endpoint.unix_socket) {
        acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
        acceptor.bind(endpoint.endpoint, ec);
    }
    if (!ec) {
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        return tl::unexpected(fmt::format("lmtp {}: {}", endpoint.text, ec.message()));
    }
    if (endpoint.unix_socket) {
        if (::chmod(endpoint.path.c_str(), owner.mode) != 0) {
            return tl::unexpected(fmt::format("lmtp {}: chmod: {}", endpoint.text, std::strerror(errno)));
        }
        auto uid = static_cast<uid_t>(-1);
        auto gid = static_cast<gid_t>(-1);
        if (!owner.user.empty()) {
            const passwd* entry = ::getpwnam(owner.user.c_str());
            if (entry == nullptr) {
                return tl::unexpected(fmt::format("lmtp {}: no user \"{}\"", endpoint.text, owner.user));
            }
            uid = entry->pw_uid;
        }
        if (!owner.group.empty()) {
            const group* entry = ::getgrnam(owner.group.c_str());
            if (entry == nullptr) {
                return tl::unexpected(fmt::format("lmtp {}: no group \"{}\"", endpoint.text, owner.group));
            }
            gid = entry->gr_gid;
        }
        if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
            ::chown(endpoint.path.c_str(), uid, gid) != 0) {
            return tl::unexpected(fmt::format("lmtp {}: chown: {}", endpoint.text, std::strerror(errno)));
        }
    }
    return listener;
}

asio::awaitable<void> LmtpListener::run()
{
    while (!m_closed) {
        auto& loop = m_next_loop();
        auto [ec, accepted] = co_await m_acceptor.async_accept(loop, nothrow);
        if (ec) {
            if (m_closed || ec == asio::error::operation_aborted) {
                co_return;
            }
            m_shared.log.warn("lmtp {}: accept: {}", m_endpoint.text, ec.message());
            continue;
        }
        Socket socket(std::move(accepted));
        auto settings = m_settings();
        auto deliverer = m_deliverer();
        if (!settings || !deliverer) {
            // A reload took [lmtp] away while its listeners run (they move only with a restart).
            m_shared.log.error(
                "lmtp {}: no [lmtp] in the running configuration: refusing (restart pigeond to "
                "close the listener)",
                m_endpoint.text);
            const std::string unavailable = "421 4.3.0 LMTP is not configured here, try again later\r\n";
            std::error_code ignored;
            asio::write(socket, asio::buffer(unavailable), ignored);
            socket.close(ignored);
            continue;
        }
        std::string peer = m_endpoint.unix_socket ? std::string("local") : peer_text(socket);
        if (m_registry->size() >= settings->max_connections) {
            m_shared.log.warn("lmtp {}: {} connections: refusing one more", m_endpoint.text,
                              settings->max_connections);
            const std::string busy = "421 4.3.2 Too many connections, try again later\r\n";
            std::error_code ignored;
            asio::write(socket, asio::buffer(busy), ignored);
            socket.close(ignored);
            continue;
        }
        auto connection = std::make_shared<LmtpConnection>(std::move(socket), settings, std::move(deliverer),
                                                           m_shared, m_registry, std::move(peer));
        m_registry->add(connection);
        asio::co_spawn(loop, LmtpConnection::run(std::move(connection)), asio::detached);
    }
}

void LmtpListener::close()
{
    if (m_closed.exchange(true)) {
        return;
    }
    std::error_code ignored;
    m_acceptor.close(ignored);
    if (m_endpoint.unix_socket) {
        ::unlink(m_endpoint.path.c_str());
    }
}

std::size_t LmtpListener::abort_all()
{
    return m_registry->abort_all();
}

std::size_t LmtpListener::live() const
{
    return m_registry->size();
}

std::uint16_t LmtpListener::port() const
{
    if (m_endpoint.unix_socket) {
        return 0;
    }
    std::error_code ec;
    const auto local = m_acceptor.local_endpoint(ec);
    if (ec) {
        return 0;
    }
    const auto* address = reinterpret_cast<const sockaddr*>(local.data());
    return ntohs(address->sa_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(address)->sin6_port
                                                : reinterpret_cast<const sockaddr_in*>(address)->sin_port);
}

} // namespace pigeon::net
