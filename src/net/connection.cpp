#include "net/connection.hpp"

#include "core/base64.hpp"
#include "core/crash_point.hpp"
#include "core/error.hpp"
#include "protocol/dot_stuffer.hpp"
#include "sasl/scram_endpoint.hpp"
#include "storage/retention.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/ssl/error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <spdlog/logger.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

namespace pigeon::net {
namespace {

constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// One read takes at most this much; a command line is at most 255 octets (RFC 2449 §4), so a
// read holds a few hundred pipelined commands.
constexpr std::size_t input_chunk_octets = 2048;
// Message files are read in pieces of this size (the dot-stuffer's benchmark figure,
// docs/benchmarks.md, is taken with it).
constexpr std::size_t file_chunk_octets = std::size_t{64} * 1024;

std::string random_id()
{
    std::array<unsigned char, 9> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        static std::atomic<std::uint64_t> fallback{0};
        const auto n = fallback.fetch_add(1) ^ static_cast<std::uint64_t>(::getpid()) << 40U;
        return fmt::format("{:016x}", n);
    }
    std::string id =
        base64_encode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    for (char& c : id) {
        if (c == '+') {
            c = '-';
        } else if (c == '/') {
            c = '_';
        }
    }
    return id;
}

} // namespace

// --- LoginDelayTracker ---------------------------------------------------------------------

bool LoginDelayTracker::admit(const std::string& user, std::chrono::seconds delay, Clock::time_point now)
{
    const std::lock_guard guard(m_mutex);
    if (now - m_last_prune > delay) {
        std::erase_if(m_last_login, [&](const auto& entry) { return now - entry.second >= delay; });
        m_last_prune = now;
    }
    auto [entry, inserted] = m_last_login.try_emplace(user, now);
    if (!inserted) {
        if (now - entry->second < delay) {
            return false;
        }
        entry->second = now;
    }
    return true;
}

// --- Transport -----------------------------------------------------------------------------

asio::awaitable<std::error_code> Connection::Transport::wait_for(int ssl_error, int result)
{
    if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) {
        auto [ec] =
            co_await m_socket.async_wait(ssl_error == SSL_ERROR_WANT_READ ? asio::ip::tcp::socket::wait_read
                                                                          : asio::ip::tcp::socket::wait_write,
                                         nothrow);
        co_return ec;
    }
    if (ssl_error == SSL_ERROR_ZERO_RETURN) {
        co_return asio::error::eof; // close_notify
    }
    m_ssl_failed = true; // OpenSSL forbids SSL_shutdown() after these

    if (ssl_error == SSL_ERROR_SYSCALL) {
        const unsigned long queued = ERR_get_error();
        if (queued != 0) {
            co_return std::error_code(static_cast<int>(queued), asio::error::get_ssl_category());
        }
        // The peer closed TCP without close_notify (result 0), or the socket failed.
        co_return result == 0 || errno == 0 ? std::error_code(asio::ssl::error::stream_truncated)
                                            : std::error_code(errno, std::system_category());
    }
    const unsigned long queued = ERR_get_error();
    ERR_clear_error();
    co_return std::error_code(queued != 0 ? static_cast<int>(queued) : SSL_R_UNEXPECTED_RECORD,
                              asio::error::get_ssl_category());
}

asio::awaitable<std::pair<std::error_code, std::size_t>>
Connection::Transport::read_some(asio::mutable_buffer buffer)
{
    if (!m_ssl) {
        auto [ec, n] = co_await m_socket.async_read_some(buffer, nothrow);
        co_return std::pair<std::error_code, std::size_t>{ec, n};
    }
    for (;;) {
        ERR_clear_error();
        const int n = SSL_read(m_ssl.get(), buffer.data(), static_cast<int>(buffer.size()));
        if (n > 0) {
            co_return std::pair<std::error_code, std::size_t>{{}, static_cast<std::size_t>(n)};
        }
        if (const auto ec = co_await wait_for(SSL_get_error(m_ssl.get(), n), n)) {
            co_return std::pair<std::error_code, std::size_t>{ec, 0};
        }
    }
}

asio::awaitable<std::error_code> Connection::Transport::write(asio::const_buffer buffer)
{
    if (!m_ssl) {
        auto [ec, n] = co_await asio::async_write(m_socket, buffer, nothrow);
        co_return ec;
    }
    const auto* data = static_cast<const char*>(buffer.data());
    std::size_t left = buffer.size();
    while (left > 0) {
        ERR_clear_error();
        const int chunk = static_cast<int>(std::min<std::size_t>(left, 1U << 30U));
        const int n = SSL_write(m_ssl.get(), data, chunk);
        if (n > 0) {
            data += n;
            left -= static_cast<std::size_t>(n);
            continue;
        }
        if (const auto ec = co_await wait_for(SSL_get_error(m_ssl.get(), n), n)) {
            co_return ec;
        }
    }
    co_return std::error_code{};
}

asio::awaitable<std::error_code> Connection::Transport::handshake(asio::ssl::context& context)
{
    std::error_code ec;
    m_socket.non_blocking(true, ec);
    m_ssl.reset(SSL_new(context.native_handle()));
    if (ec || !m_ssl || SSL_set_fd(m_ssl.get(), m_socket.native_handle()) != 1) {
        co_return ec ? ec : std::error_code(asio::error::no_memory);
    }
    // Partial writes and a moving buffer let write() go on from where a short write stopped.
    SSL_set_mode(m_ssl.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_accept_state(m_ssl.get());
    for (;;) {
        ERR_clear_error();
        const int result = SSL_do_handshake(m_ssl.get());
        if (result == 1) {
            co_return std::error_code{};
        }
        if (const auto error = co_await wait_for(SSL_get_error(m_ssl.get(), result), result)) {
            co_return error;
        }
    }
}

void Connection::Transport::cancel() noexcept
{
    std::error_code ignored;
    socket().cancel(ignored);
}

bool Connection::Transport::peer_closed() noexcept
{
    // A FIN already received (the client gave up while its attempt waited) reads as 0 without
    // consuming anything, a reset (a client closing with our replies unread) as an error;
    // pending bytes or nothing yet both mean it may still be there.
    char byte = 0;
    const ssize_t peeked = ::recv(socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return peeked == 0 || (peeked < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void Connection::Transport::close() noexcept
{
    if (m_ssl && !m_ssl_failed && SSL_is_init_finished(m_ssl.get()) == 1) {
        ERR_clear_error();
        (void)SSL_shutdown(m_ssl.get()); // one try at close_notify, never waiting for the peer's
        ERR_clear_error();
    }
    std::error_code ignored;
    socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
}

// --- Connection ----------------------------------------------------------------------------

Connection::Connection(asio::ip::tcp::socket socket, TlsMode mode, std::shared_ptr<const Services> services,
                       SharedState& shared, ConnectionLimits::Slot slot)
    : m_transport(std::move(socket)), m_mode(mode), m_services(std::move(services)), m_shared(shared),
      m_slot(std::move(slot)), m_timer(m_transport.socket().get_executor()), m_id(random_id()),
      m_started(std::chrono::steady_clock::now())
{
    std::error_code ec;
    const auto endpoint = m_transport.socket().remote_endpoint(ec);
    if (!ec) {
        auto address = endpoint.address();
        if (address.is_v6() && address.to_v6().is_v4_mapped()) {
            address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
        }
        m_remote = address.to_string();
        m_loopback = address.is_loopback();
    }
    m_transport.socket().set_option(asio::ip::tcp::no_delay(true), ec);
}

Connection::~Connection()
{
    m_shared.registry.remove(this);
}

void Connection::abort()
{
    m_aborted = true;
    asio::post(m_timer.get_executor(), [self = shared_from_this()] {
        self->m_end_reason = "shutdown";
        self->m_transport.cancel();
        self->m_timer.cancel();
    });
}

void Connection::arm(std::chrono::milliseconds timeout)
{
    const auto generation = ++m_timer_generation;
    m_timer.expires_after(timeout);
    m_timer.async_wait([self = shared_from_this(), generation](std::error_code ec) {
        if (!ec && generation == self->m_timer_generation) {
            self->m_timed_out = true;
            self->m_transport.cancel();
        }
    });
}

void Connection::disarm()
{
    ++m_timer_generation;
    m_timer.cancel();
}

std::chrono::milliseconds Connection::login_time_left() const
{
    // One deadline for the whole of AUTHORIZATION, counted from the connect: a client that sends
    // a byte now and then, or a command every few seconds, does not hold a slot for longer.
    const auto deadline = m_started + m_services->settings.login_timeout;
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return std::max(left, std::chrono::milliseconds(1));
}

asio::awaitable<void> Connection::sleep(std::chrono::milliseconds delay)
{
    if (delay.count() <= 0) {
        co_return;
    }
    ++m_timer_generation;
    m_timer.expires_after(delay);
    co_await m_timer.async_wait(nothrow);
}

asio::awaitable<void> Connection::sleep_unless_closed(std::chrono::milliseconds delay)
{
    if (delay.count() <= 0) {
        co_return;
    }
    const auto generation = ++m_timer_generation;
    m_timer.expires_after(delay);
    // Nothing else waits on the socket while an attempt waits. The first readiness is checked
    // once: a FIN ends the wait; pipelined bytes leave it to the timer (no polling).
    m_transport.socket().async_wait(
        asio::ip::tcp::socket::wait_read, [self = shared_from_this(), generation](std::error_code ec) {
            if (!ec && generation == self->m_timer_generation && self->m_transport.peer_closed()) {
                self->m_timer.cancel();
            }
        });
    co_await m_timer.async_wait(nothrow);
    ++m_timer_generation; // a readiness reported from now on is not this wait's
    std::error_code ignored;
    m_transport.socket().cancel(ignored);
}

asio::awaitable<void> Connection::run(std::shared_ptr<Connection> self)
{
    self->m_shared.registry.add(self);
    self->m_shared.counters.sessions.fetch_add(1, std::memory_order_relaxed);
    co_await self->serve();
    self->disarm();
    self->m_maildrop.reset(); // without QUIT nothing was committed; the lock goes with it
    self->m_transport.close();
    self->log_end();
}

protocol::ServerPolicy Connection::make_policy() const
{
    const auto& settings = m_services->settings;
    protocol::ServerPolicy policy = settings.policy;
    policy.tls_available = m_mode == TlsMode::starttls && m_services->tls != nullptr;
    policy.tls_active = false;
    policy.plaintext_auth_without_tls = settings.plaintext_auth == PlaintextAuth::always ||
                                        (settings.plaintext_auth == PlaintextAuth::loopback && m_loopback);
    if (!settings.apop) {
        return policy;
    }
    static std::atomic<std::uint64_t> counter{0};
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    policy.apop_timestamp =
        fmt::format("<{}.{}.{}@{}>", ::getpid(), counter.fetch_add(1, std::memory_order_relaxed),
                    std::chrono::duration_cast<std::chrono::microseconds>(now).count(), settings.host_name);
    return policy;
}

asio::awaitable<bool> Connection::start_tls()
{
    if (!m_services->tls) {
        co_return false;
    }
    arm(login_time_left());
    const auto ec = co_await m_transport.handshake(m_services->tls->context());
    disarm();
    if (ec) {
        m_end_reason = m_timed_out ? "tls handshake timeout" : "tls handshake failed: " + ec.message();
        co_return false;
    }
    m_tls_description = tls::describe(m_transport.ssl());
    co_return true;
}

asio::awaitable<bool> Connection::flush()
{
    if (m_out.empty()) {
        co_return !m_aborted;
    }
    if (m_aborted) {
        co_return false;
    }
    arm(m_services->settings.idle_timeout);
    const auto ec = co_await m_transport.write(asio::buffer(m_out));
    disarm();
    m_out.clear();
    if (ec) {
        m_end_reason = m_timed_out ? "output timeout" : m_aborted ? "shutdown" : "write failed";
        co_return false;
    }
    co_return true;
}

asio::awaitable<bool> Connection::read_input(protocol::ServerSession& session)
{
    // Between commands nothing is held but this buffer: what a message needed is released.
    if (m_out.capacity() > input_chunk_octets) {
        std::string().swap(m_out);
    }
    if (m_aborted) {
        co_return false;
    }
    std::array<char, input_chunk_octets> buffer{};
    const bool logging_in = m_state == protocol::SessionState::authorization;
    arm(logging_in ? login_time_left() : m_services->settings.idle_timeout);
    auto [ec, n] = co_await m_transport.read_some(asio::buffer(buffer));
    disarm();
    if (ec) {
        if (m_timed_out) {
            m_end_reason = logging_in ? "login timeout" : "autologout";
        } else if (m_aborted) {
            m_end_reason = "shutdown";
        } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
            m_end_reason = "disconnected";
        } else {
            m_end_reason = "read failed: " + ec.message();
        }
        co_return false;
    }
    session.receive(std::string_view(buffer.data(), n));
    co_return true;
}

Connection::AttemptSlot::AttemptSlot(auth::AuthThrottle& throttle, std::string address)
    : m_throttle(throttle), m_address(std::move(address)),
      m_penalty(throttle.begin_attempt(m_address, auth::AuthThrottle::Clock::now()))
{
}

Connection::AttemptSlot::~AttemptSlot()
{
    m_throttle.end_attempt(m_address);
}

asio::awaitable<std::optional<std::chrono::milliseconds>> Connection::wait_penalty(const AttemptSlot& slot)
{
    const auto left = login_time_left();
    // A client that gives up while its attempt waits (a sprayer's connection closed at once)
    // ends it now: its place among the address's attempts in flight is not held for the
    // penalty, which would make the address's next attempt wait for it.
    co_await sleep_unless_closed(std::min(slot.penalty(), left));
    if (m_aborted || slot.penalty() >= left || m_transport.peer_closed()) {
        co_return std::nullopt;
    }
    co_return slot.penalty();
}

asio::awaitable<void> Connection::check_credentials(protocol::ServerSession& session,
                                                    protocol::step::CheckCredentials& check)
{
    auto& throttle = m_shared.throttle;
    const std::string user(sasl::credentials_user(check.credentials));
    const std::string mechanism = check.mechanism;
    // An address that has been failing waits before its attempt is even looked at: a burst of
    // guesses costs timers, not hashing (Dovecot's auth penalty).
    const AttemptSlot slot(throttle, m_remote);
    const auto penalty = co_await wait_penalty(slot);
    if (!penalty) {
        // Gone, shutting down, or out of login time while waiting: nothing is hashed.
        session.on_credentials_checked({make_error_code(errc::auth_temporary_failure), {}});
        co_return;
    }
    // One address's checks take at most their share of the pool; its others wait their turn here.
    const auto deadline = std::chrono::steady_clock::now() + login_time_left();
    const bool admitted = co_await m_shared.verify_gate.enter(m_remote, deadline);
    std::optional<GateTurn> turn;
    if (admitted) {
        turn.emplace(m_shared.verify_gate, m_remote);
    }
    if (!admitted || m_aborted || m_transport.peer_closed()) {
        session.on_credentials_checked({make_error_code(errc::auth_temporary_failure), {}});
        co_return;
    }
    // Failures of this address while it waited its turn count now: it waits the rest of the
    // address's delay (holding the turn, so the address's other attempts queue behind it).
    auto waited = *penalty;
    const auto delay_now = throttle.current_delay(m_remote, auth::AuthThrottle::Clock::now());
    if (delay_now > waited) {
        const auto extra = delay_now - waited;
        waited = delay_now;
        if (extra >= login_time_left()) {
            session.on_credentials_checked({make_error_code(errc::auth_temporary_failure), {}});
            co_return;
        }
        co_await sleep(extra);
        if (m_aborted || m_transport.peer_closed()) {
            session.on_credentials_checked({make_error_code(errc::auth_temporary_failure), {}});
            co_return;
        }
    }
    if (!throttle.try_begin()) {
        m_shared.log.warn("auth busy: user={} rip={} mech={} session={}", auth::log_escape(user), m_remote,
                          auth::log_escape(mechanism), m_id);
        session.on_credentials_checked({make_error_code(errc::auth_temporary_failure), {}});
        co_return;
    }
    auto verify = [services = m_services,
                   credentials = std::move(check.credentials)]() -> Result<std::string> {
        return auth::verify_credentials(*services->passdb, credentials,
                                        services->settings.unknown_user_scheme, services->bearer.get());
    };
    auto verdict = co_await m_shared.pool.run(std::move(verify));
    throttle.end();
    turn.reset(); // the next attempt of this address may go to the pool
    if (verdict) {
        throttle.record_success(*verdict);
        m_user = *verdict;
        m_mechanism = mechanism;
        m_shared.counters.logins.fetch_add(1, std::memory_order_relaxed);
        m_shared.log.info("login: user={} rip={} mech={} tls={} session={}", auth::log_escape(m_user),
                          m_remote, m_mechanism, m_tls_description.empty() ? "no" : m_tls_description, m_id);
        session.on_credentials_checked({{}, *verdict});
        co_return;
    }
    const auto error = verdict.error();
    if (error == errc::auth_failed) {
        const auto now = auth::AuthThrottle::Clock::now();
        const auto delay = throttle.failure_delay(m_remote, user, now) - waited;
        throttle.record_failure(m_remote, user, now);
        m_shared.counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
        m_shared.log.warn("{} session={}",
                          auth::format_auth_failure(user, m_remote, mechanism, "invalid_credentials"), m_id);
        co_await sleep(delay);
    } else {
        m_shared.log.error("{} session={}",
                           auth::format_auth_failure(user, m_remote, mechanism, "temporary_failure"), m_id);
    }
    session.on_credentials_checked({error, {}});
    m_failures_seen = session.failed_authentications();
}

asio::awaitable<void> Connection::account_mechanism_failure()
{
    auto& throttle = m_shared.throttle;
    const auto now = auth::AuthThrottle::Clock::now();
    const auto delay = throttle.failure_delay(m_remote, m_attempt_user, now);
    throttle.record_failure(m_remote, m_attempt_user, now);
    m_shared.counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
    m_shared.log.warn("{} session={}",
                      auth::format_auth_failure(m_attempt_user, m_remote,
                                                m_attempt_mechanism.empty() ? "SASL" : m_attempt_mechanism,
                                                "invalid_credentials"),
                      m_id);
    co_await sleep(delay);
}

asio::awaitable<bool> Connection::stream_message(protocol::ServerSession& session,
                                                 const protocol::step::StreamMessage& stream)
{
    auto reader = m_maildrop->open_message(stream.message);
    if (!reader) {
        m_shared.log.error("message {} of user={} cannot be opened: {} session={}", stream.message.value,
                           auth::log_escape(m_user), reader.error().message(), m_id);
        session.on_message_failed(reader.error());
        co_return true;
    }
    m_file_buffer.resize(file_chunk_octets);
    const std::size_t limit = m_services->settings.output_buffer_octets;
    m_out += stream.ok_line;
    std::uint64_t octets = 0;
    protocol::DotStuffer stuffer(stream.top_body_lines);
    for (;;) {
        auto count = (*reader)->read(std::span<char>(m_file_buffer));
        if (!count) {
            // The +OK is on its way: the error cannot be told in-band (RFC 1939 has no way), so
            // the connection ends and the client sees a body without its terminating line.
            m_shared.log.error("message {} of user={} failed while sent: {} session={}", stream.message.value,
                               auth::log_escape(m_user), count.error().message(), m_id);
            m_end_reason = "message read failed";
            co_return false;
        }
        if (*count == 0 || stuffer.complete()) {
            break;
        }
        const std::size_t start = m_out.size();
        stuffer.feed(std::string_view(m_file_buffer.data(), *count), m_out);
        octets += m_out.size() - start;
        if (m_out.size() >= limit && !co_await flush()) {
            co_return false;
        }
    }
    stuffer.finish(m_out);
    if (stream.top_body_lines) {
        ++m_top;
    } else {
        ++m_retrieved;
        m_retrieved_octets += octets;
        m_shared.counters.retrieved_octets.fetch_add(octets, std::memory_order_relaxed);
    }
    session.on_message_sent();
    co_return true;
}

asio::awaitable<void> Connection::look_up_secret(protocol::ServerSession& session,
                                                 const protocol::step::LookupSecret& lookup)
{
    m_attempt_user = lookup.user;
    m_attempt_mechanism = lookup.mechanism;
    const AttemptSlot slot(m_shared.throttle, m_remote);
    if (!co_await wait_penalty(slot)) {
        session.on_secret_looked_up(make_error_code(errc::auth_temporary_failure), std::nullopt);
        co_return;
    }
    auto look_up = [services = m_services, user = lookup.user] {
        return auth::lookup_secret(*services->passdb, user);
    };
    auto secret = co_await m_shared.pool.run(std::move(look_up));
    session.on_secret_looked_up(secret ? std::error_code{} : secret.error(),
                                secret ? std::move(*secret) : std::nullopt);
}

asio::awaitable<void> Connection::open_maildrop(protocol::ServerSession& session,
                                                const protocol::step::OpenMaildrop& open)
{
    std::string user = open.user;
    if (open.certificate_only) {
        // EXTERNAL: the TLS client certificate proved the name, but the user database decides
        // who may log in. An unknown or "nologin" user is refused as a wrong password would be.
        auto look_up = [services = m_services, name = open.user] {
            return auth::allowed_login(*services->passdb, name);
        };
        auto allowed = co_await m_shared.pool.run(std::move(look_up));
        if (!allowed) {
            const bool refused = allowed.error() == errc::auth_failed;
            m_shared.log.warn(
                "{} session={}",
                auth::format_auth_failure(open.user, m_remote, "EXTERNAL",
                                          refused ? "unknown_or_disabled_user" : "temporary_failure"),
                m_id);
            if (refused) {
                m_shared.throttle.record_failure(m_remote, open.user, auth::AuthThrottle::Clock::now());
                m_shared.counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
            }
            session.on_maildrop_opened(allowed.error(), nullptr);
            co_return;
        }
        user = std::move(*allowed);
    }
    if (m_user.empty()) {
        // SASL mechanisms that check their own proof (SCRAM, CRAM-MD5, EXTERNAL) log here.
        m_user = user;
        m_mechanism = open.certificate_only ? "EXTERNAL" : m_attempt_mechanism;
        m_shared.throttle.record_success(m_user);
        m_shared.counters.logins.fetch_add(1, std::memory_order_relaxed);
        m_shared.log.info("login: user={} rip={} mech={} tls={} session={}", auth::log_escape(m_user),
                          m_remote, m_mechanism, m_tls_description.empty() ? "no" : m_tls_description, m_id);
    }
    if (const auto& delay = m_services->settings.policy.login_delay_seconds;
        delay && !m_shared.login_delays.admit(open.user, std::chrono::seconds(*delay),
                                              std::chrono::steady_clock::now())) {
        m_shared.log.info("login refused: user={} rip={} reason=login_delay session={}",
                          auth::log_escape(open.user), m_remote, m_id);
        session.on_maildrop_opened(make_error_code(errc::login_delay), nullptr);
        co_return;
    }
    auto open_it = [services = m_services, user] { return services->store->open(user); };
    auto maildrop = co_await m_shared.pool.run(std::move(open_it));
    if (maildrop) {
        m_maildrop = std::shared_ptr<storage::Maildrop>(std::move(*maildrop));
        session.on_maildrop_opened({}, m_maildrop);
        co_return;
    }
    if (maildrop.error() != errc::maildrop_in_use) {
        m_shared.log.error("maildrop of user={} cannot be opened: {} session={}", auth::log_escape(open.user),
                           maildrop.error().message(), m_id);
    }
    session.on_maildrop_opened(maildrop.error(), nullptr);
}

asio::awaitable<void> Connection::commit(protocol::ServerSession& session,
                                         protocol::step::CommitUpdate& update)
{
    const auto deletions = update.deletions.size();
    // EXPIRE as advertised: "EXPIRE 0" deletes what was retrieved, "EXPIRE n" what was first
    // retrieved n days ago or more (storage/retention.hpp); without it, only the DELEs.
    const auto expire_days = m_services->settings.policy.expire_days;
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    auto commit_them = [maildrop = m_maildrop, marked = std::move(update.deletions),
                        retrieved = std::move(update.retrieved), expire_days, now] {
        return storage::commit_with_retention(*maildrop, marked, retrieved, now, expire_days);
    };
    auto committed = co_await m_shared.pool.run(std::move(commit_them));
    crash_point("pop3-quit", "committed"); // deleted, the client not yet told
    if (committed) {
        m_deleted += static_cast<std::uint32_t>(deletions);
        if (*committed > 0) {
            m_shared.log.info("expired: user={} messages={} expire_days={} session={}",
                              auth::log_escape(m_user), *committed, *expire_days, m_id);
        }
    } else if (committed.error() == errc::maildrop_in_use) {
        // The designed end of a session whose client reconnected and logged in again (the new
        // session took the maildrop over): its deletions are the new session's to make.
        m_shared.log.info("commit for user={} refused: the maildrop was taken over by a newer session "
                          "session={}",
                          auth::log_escape(m_user), m_id);
    } else {
        m_shared.log.error("commit for user={} failed: {} session={}", auth::log_escape(m_user),
                           committed.error().message(), m_id);
    }
    session.on_update_committed(committed ? std::error_code{} : committed.error());
}

asio::awaitable<bool> Connection::perform(protocol::ServerSession& session, protocol::Step& step)
{
    if (auto* send = std::get_if<protocol::step::SendBytes>(&step)) {
        m_out += send->bytes;
        co_return m_out.size() < m_services->settings.output_buffer_octets || co_await flush();
    }
    if (auto* stream = std::get_if<protocol::step::StreamMessage>(&step)) {
        co_return co_await stream_message(session, *stream);
    }
    if (std::holds_alternative<protocol::step::NeedInput>(step)) {
        co_return co_await flush() && co_await read_input(session);
    }
    if (std::holds_alternative<protocol::step::Close>(step)) {
        if (m_end_reason == "disconnected") {
            m_end_reason = session.quit_received() ? "quit" : "closed by server";
        }
        co_await flush();
        co_return false;
    }
    if (std::holds_alternative<protocol::step::Wait>(step)) {
        m_end_reason = "internal error: session waiting";
        co_return false; // every step is answered before the loop asks again
    }
    // The steps below wait for the pool or a handshake: what is gathered goes out first.
    if (!co_await flush()) {
        co_return false;
    }
    if (auto* check = std::get_if<protocol::step::CheckCredentials>(&step)) {
        co_await check_credentials(session, *check);
    } else if (auto* lookup = std::get_if<protocol::step::LookupSecret>(&step)) {
        co_await look_up_secret(session, *lookup);
    } else if (auto* open = std::get_if<protocol::step::OpenMaildrop>(&step)) {
        co_await open_maildrop(session, *open);
    } else if (auto* update = std::get_if<protocol::step::CommitUpdate>(&step)) {
        co_await commit(session, *update);
    } else if (std::holds_alternative<protocol::step::StartTls>(step)) {
        if (!co_await start_tls()) {
            co_return false;
        }
        session.on_tls_started(tls::tls_exporter(m_transport.ssl()), tls::client_identity(m_transport.ssl()),
                               sasl::tls_server_end_point(tls::certificate_der(m_transport.ssl(), true)));
    }
    co_return true;
}

asio::awaitable<void> Connection::serve()
{
    m_shared.log.info("connect: rip={} tls={} session={}", m_remote,
                      m_mode == TlsMode::implicit   ? "implicit"
                      : m_mode == TlsMode::starttls ? "stls"
                                                    : "no",
                      m_id);
    auto policy = make_policy();
    if (m_mode == TlsMode::implicit) {
        if (!co_await start_tls()) {
            co_return;
        }
        policy.tls_active = true;
        policy.tls_exporter = tls::tls_exporter(m_transport.ssl());
        policy.tls_client_identity = tls::client_identity(m_transport.ssl());
        policy.tls_server_end_point =
            sasl::tls_server_end_point(tls::certificate_der(m_transport.ssl(), true));
    }
    protocol::ServerSession session(std::move(policy));
    for (;;) {
        m_state = session.state();
        auto step = session.next_step();
        if (session.failed_authentications() > m_failures_seen) {
            m_failures_seen = session.failed_authentications();
            co_await account_mechanism_failure();
        }
        if (!co_await perform(session, step)) {
            co_return;
        }
    }
}

void Connection::log_end()
{
    const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_started).count();
    m_shared.log.info("disconnect: user={} rip={} mech={} tls={} retr={}/{} top={} dele={} duration={:.3f}s "
                      "reason=\"{}\" session={}",
                      auth::log_escape(m_user), m_remote, m_mechanism.empty() ? "-" : m_mechanism,
                      m_tls_description.empty() ? "no" : m_tls_description, m_retrieved, m_retrieved_octets,
                      m_top, m_deleted, elapsed, m_end_reason, m_id);
}

} // namespace pigeon::net
