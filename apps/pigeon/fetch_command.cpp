#include "fetch_command.hpp"

#include "client/account.hpp"
#include "client/fetch_state.hpp"
#include "client/fetcher.hpp"
#include "client/import.hpp"
#include "exit_codes.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <pthread.h>
#include <string>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>
#include <vector>

namespace pigeon::cli {
namespace {

constexpr std::string_view help_footer =
    R"(Accounts come from $XDG_CONFIG_HOME/pigeon/fetch.toml (~/.config/pigeon/fetch.toml),
one [account.NAME] table each, or from --host and --user with no file at all. See docs/fetch.md
for every key. A message is stored (and fsynced) before it is recorded as downloaded, and
recorded before it is deleted on the server: a crash or a cut connection at any point, followed
by another run, leaves each message stored exactly once.

The password comes from password_command (--password-command), for keyrings and pass, or is
asked on the terminal; never from the command line.

Exit codes (the worst over all accounts):
  0   new mail was stored (with --serverinfo: the server was reached and described)
  1   nothing new
  2   usage error
  75  temporary failure: network, server busy ([IN-USE], [LOGIN-DELAY], [SYS/TEMP]), a message
      that could not be stored; run again later
  76  the server broke the protocol, or answered [SYS/PERM]
  77  authentication failed ([AUTH]), or no mechanism in common
  78  configuration error (fetch.toml, password command, delivery target)
  79  TLS failure: handshake, untrusted certificate, STLS not offered)";

struct FetchCli {
    std::vector<std::string> accounts;
    std::string config;
    client::Account adhoc;
    std::string tls = "implicit";
    bool delete_messages = false;
    std::uint32_t port = 0;
    bool serverinfo = false;
    bool insecure = false;
    bool quiet = false;
    bool verbose = false;
    bool json = false;
    std::string import_mpop;
    std::string import_fetchmail;
    bool daemon = false;
    std::string interval_text = "5m";
    std::chrono::seconds interval{300};
};

// --import-mpop / --import-fetchmail: the unique-ids another client downloaded become this
// account's, as downloaded now; nothing is fetched.
int import_uids(const FetchCli& cli, const std::vector<client::Account>& accounts)
{
    const bool mpop = !cli.import_mpop.empty();
    const std::string& file = mpop ? cli.import_mpop : cli.import_fetchmail;
    int code = exit_success;
    for (const auto& account : accounts) {
        auto uids = client::read_foreign_uids(mpop ? "mpop" : "fetchmail", client::expand_home(file),
                                              account.host, account.user);
        if (!uids) {
            fmt::print(stderr, "pigeon fetch: {}: {}\n", account.name, uids.error());
            code = client::exit_code(client::Outcome::config);
            continue;
        }
        auto state = client::FetchState::open(client::state_path(account));
        if (!state) {
            fmt::print(stderr, "pigeon fetch: {}: {}\n", account.name, state.error());
            code = client::exit_code(client::Outcome::config);
            continue;
        }
        auto added = state->import(*uids, std::time(nullptr));
        if (!added || !state->save()) {
            fmt::print(stderr, "pigeon fetch: {}: cannot write the state\n", account.name);
            code = client::exit_code(client::Outcome::temporary);
            continue;
        }
        if (!cli.quiet) {
            fmt::print(stderr, "{}: {} unique-ids imported from {} ({} already known)\n", account.name,
                       *added, file, uids->size() - *added);
        }
    }
    return code;
}

std::optional<SecretString> prompt_password(const client::Account& account)
{
    const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (tty < 0) {
        return std::nullopt;
    }
    const std::string prompt = fmt::format("Password for {}@{}: ", account.user, account.host);
    (void)::write(tty, prompt.data(), prompt.size());
    termios saved{};
    const bool is_terminal = ::tcgetattr(tty, &saved) == 0;
    if (is_terminal) {
        termios quiet = saved;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(tty, TCSAFLUSH, &quiet);
    }
    std::string line;
    char c = 0;
    while (line.size() < 4096 && ::read(tty, &c, 1) == 1 && c != '\n') {
        line.push_back(c);
    }
    if (is_terminal) {
        ::tcsetattr(tty, TCSAFLUSH, &saved);
    }
    (void)::write(tty, "\n", 1);
    ::close(tty);
    if (line.empty()) {
        return std::nullopt;
    }
    return SecretString(std::move(line));
}

// Server text on the terminal: control characters (escape sequences) become '?'.
std::string printable(std::string_view text)
{
    std::string out(text);
    for (char& c : out) {
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
            c = '?';
        }
    }
    return out;
}

std::string human_octets(std::uint64_t octets)
{
    if (octets >= std::uint64_t{1024} * 1024) {
        return fmt::format("{:.1f} MB", static_cast<double>(octets) / (1024.0 * 1024.0));
    }
    if (octets >= 1024) {
        return fmt::format("{:.1f} KB", static_cast<double>(octets) / 1024.0);
    }
    return fmt::format("{} B", octets);
}

// One line redrawn in place on the terminal, at most ten times a second.
class ProgressLine {
public:
    explicit ProgressLine(std::string account) : m_account(std::move(account)) {}
    ProgressLine(const ProgressLine&) = delete;
    ProgressLine& operator=(const ProgressLine&) = delete;
    ProgressLine(ProgressLine&&) = delete;
    ProgressLine& operator=(ProgressLine&&) = delete;
    ~ProgressLine() { clear(); }

    void update(const client::Progress& progress)
    {
        const auto now = std::chrono::steady_clock::now();
        const bool last = progress.messages_done == progress.messages_total;
        if (!last && now - m_drawn < std::chrono::milliseconds(100)) {
            return;
        }
        if (progress.messages_total == 0) {
            return;
        }
        m_drawn = now;
        const double seconds = std::chrono::duration<double>(now - m_started).count();
        const double rate = seconds > 0 ? static_cast<double>(progress.octets_done) / seconds : 0;
        std::string left = "--:--";
        if (rate > 0 && progress.octets_total >= progress.octets_done) {
            const double seconds_left =
                static_cast<double>(progress.octets_total - progress.octets_done) / rate;
            const auto remaining = static_cast<long>(std::min(seconds_left, 359'999.0));
            left = fmt::format("{}:{:02}", remaining / 60, remaining % 60);
        }
        std::string line = fmt::format(
            "{}: {}/{} messages, {} of {}, {}/s, {} left", m_account, progress.messages_done,
            progress.messages_total, human_octets(progress.octets_done), human_octets(progress.octets_total),
            human_octets(static_cast<std::uint64_t>(rate)), left);
        (void)std::fprintf(stderr, "\r%s\033[K", line.c_str());
        m_shown = true;
    }

    void clear()
    {
        if (m_shown) {
            (void)std::fprintf(stderr, "\r\033[K");
            m_shown = false;
        }
    }

private:
    std::string m_account;
    std::chrono::steady_clock::time_point m_started = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point m_drawn{};
    bool m_shown = false;
};

nlohmann::json to_json(const client::FetchReport& report)
{
    nlohmann::json out = {
        {"account", report.account},
        {"outcome", std::string(client::outcome_name(report.outcome))},
        {"exit_code", client::exit_code(report.outcome)},
        {"server", report.server.address},
        {"mechanism", report.mechanism},
        {"on_server", report.on_server},
        {"new", report.new_messages},
        {"stored", report.stored},
        {"stored_octets", report.stored_octets},
        {"deleted", report.deleted},
        {"skipped_too_big", report.skipped_too_big},
        {"failed", report.failed},
        {"recovered", report.recovered},
        {"seconds", report.seconds},
        {"warnings", report.warnings},
    };
    if (!report.error.empty()) {
        out["error"] = report.error;
    }
    if (report.server.tls) {
        out["tls"] = {{"protocol", report.server.tls->protocol}, {"cipher", report.server.tls->cipher}};
    }
    if (report.login_delay) {
        out["login_delay_seconds"] = report.login_delay->count();
    }
    return out;
}

void print_serverinfo(const client::FetchReport& report)
{
    const auto& server = report.server;
    fmt::print("Account {}: POP3 server at {}\n", report.account, server.address);
    fmt::print("Greeting: {}\n", server.greeting);
    if (server.tls) {
        const auto& tls = *server.tls;
        fmt::print("TLS: {} {}\n", tls.protocol, tls.cipher);
        fmt::print(
            "Certificate:\n  subject:     {}\n  issuer:      {}\n  valid from:  {}\n  valid until: {}\n"
            "  SHA-256:     {}\n  trust:       {}\n",
            tls.subject, tls.issuer, tls.not_before, tls.not_after, tls.sha256_fingerprint, tls.verification);
        if (!tls.names.empty()) {
            fmt::print("  names:       {}\n", fmt::join(tls.names, ", "));
        }
    } else {
        fmt::print("TLS: none\n");
    }
    if (!server.capabilities_before_tls.empty()) {
        fmt::print("Capabilities before STLS:\n");
        for (const auto& line : server.capabilities_before_tls) {
            fmt::print("  {}\n", line);
        }
    }
    fmt::print("Capabilities:\n");
    if (server.capabilities.empty()) {
        fmt::print("  (none: the server does not support CAPA)\n");
    }
    for (const auto& line : server.capabilities) {
        fmt::print("  {}\n", line);
    }
}

// One account: fetch, then its warnings and summary line (or --serverinfo's description).
client::FetchReport fetch_one(const FetchCli& cli, const client::Account& account, bool tty)
{
    client::FetchOptions options;
    options.serverinfo_only = cli.serverinfo;
    options.tls_no_verify = cli.insecure;
    options.prompt_password = prompt_password;
    if (cli.verbose) {
        options.trace = [](std::string_view line) { fmt::print(stderr, "{}\n", printable(line)); };
    }
    std::unique_ptr<ProgressLine> progress;
    if (tty) {
        progress = std::make_unique<ProgressLine>(account.name);
        options.progress = [&progress](const client::Progress& p) { progress->update(p); };
    }
    auto report = client::fetch(account, options);
    progress.reset();
    if (cli.serverinfo && report.error.empty()) {
        report.outcome = client::Outcome::fetched; // --serverinfo that worked: exit 0
    }
    if (cli.json) {
        return report;
    }
    if (!cli.quiet) {
        for (const auto& warning : report.warnings) {
            fmt::print(stderr, "pigeon fetch: {}: warning: {}\n", account.name, printable(warning));
        }
    }
    if (cli.serverinfo && report.error.empty()) {
        print_serverinfo(report);
    } else if (!report.error.empty()) {
        fmt::print(stderr, "pigeon fetch: {}: {}: {}\n", account.name, client::outcome_name(report.outcome),
                   printable(report.error));
    } else if (!cli.quiet) {
        fmt::print(stderr, "{}: {} new of {} on the server, {} stored ({}), {} deleted, {:.1f} s\n",
                   account.name, report.new_messages, report.on_server, report.stored,
                   human_octets(report.stored_octets), report.deleted, report.seconds);
    }
    return report;
}

// --daemon: every account again after --interval; after a failure later and later (twice the
// wait each time, up to an hour; an hour at once for what retrying will not mend: a refused
// password, an untrusted certificate, a configuration error); never sooner than the server's
// LOGIN-DELAY. SIGTERM, SIGINT or SIGHUP end it between two fetches (a fetch under way ends first).
int run_daemon(const FetchCli& cli, const std::vector<client::Account>& accounts)
{
    using Clock = std::chrono::steady_clock;
    constexpr auto longest = std::chrono::seconds(3600);
    sigset_t stop{};
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr); // taken with sigtimedwait() below, never mid-fetch
    struct Schedule {
        Clock::time_point due;
        std::chrono::seconds wait;
    };
    std::vector<Schedule> schedule(accounts.size(), Schedule{Clock::now(), cli.interval});
    if (!cli.quiet) {
        fmt::print(stderr, "pigeon fetch: daemon: {} account(s), every {} s\n", accounts.size(),
                   cli.interval.count());
    }
    for (;;) {
        for (std::size_t i = 0; i < accounts.size(); ++i) {
            if (Clock::now() < schedule[i].due) {
                continue;
            }
            const auto report = fetch_one(cli, accounts[i], false);
            auto& next = schedule[i];
            switch (report.outcome) {
            case client::Outcome::fetched:
            case client::Outcome::nothing_new: next.wait = cli.interval; break;
            case client::Outcome::temporary:
                next.wait = std::min<std::chrono::seconds>(next.wait * 2, longest);
                break;
            default: next.wait = longest; break;
            }
            if (report.login_delay && *report.login_delay > next.wait) {
                next.wait = *report.login_delay;
            }
            next.due = Clock::now() + next.wait;
            if (report.outcome != client::Outcome::fetched &&
                report.outcome != client::Outcome::nothing_new && !cli.quiet) {
                fmt::print(stderr, "pigeon fetch: {}: next attempt in {} s\n", accounts[i].name,
                           next.wait.count());
            }
        }
        auto earliest = schedule.front().due;
        for (const auto& entry : schedule) {
            earliest = std::min(earliest, entry.due);
        }
        const auto pause = std::chrono::duration_cast<std::chrono::milliseconds>(earliest - Clock::now());
        if (pause.count() > 0) {
            const timespec wait{static_cast<time_t>(pause.count() / 1000),
                                static_cast<long>(pause.count() % 1000) * 1'000'000};
            siginfo_t info{};
            const int signal = ::sigtimedwait(&stop, &info, &wait);
            if (signal > 0) {
                if (!cli.quiet) {
                    fmt::print(stderr, "pigeon fetch: daemon: signal {}, stopping\n", signal);
                }
                return exit_success;
            }
        }
    }
}

// The duration of --interval: "300", "30s", "5m", "1h".
std::optional<std::chrono::seconds> parse_interval(const std::string& text)
{
    std::uint64_t number = 0;
    const char* end = text.data() + text.size();
    const auto [rest, ec] = std::from_chars(text.data(), end, number);
    if (ec != std::errc() || number == 0 || number > std::uint64_t{86400} * 7) {
        return std::nullopt;
    }
    const std::string_view unit(rest, static_cast<std::size_t>(end - rest));
    const std::uint64_t factor = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
    if (factor == 0 || number * factor < 10 || number * factor > std::uint64_t{86400} * 7) {
        return std::nullopt;
    }
    return std::chrono::seconds(number * factor);
}

int run_fetch(FetchCli& cli)
{
    if (cli.insecure && !cli.serverinfo) {
        fmt::print(stderr, "pigeon fetch: --insecure is only for --serverinfo (it logs in to nothing)\n");
        return exit_usage;
    }
    if (const auto interval = parse_interval(cli.interval_text)) {
        cli.interval = *interval;
    } else {
        fmt::print(stderr, "pigeon fetch: --interval {}: a duration from 10 s to 7 days (300, 30s, 5m, 1h)\n",
                   cli.interval_text);
        return exit_usage;
    }
    if (cli.daemon && (cli.serverinfo || cli.json)) {
        fmt::print(stderr, "pigeon fetch: --daemon does not go with --serverinfo or --json\n");
        return exit_usage;
    }
    std::vector<client::Account> accounts;
    if (!cli.adhoc.host.empty()) {
        client::Account account = cli.adhoc;
        account.tls = cli.tls == "implicit"   ? client::TlsMode::implicit
                      : cli.tls == "starttls" ? client::TlsMode::starttls
                                              : client::TlsMode::none;
        account.port = static_cast<std::uint16_t>(cli.port);
        account.keep = !cli.delete_messages;
        account.name = account.name.empty() ? fmt::format("{}@{}", account.user, account.host) : account.name;
        account.deliver_to =
            account.deliver_to.empty() && cli.serverinfo ? "maildir:/nonexistent" : account.deliver_to;
        if (!account.deliver_to.starts_with("command:") && !account.deliver_to.starts_with("imap:") &&
            account.deliver_to.find(':') != std::string::npos) {
            const auto colon = account.deliver_to.find(':') + 1;
            account.deliver_to =
                account.deliver_to.substr(0, colon) + client::expand_home(account.deliver_to.substr(colon));
        }
        account.state_file = client::expand_home(account.state_file);
        account.ca_file = client::expand_home(account.ca_file);
        if (auto valid = client::validate(account); !valid) {
            fmt::print(stderr, "pigeon fetch: {}\n", valid.error());
            return exit_code(client::Outcome::config);
        }
        accounts.push_back(std::move(account));
    } else {
        const std::string file = cli.config.empty() ? client::default_accounts_file() : cli.config;
        auto loaded = client::load_accounts(file);
        if (!loaded) {
            fmt::print(stderr, "pigeon fetch: {}\n", loaded.error());
            return exit_code(client::Outcome::config);
        }
        for (const auto& wanted : cli.accounts) {
            if (std::none_of(loaded->begin(), loaded->end(),
                             [&wanted](const auto& a) { return a.name == wanted; })) {
                fmt::print(stderr, "pigeon fetch: {}: no account \"{}\"\n", file, wanted);
                return exit_usage;
            }
        }
        for (auto& account : *loaded) {
            if (cli.accounts.empty() ||
                std::find(cli.accounts.begin(), cli.accounts.end(), account.name) != cli.accounts.end()) {
                accounts.push_back(std::move(account));
            }
        }
    }

    // A group of messages waiting for its commit holds a file each: the soft limit up to the hard.
    if (rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &files);
    }
    if (!cli.import_mpop.empty() || !cli.import_fetchmail.empty()) {
        return import_uids(cli, accounts);
    }
    if (cli.daemon) {
        return run_daemon(cli, accounts);
    }
    const bool tty = ::isatty(STDERR_FILENO) == 1 && !cli.quiet && !cli.json && !cli.verbose;
    client::Outcome overall = client::Outcome::nothing_new;
    nlohmann::json summary = nlohmann::json::array();
    for (const auto& account : accounts) {
        const auto report = fetch_one(cli, account, tty);
        overall = client::worse(overall, report.outcome);
        if (cli.json) {
            summary.push_back(to_json(report));
        }
    }
    if (cli.json) {
        // Server text may be any bytes: invalid UTF-8 is replaced, never a reason to print nothing.
        std::cout << summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    return client::exit_code(overall);
}

} // namespace

void add_fetch_command(CLI::App& app, int& exit_code)
{
    auto cli = std::make_shared<FetchCli>();
    auto* fetch = app.add_subcommand("fetch", "Download new mail from POP3 accounts, exactly once");
    fetch->footer(std::string(help_footer));
    fetch->add_option("account", cli->accounts, "Accounts of fetch.toml to fetch (default: all)");
    fetch->add_option("-c,--config", cli->config,
                      "Accounts file (default: $XDG_CONFIG_HOME/pigeon/fetch.toml)");
    fetch->add_option("--host", cli->adhoc.host, "Server to fetch from, without an accounts file");
    fetch->add_option("--port", cli->port, "Port (default: 995 with implicit TLS, else 110)")
        ->check(CLI::Range(1, 65535));
    fetch->add_option("--user", cli->adhoc.user, "User name on the server");
    fetch->add_option("--tls", cli->tls, "implicit (default), starttls, or none (needs --allow-plaintext)")
        ->check(CLI::IsMember({"implicit", "starttls", "none"}));
    fetch->add_flag("--allow-plaintext", cli->adhoc.allow_plaintext,
                    "Allow --tls none: password and mail in clear");
    fetch->add_option("--auth", cli->adhoc.auth,
                      "auto (default) or a mechanism (SCRAM-SHA-256, APOP, USER, ...)");
    fetch->add_option("--password-command", cli->adhoc.password_command,
                      "Command whose first output line is the password");
    fetch->add_option("--oauth-token-command", cli->adhoc.oauth_token_command,
                      "Command printing an OAuth2 access token");
    fetch->add_option("--ca-file", cli->adhoc.ca_file, "Trust this CA file instead of the system's");
    fetch->add_option("--fingerprint", cli->adhoc.fingerprints,
                      "Trust only a certificate with this SHA-256 fingerprint");
    fetch->add_option("--deliver-to", cli->adhoc.deliver_to,
                      "maildir:PATH, mbox:PATH, command:COMMAND or imap:imaps://HOST/MAILBOX");
    fetch->add_option("--imap-user", cli->adhoc.imap_user, "User name on the imap: target");
    fetch->add_option("--imap-password-command", cli->adhoc.imap_password_command,
                      "Command printing the imap: target's password");
    fetch->add_option("--imap-oauth-token-command", cli->adhoc.imap_oauth_token_command,
                      "Command printing an OAuth 2.0 access token for the imap: target (XOAUTH2)");
    fetch->add_option("--imap-ca-file", cli->adhoc.imap_ca_file, "Trust this CA file for the imap: target");
    fetch->add_flag("--imap-allow-plaintext", cli->adhoc.imap_allow_plaintext,
                    "Allow an imap:// target without STARTTLS: password and mail in clear");
    fetch->add_flag("--delete", cli->delete_messages,
                    "Delete messages on the server once stored (default: keep)");
    fetch->add_option("--delete-after-days", cli->adhoc.delete_after_days,
                      "Keep, but delete N days after the download");
    fetch->add_option("--size-limit", cli->adhoc.size_limit, "Skip messages larger than this many octets");
    fetch->add_option("--state-file", cli->adhoc.state_file, "Where to remember what was downloaded");
    fetch->add_flag("--serverinfo", cli->serverinfo,
                    "Print greeting, TLS and certificate, capabilities; fetch nothing");
    fetch->add_flag("--insecure", cli->insecure,
                    "With --serverinfo only: show a certificate even if it is not trusted");
    fetch->add_flag("-q,--quiet", cli->quiet, "Print nothing but errors (for cron)");
    fetch->add_flag("-v,--verbose", cli->verbose, "Print the POP3 dialogue (credentials masked)");
    fetch->add_flag("--json", cli->json, "Print a JSON summary of every account on standard output");
    fetch->add_flag("--daemon", cli->daemon,
                    "Fetch again and again, every --interval (back-off after failures)");
    fetch->add_option("--interval", cli->interval_text,
                      "With --daemon: how often (300, 30s, 5m, 1h; default 5m)");
    auto* from_mpop =
        fetch->add_option("--import-mpop", cli->import_mpop,
                          "Import what mpop downloaded (its uidls_file, ~/.mpop_uidls); fetch nothing");
    fetch
        ->add_option("--import-fetchmail", cli->import_fetchmail,
                     "Import what fetchmail downloaded (its .fetchids); fetch nothing")
        ->excludes(from_mpop);
    fetch->callback([cli, &exit_code] { exit_code = run_fetch(*cli); });
}

} // namespace pigeon::cli
