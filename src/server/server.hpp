// pigeond's wiring (shared/DESIGN.md §2, §6): the configuration becomes Services (TLS contexts,
// the user database, the maildrop store, the session policy); listeners are bound; one event
// loop runs per core and connections are spread over them; blocking work goes to the worker
// pool. SIGHUP reloads certificates, the user database and the configuration without dropping a
// session; SIGTERM stops accepting, lets sessions finish within the grace period, then ends the
// rest (which commit nothing: they never reached QUIT).
#pragma once

#include "auth/throttle.hpp"
#include "config/config.hpp"
#include "net/connection.hpp"
#include "net/connection_limits.hpp"
#include "net/listener.hpp"
#include "net/lmtp_server.hpp"
#include "net/worker_pool.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <tl/expected.hpp>
#include <vector>

namespace spdlog {
class logger;
}

namespace pigeon::server {

// What the server runs with, besides Services.
struct Tuning {
    std::uint32_t threads = 0;        // event loops; 0: one per core
    std::uint32_t worker_threads = 0; // 0: one per core, at least 2
    // LMTP deliveries wait on fsync, not on a CPU: their own pool, wide enough for concurrent
    // deliveries' syncs to overlap (the disk and the file system batch them).
    std::uint32_t delivery_threads = 16;
    std::uint32_t max_connections = 10'000;
    std::uint32_t max_connections_per_ip = 50;
    std::chrono::milliseconds shutdown_grace{30'000};
    std::chrono::milliseconds refusal_delay{1000}; // limits.refusal_delay
    std::uint32_t max_held_refusals = 0;           // 0: a tenth of max_connections, at least 64
    auth::ThrottleOptions throttle;
    std::uint32_t max_verifying_per_ip = 0; // auth.max_concurrent_per_ip; 0: half the workers, at least 1
};

struct ListenerSpec {
    asio::ip::tcp::endpoint endpoint;
    net::TlsMode mode = net::TlsMode::starttls;
};

struct LmtpListenerSpec {
    net::LmtpEndpoint endpoint;
    net::UnixSocketOwner owner;
};

// How build_services treats what the configuration names. `run` (start-up) opens the user
// database (a new SQLite file is created, as on a fresh install) and only logs an unreadable
// passwd-file (it may appear later; logins fail until it does). `reload` (SIGHUP) makes an
// unreadable passwd-file an error, so the running one is kept. `check` (pigeond --check-config)
// creates nothing and makes a missing SQLite file an error too.
enum class BuildMode : std::uint8_t {
    run,
    reload,
    check
};

// Builds the Services a configuration describes (opens the user database, loads certificates).
[[nodiscard]] tl::expected<std::shared_ptr<const net::Services>, std::string>
build_services(const config::Config& config, spdlog::logger& log, BuildMode mode = BuildMode::run);
[[nodiscard]] Tuning tuning_from(const config::Config& config);
[[nodiscard]] tl::expected<std::vector<ListenerSpec>, std::string>
listeners_from(const config::Config& config);
[[nodiscard]] tl::expected<std::vector<LmtpListenerSpec>, std::string>
lmtp_listeners_from(const config::Config& config);

// The logger a configuration asks for (stderr, syslog with facility mail, or a file). With
// BuildMode::check a log file is not opened (nor created): its directory must exist.
[[nodiscard]] tl::expected<std::shared_ptr<spdlog::logger>, std::string>
make_logger(const config::Config& config, BuildMode mode = BuildMode::run);

class Server {
public:
    Server(std::shared_ptr<const net::Services> services, std::vector<ListenerSpec> listeners, Tuning tuning,
           std::shared_ptr<spdlog::logger> log);
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    ~Server();

    // Binds every listener (or takes systemd's sockets, LISTEN_FDS); call before dropping privileges.
    [[nodiscard]] tl::expected<void, std::string> bind();
    [[nodiscard]] std::vector<asio::ip::tcp::endpoint> endpoints() const;
    // LMTP listeners, bound by bind() with the others (call before it).
    void set_lmtp_listeners(std::vector<LmtpListenerSpec> specs) { m_lmtp_specs = std::move(specs); }
    // The bound TCP ports of the LMTP listeners (0 for a Unix socket), in order.
    [[nodiscard]] std::vector<std::uint16_t> lmtp_ports() const;

    // Runs until stopped. With `handle_signals`, SIGTERM/SIGINT stop and SIGHUP calls the reload
    // function (pigeond passes one that reads the configuration again).
    void run(bool handle_signals = false);
    // Graceful stop, from any thread.
    void stop();
    // Replaces the Services new connections get, the connection limits and the throttle's
    // delays, from any thread. Threads and the shutdown grace stay as started.
    void replace_services(std::shared_ptr<const net::Services> services, const Tuning& tuning);
    void set_reload(std::function<void(Server&)> reload) { m_reload = std::move(reload); }

    [[nodiscard]] const net::ServerCounters& counters() const noexcept { return m_counters; }
    [[nodiscard]] std::size_t live_connections() const { return m_registry.size(); }
    [[nodiscard]] auth::AuthThrottle& throttle() noexcept { return m_throttle; }
    [[nodiscard]] spdlog::logger& log() noexcept { return *m_log; }

private:
    asio::io_context& next_loop();
    void begin_stop();
    [[nodiscard]] tl::expected<void, std::string> bind_lmtp();
    [[nodiscard]] std::size_t lmtp_live() const;

    Tuning m_tuning;
    std::shared_ptr<spdlog::logger> m_log;
    std::vector<ListenerSpec> m_specs;
    std::vector<std::unique_ptr<asio::io_context>> m_loops;
    std::atomic<std::size_t> m_next{0};
    net::WorkerPool m_pool;
    auth::AuthThrottle m_throttle;
    net::VerifyGate m_verify_gate;
    net::ConnectionLimits m_limits;
    net::ConnectionRegistry m_registry;
    net::ServerCounters m_counters;
    net::LoginDelayTracker m_login_delays;
    net::ServicesSource m_services;
    net::SharedState m_shared;
    std::vector<std::unique_ptr<net::Listener>> m_listeners;
    std::vector<LmtpListenerSpec> m_lmtp_specs;
    std::vector<std::unique_ptr<net::LmtpListener>> m_lmtp_listeners;
    std::unique_ptr<net::WorkerPool> m_delivery_pool; // made with the first LMTP listener
    std::function<void(Server&)> m_reload;
    std::atomic<bool> m_stopping{false};
    asio::steady_timer* m_wake_stop = nullptr; // the stop sequence's wait, on the first loop
};

// Drops root to `user` (and `group`, or the user's primary group) after binding.
[[nodiscard]] tl::expected<void, std::string> drop_privileges(const std::string& user,
                                                              const std::string& group);

// Raises the soft limit on open files to the hard limit, and as root (before dropping privileges)
// the hard limit itself up to `wanted`: every session holds its socket, and one more while it
// sends a message, so the usual soft limit of 1024 would stop pigeond near 1,000 sessions. Returns
// the limit now in force, or the error that prevented reading it.
[[nodiscard]] tl::expected<std::uint64_t, std::string> raise_file_limit(std::uint64_t wanted);

// systemd's readiness protocol (sd_notify(3)): a datagram to $NOTIFY_SOCKET, if set.
void notify_systemd(std::string_view state);

} // namespace pigeon::server
