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
    std::uint32_t max_connections = 10'000;
    std::uint32_t max_connections_per_ip = 50;
    std::chrono::milliseconds shutdown_grace{30'000};
    auth::ThrottleOptions throttle;
};

struct ListenerSpec {
    asio::ip::tcp::endpoint endpoint;
    net::TlsMode mode = net::TlsMode::starttls;
};

// Builds the Services a configuration describes (opens the user database, loads certificates).
[[nodiscard]] tl::expected<std::shared_ptr<const net::Services>, std::string>
build_services(const config::Config& config, spdlog::logger& log);
[[nodiscard]] Tuning tuning_from(const config::Config& config);
[[nodiscard]] tl::expected<std::vector<ListenerSpec>, std::string>
listeners_from(const config::Config& config);

// The logger a configuration asks for (stderr, syslog with facility mail, or a file).
[[nodiscard]] tl::expected<std::shared_ptr<spdlog::logger>, std::string>
make_logger(const config::Config& config);

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

    // Runs until stopped. With `handle_signals`, SIGTERM/SIGINT stop and SIGHUP calls the reload
    // function (pigeond passes one that reads the configuration again).
    void run(bool handle_signals = false);
    // Graceful stop, from any thread.
    void stop();
    // Replaces the Services new connections get, from any thread.
    void replace_services(std::shared_ptr<const net::Services> services, const Tuning& tuning);
    void set_reload(std::function<void(Server&)> reload) { m_reload = std::move(reload); }

    [[nodiscard]] const net::ServerCounters& counters() const noexcept { return m_counters; }
    [[nodiscard]] std::size_t live_connections() const { return m_registry.size(); }
    [[nodiscard]] spdlog::logger& log() noexcept { return *m_log; }

private:
    asio::io_context& next_loop();
    void begin_stop();

    Tuning m_tuning;
    std::shared_ptr<spdlog::logger> m_log;
    std::vector<ListenerSpec> m_specs;
    std::vector<std::unique_ptr<asio::io_context>> m_loops;
    std::atomic<std::size_t> m_next{0};
    net::WorkerPool m_pool;
    auth::AuthThrottle m_throttle;
    net::ConnectionLimits m_limits;
    net::ConnectionRegistry m_registry;
    net::ServerCounters m_counters;
    net::LoginDelayTracker m_login_delays;
    net::ServicesSource m_services;
    net::SharedState m_shared;
    std::vector<std::unique_ptr<net::Listener>> m_listeners;
    std::function<void(Server&)> m_reload;
    std::atomic<bool> m_stopping{false};
    asio::steady_timer* m_wake_stop = nullptr; // the stop sequence's wait, on the first loop
};

// Drops root to `user` (and `group`, or the user's primary group) after binding.
[[nodiscard]] tl::expected<void, std::string> drop_privileges(const std::string& user,
                                                              const std::string& group);

// systemd's readiness protocol (sd_notify(3)): a datagram to $NOTIFY_SOCKET, if set.
void notify_systemd(std::string_view state);

} // namespace pigeon::server
