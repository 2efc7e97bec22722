#include "server/server.hpp"

#include "server/lmtp_deliverer.hpp"

#include "auth/jwt_validator.hpp"
#include "auth/passwd_file/passwd_file_passdb.hpp"
#include "auth/password_scheme.hpp"
#include "auth/sqlite/sqlite_passdb.hpp"
#include "server/backends.hpp"
#include "storage/maildir/maildir_store.hpp"
#include "storage/maildrop_lock.hpp"
#include "storage/mbox/mbox_store.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

namespace pigeon::server {
namespace {

constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);

constexpr std::array<std::string_view, 10> known_mechanisms = {"PLAIN",
                                                               "LOGIN",
                                                               "CRAM-MD5",
                                                               "SCRAM-SHA-1",
                                                               "SCRAM-SHA-1-PLUS",
                                                               "SCRAM-SHA-256",
                                                               "SCRAM-SHA-256-PLUS",
                                                               "EXTERNAL",
                                                               "OAUTHBEARER",
                                                               "XOAUTH2"};

std::uint32_t loop_count(std::uint32_t configured)
{
    if (configured != 0) {
        return configured;
    }
    return std::max(1U, std::thread::hardware_concurrency());
}

std::size_t worker_count(std::uint32_t configured)
{
    if (configured != 0) {
        return configured;
    }
    return std::max(2U, std::thread::hardware_concurrency());
}

// One address's password checks at once: by default half the workers, so a burst of guesses
// from one address leaves the other half to everyone else's logins.
std::uint32_t verifying_per_ip(const Tuning& tuning)
{
    if (tuning.max_verifying_per_ip != 0) {
        return tuning.max_verifying_per_ip;
    }
    return static_cast<std::uint32_t>(std::max<std::size_t>(1, worker_count(tuning.worker_threads) / 2));
}

std::string machine_name()
{
    std::array<char, 256> name{};
    if (::gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') {
        return "localhost";
    }
    return name.data();
}

} // namespace

tl::expected<std::shared_ptr<const net::Services>, std::string>
build_services(const config::Config& config, spdlog::logger& log, BuildMode mode)
{
    auto services = std::make_shared<net::Services>();
    auto& settings = services->settings;
    auto& policy = settings.policy;
    policy.greeting = config.pop3.greeting;
    policy.implementation = config.pop3.implementation;
    policy.utf8 = config.pop3.utf8;
    policy.last_command = config.pop3.enable_last;
    policy.max_bad_commands = config.limits.max_bad_commands;
    policy.max_auth_failures = config.auth.max_failures_per_connection;
    policy.login_delay_seconds = config.pop3.login_delay;
    if (config.pop3.expire == "never") {
        policy.expire_never = true;
    } else if (!config.pop3.expire.empty()) {
        policy.expire_days = static_cast<std::uint32_t>(std::stoul(config.pop3.expire));
    }
    for (const auto& mechanism : config.auth.mechanisms) {
        if (std::find(known_mechanisms.begin(), known_mechanisms.end(), mechanism) ==
            known_mechanisms.end()) {
            return tl::unexpected(fmt::format("{}: auth.mechanisms: unknown mechanism \"{}\"",
                                              config.file.string(), mechanism));
        }
        if ((mechanism == "OAUTHBEARER" || mechanism == "XOAUTH2") && !config.auth.oauth) {
            return tl::unexpected(
                fmt::format("{}: auth.mechanisms: {} needs [auth.oauth] (issuer, audience and "
                            "the key_file that validates tokens)",
                            config.file.string(), mechanism));
        }
    }
    if (const auto& oauth = config.auth.oauth) {
        auth::JwtConfig jwt;
        jwt.issuer = oauth->issuer;
        jwt.audience = oauth->audience;
        jwt.user_claim = oauth->user_claim;
        jwt.leeway = oauth->leeway;
        jwt.algorithms = oauth->algorithms;
        std::string why;
        auto validator = auth::JwtValidator::load(jwt, oauth->key_file, &why);
        if (!validator) {
            return tl::unexpected(fmt::format("{}: auth.oauth: {}", config.file.string(),
                                              why.empty() ? validator.error().message() : why));
        }
        services->bearer = std::make_shared<const auth::JwtValidator>(std::move(*validator));
    }
    policy.sasl_mechanisms = config.auth.mechanisms;
    settings.apop = config.auth.apop;
    settings.plaintext_auth = config.auth.plaintext == "never"    ? net::PlaintextAuth::never
                              : config.auth.plaintext == "always" ? net::PlaintextAuth::always
                                                                  : net::PlaintextAuth::loopback;
    settings.login_timeout = config.limits.login_timeout;
    settings.idle_timeout = config.limits.idle_timeout;
    settings.unknown_user_scheme = config.auth.unknown_user_scheme;
    settings.host_name = config.server.host_name.empty() ? machine_name() : config.server.host_name;
    settings.output_buffer_octets = config.limits.output_buffer;

    if (!config.tls.certificates.empty()) {
        tls::TlsOptions options;
        for (const auto& cert : config.tls.certificates) {
            options.certificates.push_back({cert.certificate, cert.key});
        }
        options.min_version = config.tls.min_version;
        options.ciphers = config.tls.ciphers;
        options.client_ca_file = config.tls.client_ca;
        auto context = tls::ServerTlsContext::load(options);
        if (!context) {
            return tl::unexpected(fmt::format("{}: tls: {}", config.file.string(), context.error()));
        }
        services->tls = std::move(*context);
    }

    PassDbOpening opening;
    opening.create_sqlite = mode != BuildMode::check;
    opening.passwd_file_required = mode != BuildMode::run;
    opening.error = [&log](std::string_view message) { log.error("{}", message); };
    opening.passwd_file_log = [&log](std::string_view message) { log.warn("passwd-file: {}", message); };
    auto passdb = open_passdb(config, opening);
    if (!passdb) {
        return tl::unexpected(passdb.error());
    }
    services->passdb = std::move(*passdb);
    auto stores = open_stores(config);
    services->store = stores.maildrops;
    if (!config.lmtp.listen.empty()) {
        auto lmtp = std::make_shared<net::LmtpSettings>();
        lmtp->policy.host_name = settings.host_name;
        lmtp->policy.max_message_size = config.delivery.max_message_size != 0
                                            ? config.delivery.max_message_size
                                            : lmtp->policy.max_message_size;
        lmtp->policy.max_recipients = config.lmtp.max_recipients;
        lmtp->policy.max_bad_commands = config.limits.max_bad_commands;
        lmtp->timeout = config.lmtp.timeout;
        lmtp->max_connections = config.lmtp.max_connections;
        services->lmtp_settings = std::move(lmtp);
        auto options = delivery_options(config);
        options.log = [&log](std::string_view line) { log.warn("delivery: {}", line); };
        services->lmtp = std::make_shared<LocalLmtpDeliverer>(services->passdb, std::move(stores.delivery),
                                                              std::move(stores.usage), std::move(options));
    }
    return services;
}

tl::expected<std::vector<LmtpListenerSpec>, std::string> lmtp_listeners_from(const config::Config& config)
{
    std::vector<LmtpListenerSpec> specs;
    for (const auto& text : config.lmtp.listen) {
        auto endpoint = net::parse_lmtp_endpoint(text);
        if (!endpoint) {
            return tl::unexpected(fmt::format("{}: lmtp.listen: {}", config.file.string(), endpoint.error()));
        }
        LmtpListenerSpec spec;
        spec.endpoint = std::move(*endpoint);
        spec.owner.user = config.lmtp.socket_user;
        spec.owner.group = config.lmtp.socket_group;
        spec.owner.mode = config.lmtp.socket_mode;
        specs.push_back(std::move(spec));
    }
    return specs;
}

Tuning tuning_from(const config::Config& config)
{
    Tuning tuning;
    tuning.threads = config.server.threads;
    tuning.worker_threads = config.server.worker_threads;
    tuning.delivery_threads = config.lmtp.delivery_threads;
    tuning.max_connections = config.limits.max_connections;
    tuning.max_connections_per_ip = config.limits.max_connections_per_ip;
    tuning.shutdown_grace = config.limits.shutdown_grace;
    tuning.refusal_delay = config.limits.refusal_delay;
    tuning.throttle.base_delay = config.auth.failure_delay;
    tuning.throttle.max_delay = config.auth.max_failure_delay;
    tuning.throttle.forget_after = config.auth.forget_failures_after;
    tuning.throttle.max_concurrent = config.auth.max_concurrent;
    tuning.max_verifying_per_ip = config.auth.max_concurrent_per_ip;
    return tuning;
}

tl::expected<std::vector<ListenerSpec>, std::string> listeners_from(const config::Config& config)
{
    std::vector<ListenerSpec> specs;
    for (const auto& listener : config.listeners) {
        std::error_code ec;
        const auto address = asio::ip::make_address(listener.address, ec);
        if (ec) {
            return tl::unexpected(fmt::format("{}: listen.address: \"{}\" is not an IP address",
                                              config.file.string(), listener.address));
        }
        ListenerSpec spec;
        spec.endpoint = asio::ip::tcp::endpoint(address, listener.port);
        spec.mode = listener.tls == config::ListenerTls::none       ? net::TlsMode::none
                    : listener.tls == config::ListenerTls::implicit ? net::TlsMode::implicit
                                                                    : net::TlsMode::starttls;
        specs.push_back(spec);
    }
    return specs;
}

tl::expected<std::shared_ptr<spdlog::logger>, std::string> make_logger(const config::Config& config,
                                                                       BuildMode mode)
{
    spdlog::sink_ptr sink;
    const auto& destination = config.log.destination;
    if (destination == "stderr") {
        sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z pigeond[%P]: %l: %v");
    } else if (destination == "syslog") {
        sink = std::make_shared<spdlog::sinks::syslog_sink_mt>("pigeond", LOG_PID, LOG_MAIL, false);
        sink->set_pattern("%l: %v");
    } else if (mode == BuildMode::check) {
        const auto directory = std::filesystem::path(destination).parent_path();
        std::error_code ec;
        if (!std::filesystem::is_directory(directory.empty() ? "." : directory, ec)) {
            return tl::unexpected(fmt::format("{}: log.destination: directory {} does not exist",
                                              config.file.string(), directory.string()));
        }
        sink = std::make_shared<spdlog::sinks::null_sink_mt>();
    } else {
        try {
            sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(destination);
        } catch (const std::exception& e) {
            return tl::unexpected(fmt::format("{}: log.destination: {}", config.file.string(), e.what()));
        }
        sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z pigeond[%P]: %l: %v");
    }
    auto logger = std::make_shared<spdlog::logger>("pigeond", std::move(sink));
    logger->set_level(spdlog::level::from_str(config.log.level));
    logger->flush_on(spdlog::level::trace);
    return logger;
}

Server::Server(std::shared_ptr<const net::Services> services, std::vector<ListenerSpec> listeners,
               Tuning tuning, std::shared_ptr<spdlog::logger> log)
    : m_tuning(tuning), m_log(std::move(log)), m_specs(std::move(listeners)),
      m_pool(worker_count(tuning.worker_threads)), m_throttle(tuning.throttle),
      m_verify_gate(verifying_per_ip(tuning)),
      m_limits(tuning.max_connections, tuning.max_connections_per_ip),
      m_services(std::move(services)), m_shared{m_login_delays, m_throttle, m_verify_gate, m_pool,
                                                *m_log,         m_registry, m_counters}
{
    // OpenSSL writes TLS records with write(2): a client that has gone away must be an EPIPE
    // error on its own connection, not a SIGPIPE that ends the whole server.
    (void)std::signal(SIGPIPE, SIG_IGN);
    m_limits.set_refusal_delay(tuning.refusal_delay, tuning.max_held_refusals);
    const auto loops = loop_count(tuning.threads);
    for (std::uint32_t i = 0; i < loops; ++i) {
        m_loops.push_back(std::make_unique<asio::io_context>(1));
    }
}

Server::~Server()
{
    for (auto& listener : m_listeners) {
        listener->close();
    }
    for (auto& listener : m_lmtp_listeners) {
        listener->close();
    }
    m_pool.join();
    if (m_delivery_pool) {
        m_delivery_pool->join();
    }
}

asio::io_context& Server::next_loop()
{
    return *m_loops[m_next.fetch_add(1, std::memory_order_relaxed) % m_loops.size()];
}

tl::expected<void, std::string> Server::bind()
{
    auto next = [this]() -> asio::io_context& { return next_loop(); };
    // systemd socket activation: LISTEN_PID is ours and LISTEN_FDS sockets start at fd 3.
    const auto number = [](const char* text) {
        long value = -1;
        if (text != nullptr) {
            const std::string_view view(text);
            const auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), value);
            if (ec != std::errc() || end != view.data() + view.size()) {
                value = -1;
            }
        }
        return value;
    };
    const long listen_pid = number(std::getenv("LISTEN_PID"));
    const long listen_fds = number(std::getenv("LISTEN_FDS"));
    if (listen_pid == ::getpid() && listen_fds > 0 && listen_fds < 64) {
        const int count = static_cast<int>(listen_fds);
        for (int fd = 3; fd < 3 + count; ++fd) {
            sockaddr_storage address{};
            socklen_t length = sizeof address;
            if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
                return tl::unexpected(fmt::format("socket {} from systemd: {}", fd, std::strerror(errno)));
            }
            const auto port =
                ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                                                    : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
            const auto spec = std::find_if(m_specs.begin(), m_specs.end(), [port](const ListenerSpec& s) {
                return s.endpoint.port() == port;
            });
            if (spec == m_specs.end()) {
                return tl::unexpected(
                    fmt::format("socket {} from systemd (port {}) matches no [[listen]]", fd, port));
            }
            auto listener =
                net::Listener::adopt(*m_loops.front(), fd, spec->mode, next, m_services, m_limits, m_shared);
            if (!listener) {
                return tl::unexpected(listener.error());
            }
            m_listeners.push_back(std::move(*listener));
        }
        ::unsetenv("LISTEN_PID");
        ::unsetenv("LISTEN_FDS");
        return bind_lmtp(); // LMTP sockets are pigeond's own, not systemd's
    }
    for (const auto& spec : m_specs) {
        auto listener = net::Listener::open(*m_loops.front(), spec.endpoint, spec.mode, next, m_services,
                                            m_limits, m_shared);
        if (!listener) {
            return tl::unexpected(listener.error());
        }
        m_listeners.push_back(std::move(*listener));
    }
    return bind_lmtp();
}

tl::expected<void, std::string> Server::bind_lmtp()
{
    if (m_lmtp_specs.empty()) {
        return {};
    }
    if (!m_services.current()->lmtp || !m_services.current()->lmtp_settings) {
        return tl::unexpected(std::string("lmtp: listeners configured but no delivery set up"));
    }
    auto next = [this]() -> asio::io_context& { return next_loop(); };
    // A reload replaces the settings and the deliverer for new LMTP connections, as for POP3.
    auto settings = [this] { return m_services.current()->lmtp_settings; };
    auto deliverer = [this] { return m_services.current()->lmtp; };
    m_delivery_pool =
        std::make_unique<net::WorkerPool>(std::max<std::uint32_t>(1, m_tuning.delivery_threads));
    for (const auto& spec : m_lmtp_specs) {
        auto listener = net::LmtpListener::open(*m_loops.front(), spec.endpoint, spec.owner, next, settings,
                                                deliverer, net::LmtpShared{*m_delivery_pool, *m_log});
        if (!listener) {
            return tl::unexpected(listener.error());
        }
        m_log->info("lmtp: listening on {}", spec.endpoint.text);
        m_lmtp_listeners.push_back(std::move(*listener));
    }
    return {};
}

std::vector<std::uint16_t> Server::lmtp_ports() const
{
    std::vector<std::uint16_t> ports;
    for (const auto& listener : m_lmtp_listeners) {
        ports.push_back(listener->port());
    }
    return ports;
}

std::vector<asio::ip::tcp::endpoint> Server::endpoints() const
{
    std::vector<asio::ip::tcp::endpoint> out;
    for (const auto& listener : m_listeners) {
        out.push_back(listener->local_endpoint());
    }
    return out;
}

void Server::run(bool handle_signals)
{
    using Guard = asio::executor_work_guard<asio::io_context::executor_type>;
    auto guards = std::make_shared<std::vector<Guard>>();
    for (auto& loop : m_loops) {
        guards->push_back(asio::make_work_guard(*loop));
    }
    auto& main_loop = *m_loops.front();
    for (auto& listener : m_listeners) {
        asio::co_spawn(main_loop, listener->run(), asio::detached);
    }
    for (auto& listener : m_lmtp_listeners) {
        asio::co_spawn(main_loop, listener->run(), asio::detached);
    }
    std::unique_ptr<asio::signal_set> signals;
    if (handle_signals) {
        signals = std::make_unique<asio::signal_set>(main_loop, SIGTERM, SIGINT, SIGHUP);
        asio::co_spawn(
            main_loop,
            [this, &signals]() -> asio::awaitable<void> {
                for (;;) {
                    auto [ec, number] = co_await signals->async_wait(nothrow);
                    if (ec) {
                        co_return;
                    }
                    if (number == SIGHUP) {
                        m_log->info("SIGHUP: reloading");
                        if (m_reload) {
                            m_reload(*this);
                        }
                    } else {
                        m_log->info("signal {}: stopping", number);
                        begin_stop();
                    }
                }
            },
            asio::detached);
    }
    // Maildrop locks hold no descriptor; their owner records are kept fresh for the processes
    // that cannot check this one's PID (storage/maildrop_lock.hpp).
    auto lock_refresh = std::make_shared<asio::steady_timer>(main_loop);
    asio::co_spawn(
        main_loop,
        [this, lock_refresh]() -> asio::awaitable<void> {
            while (!m_stopping) {
                lock_refresh->expires_after(storage::LockRegistry::refresh_interval);
                co_await lock_refresh->async_wait(nothrow);
                if (!m_stopping) {
                    storage::LockRegistry::process().refresh();
                }
            }
        },
        asio::detached);
    // The stop sequence releases the guards; keep them reachable from it.
    asio::co_spawn(
        main_loop,
        [this, guards, lock_refresh, &signals]() -> asio::awaitable<void> {
            // Waits for begin_stop() (m_stopping) without polling: a timer cancelled by it.
            asio::steady_timer wake(*m_loops.front(), asio::steady_timer::time_point::max());
            if (!m_stopping) {
                m_wake_stop = &wake;
                co_await wake.async_wait(nothrow);
                m_wake_stop = nullptr;
            }
            for (auto& listener : m_listeners) {
                listener->close();
            }
            for (auto& listener : m_lmtp_listeners) {
                listener->close();
            }
            m_log->info("stopped accepting; {} sessions open, grace {} ms", m_registry.size() + lmtp_live(),
                        m_tuning.shutdown_grace.count());
            // Sessions end on their own within the grace period; check ten times a second.
            const auto deadline = std::chrono::steady_clock::now() + m_tuning.shutdown_grace;
            asio::steady_timer tick(*m_loops.front());
            while (m_registry.size() + lmtp_live() > 0 && std::chrono::steady_clock::now() < deadline) {
                tick.expires_after(std::chrono::milliseconds(100));
                co_await tick.async_wait(nothrow);
            }
            if (const auto left = m_registry.abort_all(); left > 0) {
                m_log->info("grace period over: ending {} sessions without committing", left);
            }
            for (auto& listener : m_lmtp_listeners) {
                if (const auto left = listener->abort_all(); left > 0) {
                    m_log->info("grace period over: ending {} LMTP sessions (a message in progress is not "
                                "delivered: the MTA retries it)",
                                left);
                }
            }
            for (int i = 0; i < 100 && m_registry.size() + lmtp_live() > 0; ++i) {
                tick.expires_after(std::chrono::milliseconds(50));
                co_await tick.async_wait(nothrow);
            }
            if (signals) {
                std::error_code ec;
                signals->cancel(ec);
            }
            lock_refresh->cancel();
            guards->clear();
        },
        asio::detached);

    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < m_loops.size(); ++i) {
        threads.emplace_back([loop = m_loops[i].get()] { loop->run(); });
    }
    main_loop.run();
    for (auto& thread : threads) {
        thread.join();
    }
    m_pool.join();
    if (m_delivery_pool) {
        m_delivery_pool->join();
    }
    m_log->info("stopped");
}

std::size_t Server::lmtp_live() const
{
    std::size_t live = 0;
    for (const auto& listener : m_lmtp_listeners) {
        live += listener->live();
    }
    return live;
}

void Server::begin_stop()
{
    m_stopping = true;
    if (m_wake_stop != nullptr) {
        m_wake_stop->cancel();
    }
}

void Server::stop()
{
    m_stopping = true;
    asio::post(*m_loops.front(), [this] { begin_stop(); });
}

void Server::replace_services(std::shared_ptr<const net::Services> services, const Tuning& tuning)
{
    m_services.replace(std::move(services));
    m_limits.set_limits(tuning.max_connections, tuning.max_connections_per_ip);
    m_limits.set_refusal_delay(tuning.refusal_delay, tuning.max_held_refusals);
    m_throttle.set_options(tuning.throttle);
    m_verify_gate.set_per_address(verifying_per_ip(tuning));
}

tl::expected<void, std::string> drop_privileges(const std::string& user, const std::string& group)
{
    if (::geteuid() != 0) {
        return {};
    }
    if (user.empty()) {
        return {}; // the caller warns: running as root is allowed for tests and demos, not advised
    }
    const passwd* pw = ::getpwnam(user.c_str());
    if (pw == nullptr) {
        return tl::unexpected(fmt::format("server.user: no user \"{}\"", user));
    }
    gid_t gid = pw->pw_gid;
    if (!group.empty()) {
        const struct group* gr = ::getgrnam(group.c_str());
        if (gr == nullptr) {
            return tl::unexpected(fmt::format("server.group: no group \"{}\"", group));
        }
        gid = gr->gr_gid;
    }
    if (pw->pw_uid == 0) {
        return tl::unexpected(std::string("server.user: must not be root"));
    }
    if (::initgroups(pw->pw_name, gid) != 0 || ::setgid(gid) != 0 || ::setuid(pw->pw_uid) != 0) {
        return tl::unexpected(fmt::format("cannot become user {}: {}", user, std::strerror(errno)));
    }
    if (::setuid(0) == 0) {
        return tl::unexpected(std::string("dropping privileges failed: root could be regained"));
    }
    return {};
}

tl::expected<std::uint64_t, std::string> raise_file_limit(std::uint64_t wanted)
{
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return tl::unexpected(fmt::format("cannot read the open-file limit: {}", std::strerror(errno)));
    }
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted && ::geteuid() == 0) {
        // Root may raise the hard limit (up to the kernel's fs.nr_open); if it cannot, the soft
        // limit still goes up to the old hard one below.
        const rlimit raised{static_cast<rlim_t>(wanted), static_cast<rlim_t>(wanted)};
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            return wanted;
        }
    }
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            limit = raised;
        }
    }
    return static_cast<std::uint64_t>(limit.rlim_cur);
}

void notify_systemd(std::string_view state)
{
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || path[0] == '\0') {
        return;
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string_view name(path);
    if (name.size() >= sizeof address.sun_path) {
        return;
    }
    std::copy(name.begin(), name.end(), static_cast<char*>(address.sun_path));
    if (address.sun_path[0] == '@') {
        address.sun_path[0] = '\0'; // abstract namespace
    }
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return;
    }
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    (void)::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
                   length);
    ::close(fd);
}

} // namespace pigeon::server
