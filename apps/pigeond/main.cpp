// pigeond: the POP3 server. main() only: arguments, configuration, then src/server runs it.
#include "config/config.hpp"
#include "server/sandbox.hpp"
#include "server/server.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/logger.h>

#include <cstdio>
#include <string_view>
#include <sysexits.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr std::string_view version = PIGEON_VERSION;

int check_config(const pigeon::config::Config& config)
{
    auto log = pigeon::server::make_logger(config, pigeon::server::BuildMode::check);
    if (!log) {
        fmt::print(stderr, "pigeond: {}\n", log.error());
        return EX_CONFIG;
    }
    auto services = pigeon::server::build_services(config, **log, pigeon::server::BuildMode::check);
    if (!services) {
        fmt::print(stderr, "pigeond: {}\n", services.error());
        return EX_CONFIG;
    }
    auto listeners = pigeon::server::listeners_from(config);
    if (!listeners) {
        fmt::print(stderr, "pigeond: {}\n", listeners.error());
        return EX_CONFIG;
    }
    auto lmtp = pigeon::server::lmtp_listeners_from(config);
    if (!lmtp) {
        fmt::print(stderr, "pigeond: {}\n", lmtp.error());
        return EX_CONFIG;
    }
    fmt::print("{}: configuration OK ({} listeners, {} LMTP, storage {}, passdb {} {}, {} certificates)\n",
               config.file.string(), listeners->size(), lmtp->size(), config.storage.driver,
               config.passdb.driver, config.passdb.path, config.tls.certificates.size());
    return 0;
}

} // namespace

static int run(int argc, char** argv)
{
    CLI::App app{"pigeond: the Pigeon POP3 server (RFC 1939, with CAPA, STLS, SASL, APOP and implicit TLS).\n"
                 "It runs in the foreground and logs to the configured destination; see pigeond(8)\n"
                 "and docs/configuration.md.",
                 "pigeond"};
    std::string config_path = "/etc/pigeon/pigeond.toml";
    bool check = false;
    app.add_option("-c,--config", config_path, "configuration file (TOML)")->capture_default_str();
    app.add_flag("--check-config", check, "read the configuration, open what it names, report and exit");
    app.set_version_flag("-V,--version", fmt::format("pigeond {}", version));
    CLI11_PARSE(app, argc, argv);

    auto config = pigeon::config::load(config_path);
    if (!config) {
        fmt::print(stderr, "pigeond: {}\n", config.error());
        return EX_CONFIG;
    }
    if (check) {
        return check_config(*config);
    }
    auto log = pigeon::server::make_logger(*config);
    if (!log) {
        fmt::print(stderr, "pigeond: {}\n", log.error());
        return EX_CONFIG;
    }
    auto services = pigeon::server::build_services(*config, **log);
    auto listeners = pigeon::server::listeners_from(*config);
    auto lmtp = pigeon::server::lmtp_listeners_from(*config);
    if (!services || !listeners || !lmtp) {
        fmt::print(stderr, "pigeond: {}\n",
                   !services    ? services.error()
                   : !listeners ? listeners.error()
                                : lmtp.error());
        return EX_CONFIG;
    }
    // Landlock binds this thread and the threads it creates from now on: before the server's.
    std::string sandbox_note;
    if (config->sandbox.landlock) {
        auto paths = pigeon::server::sandbox_paths(*config);
        auto confined = paths ? pigeon::server::confine_files(*paths)
                              : tl::expected<std::string, std::string>(tl::unexpect, paths.error());
        if (!confined) {
            (*log)->error("{}", confined.error());
            fmt::print(stderr, "pigeond: {}\n", confined.error());
            return EX_OSERR;
        }
        sandbox_note = *confined;
    }
    pigeon::server::Server server(std::move(*services), std::move(*listeners),
                                  pigeon::server::tuning_from(*config), *log);
    server.set_lmtp_listeners(std::move(*lmtp));
    // An idle session holds one descriptor (its socket; maildrop locks hold none), a session
    // sending a message one more; the listeners, loops and log need a few. Ask for the peak, warn
    // below what idle sessions need.
    const std::uint64_t peak = 2ULL * config->limits.max_connections + 64;
    const std::uint64_t needed = config->limits.max_connections + 64ULL;
    if (auto files = pigeon::server::raise_file_limit(peak); !files) {
        (*log)->warn("{}", files.error());
    } else if (*files < needed) {
        (*log)->warn("open-file limit {} is below the {} that limits.max_connections = {} needs: raise "
                     "LimitNOFILE= (systemd) or ulimit -n, or lower limits.max_connections",
                     *files, needed, config->limits.max_connections);
    }
    if (auto bound = server.bind(); !bound) {
        (*log)->error("{}", bound.error());
        fmt::print(stderr, "pigeond: {}\n", bound.error());
        return EX_UNAVAILABLE;
    }
    if (auto dropped = pigeon::server::drop_privileges(config->server.user, config->server.group); !dropped) {
        (*log)->error("{}", dropped.error());
        fmt::print(stderr, "pigeond: {}\n", dropped.error());
        return EX_NOPERM;
    }
    if (::geteuid() == 0) {
        (*log)->warn("running as root: set server.user to the unprivileged account pigeond should run as");
    }
    if (config->sandbox.seccomp) {
        if (auto confined = pigeon::server::confine_system_calls(); !confined) {
            (*log)->error("{}", confined.error());
            fmt::print(stderr, "pigeond: {}\n", confined.error());
            return EX_OSERR;
        }
    }
    if (!sandbox_note.empty()) {
        (*log)->warn("{}", sandbox_note);
    }
    (*log)->info("sandbox: seccomp {}, Landlock {}", config->sandbox.seccomp ? "on" : "off",
                 !config->sandbox.landlock ? "off"
                 : sandbox_note.empty()    ? "on"
                                           : "unavailable");
    const auto listening = [&server] {
        std::string text;
        for (const auto& endpoint : server.endpoints()) {
            text += text.empty() ? "" : " ";
            text += endpoint.address().is_v6()
                        ? fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port())
                        : fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
        }
        return text;
    }();
    (*log)->info("pigeond {} listening on {}", version, listening);
    server.set_reload([path = config->file, first = *config](pigeon::server::Server& running) {
        pigeon::server::notify_systemd("RELOADING=1");
        auto fresh = pigeon::config::load(path);
        if (!fresh) {
            running.log().error("reload failed, keeping the running configuration: {}", fresh.error());
        } else if (auto rebuilt = pigeon::server::build_services(*fresh, running.log(),
                                                                 pigeon::server::BuildMode::reload);
                   !rebuilt) {
            running.log().error("reload failed, keeping the running configuration: {}", rebuilt.error());
        } else {
            running.replace_services(std::move(*rebuilt), pigeon::server::tuning_from(*fresh));
            running.log().set_level(spdlog::level::from_str(fresh->log.level));
            std::vector<std::string_view> restart_only;
            if (fresh->log.destination != first.log.destination) {
                restart_only.emplace_back("log.destination");
            }
            if (fresh->server.user != first.server.user || fresh->server.group != first.server.group) {
                restart_only.emplace_back("server.user/group");
            }
            if (fresh->server.threads != first.server.threads ||
                fresh->server.worker_threads != first.server.worker_threads) {
                restart_only.emplace_back("server.threads/worker_threads");
            }
            if (fresh->limits.shutdown_grace != first.limits.shutdown_grace) {
                restart_only.emplace_back("limits.shutdown_grace");
            }
            const auto same_listeners = [&] {
                if (fresh->listeners.size() != first.listeners.size()) {
                    return false;
                }
                for (std::size_t i = 0; i < first.listeners.size(); ++i) {
                    const auto& a = fresh->listeners[i];
                    const auto& b = first.listeners[i];
                    if (a.address != b.address || a.port != b.port || a.tls != b.tls) {
                        return false;
                    }
                }
                return true;
            }();
            if (!same_listeners) {
                restart_only.emplace_back("[[listen]]");
            }
            const auto& lmtp_then = first.lmtp;
            const auto& lmtp_now = fresh->lmtp;
            if (lmtp_now.listen != lmtp_then.listen || lmtp_now.socket_user != lmtp_then.socket_user ||
                lmtp_now.socket_group != lmtp_then.socket_group ||
                lmtp_now.socket_mode != lmtp_then.socket_mode ||
                lmtp_now.delivery_threads != lmtp_then.delivery_threads) {
                restart_only.emplace_back("lmtp.listen/socket_*/delivery_threads");
            }
            if (!restart_only.empty()) {
                running.log().warn("reload: changes to {} take effect at the next restart",
                                   fmt::join(restart_only, ", "));
            }
            running.log().info(
                "reload done: certificates, user database, pop3, auth, limits and log level replaced");
        }
        pigeon::server::notify_systemd("READY=1");
    });
    pigeon::server::notify_systemd("READY=1");
    server.run(true);
    pigeon::server::notify_systemd("STOPPING=1");
    return 0;
}

int main(int argc, char** argv)
{
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        // Errors are values throughout; what reaches here is a failed allocation or a bug.
        (void)std::fprintf(stderr, "pigeond: fatal: %s\n", e.what());
        return EX_SOFTWARE;
    }
}
