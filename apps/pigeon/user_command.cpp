#include "user_command.hpp"

#include "auth/password_scheme.hpp"
#include "auth/user_admin.hpp"
#include "exit_codes.hpp"

#include <CLI/CLI.hpp>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <memory>
#include <string>
#include <string_view>
#include <termios.h>
#include <unistd.h>

namespace pigeon::cli {
namespace {

constexpr std::string_view default_db_path = "/var/lib/pigeon/users.db"; // pigeond's passdb.path default
constexpr auto default_scheme = auth::PasswordScheme::argon2id;

constexpr std::string_view help_footer =
    R"(The user database is an SQLite file (--db), created with its schema on first use, readable by
its owner only. pigeond reads the same file; changes take effect at the next login.

Passwords are read from the terminal without echo, twice, or with --stdin as one line of
standard input (the line end is not part of the password). There is no option that takes a
password: arguments are visible to every local user (ps, /proc/PID/cmdline) and stay in the
shell's history.

The default scheme is ARGON2ID (memory-hard, read by Dovecot 2.3 too). APOP needs the password
itself, so a user who logs in with APOP needs -s PLAIN.

User names: ASCII letters, digits and .-_@ (Dovecot's default auth_username_chars), at most 255
octets; they are matched exactly, case included.

Exit codes:
  0   done (list: the names were printed, one per line)
  1   add: the user already exists; passwd, del: there is no such user
  2   usage error: unknown option or scheme, invalid user name, no terminal, an empty, too long
      or mistyped password
  75  temporary failure (EX_TEMPFAIL): the database cannot be opened, read or written)";

struct UserOptions {
    std::string db_path{default_db_path};
    std::string user;
    std::string scheme_name{auth::scheme_name(default_scheme)};
    bool from_stdin = false;
};

void complain(std::string_view message)
{
    // Nothing more can be done if standard error is gone.
    static_cast<void>(
        std::fprintf(stderr, "pigeon user: %.*s\n", static_cast<int>(message.size()), message.data()));
}

int exit_code_of(auth::AdminStatus status)
{
    switch (status) {
    case auth::AdminStatus::ok: return exit_success;
    case auth::AdminStatus::user_exists:
    case auth::AdminStatus::no_such_user: return exit_mismatch;
    case auth::AdminStatus::invalid_input: return exit_usage;
    case auth::AdminStatus::failure: return exit_temporary;
    }
    return exit_temporary;
}

// Reports the outcome (the message on standard error unless all went well) and its exit code.
int finish(const auth::AdminOutcome& outcome)
{
    if (!outcome.ok()) {
        complain(outcome.message);
    }
    return exit_code_of(outcome.status);
}

void write_all(int fd, std::string_view text) noexcept
{
    while (!text.empty()) {
        const ssize_t written = ::write(fd, text.data(), text.size());
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            return;
        }
        text.remove_prefix(static_cast<std::size_t>(written));
    }
}

// The terminal's settings while echo is off, so a signal that ends the program gives the user
// their echo back. Only async-signal-safe calls (tcsetattr, signal, raise) run in the handler.
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): a signal handler sees only globals
volatile std::sig_atomic_t g_tty_fd = -1;
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): as above
termios g_saved_tty{};

extern "C" void restore_tty_and_reraise(int signal_number)
{
    if (g_tty_fd >= 0) {
        ::tcsetattr(g_tty_fd, TCSAFLUSH, &g_saved_tty);
    }
    static_cast<void>(std::signal(signal_number, SIG_DFL));
    static_cast<void>(std::raise(signal_number));
}

constexpr std::array<int, 4> fatal_signals{SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// Prompts on the controlling terminal (standard input may be redirected) and reads one line
// with echo off.
Result<SecretString> read_from_terminal(int tty, std::string_view prompt)
{
    write_all(tty, prompt);
    if (::tcgetattr(tty, &g_saved_tty) != 0) {
        return fail(std::error_code(errno, std::system_category()));
    }
    termios quiet = g_saved_tty;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    g_tty_fd = tty;
    for (const int signal_number : fatal_signals) {
        static_cast<void>(std::signal(signal_number, restore_tty_and_reraise));
    }
    ::tcsetattr(tty, TCSAFLUSH, &quiet);
    auto line = auth::read_secret_line(tty);
    ::tcsetattr(tty, TCSAFLUSH, &g_saved_tty);
    for (const int signal_number : fatal_signals) {
        static_cast<void>(std::signal(signal_number, SIG_DFL));
    }
    g_tty_fd = -1;
    write_all(tty, "\n"); // the user's Enter was not echoed
    return line;
}

// The new password, or the exit code to end with (the message is already on standard error).
int read_password(const UserOptions& options, SecretString& password)
{
    if (options.from_stdin) {
        return finish(auth::read_new_password(
            [](std::string_view /*prompt*/) { return auth::read_secret_line(STDIN_FILENO); }, false,
            password));
    }
    const int tty = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0) {
        complain("no terminal to read the password from; use --stdin");
        return exit_usage;
    }
    const int code = finish(auth::read_new_password(
        [tty](std::string_view prompt) { return read_from_terminal(tty, prompt); }, true, password));
    ::close(tty);
    return code;
}

// Opens the database, or says why not.
std::unique_ptr<auth::SqlitePassDb> open_db(const UserOptions& options)
{
    std::string why;
    auto db = auth::SqlitePassDb::open(options.db_path, &why);
    if (!db) {
        complain("cannot open the user database " + why);
        return nullptr;
    }
    return std::move(*db);
}

// add and passwd: everything that can be checked is checked before the password is asked for,
// so a typo in the name or scheme does not cost two password entries.
int add_or_change(const UserOptions& options, bool add)
{
    if (add && !auth::valid_admin_user_name(options.user)) {
        complain("invalid user name '" + options.user + "' (letters, digits and .-_@, at most 255 octets)");
        return exit_usage;
    }
    if (!auth::scheme_from_name(options.scheme_name)) {
        complain("unknown scheme '" + options.scheme_name + "' (see pigeon hash --list)");
        return exit_usage;
    }
    const auto db = open_db(options);
    if (!db) {
        return exit_temporary;
    }
    const auto existing = db->lookup(options.user);
    if (!existing) {
        complain("cannot read the user database: " + db->last_error_message());
        return exit_temporary;
    }
    if (add && *existing) {
        complain("user '" + options.user + "' already exists");
        return exit_mismatch;
    }
    if (!add && !*existing) {
        complain("no user '" + options.user + "'");
        return exit_mismatch;
    }
    SecretString password;
    if (const int code = read_password(options, password); code != exit_success) {
        return code;
    }
    return finish(add ? auth::add_user(*db, options.user, options.scheme_name, password)
                      : auth::set_password(*db, options.user, options.scheme_name, password));
}

int delete_user(const UserOptions& options)
{
    const auto db = open_db(options);
    return db ? finish(auth::delete_user(*db, options.user)) : exit_temporary;
}

int list_users(const UserOptions& options)
{
    const auto db = open_db(options);
    if (!db) {
        return exit_temporary;
    }
    const auto outcome = auth::list_users(*db);
    if (outcome.ok()) {
        if (std::fwrite(outcome.message.data(), 1, outcome.message.size(), stdout) !=
            outcome.message.size()) {
            complain("cannot write the list");
            return exit_temporary;
        }
    }
    return finish(outcome);
}

} // namespace

void add_user_command(CLI::App& app, int& exit_code)
{
    CLI::App* user = app.add_subcommand("user", "Manage the users of the SQLite user database.");
    user->require_subcommand(1);
    user->footer(std::string(help_footer));
    auto options = std::make_shared<UserOptions>();

    CLI::App* add = user->add_subcommand("add", "Add a user, asking for the password.");
    CLI::App* passwd = user->add_subcommand("passwd", "Change a user's password, asking for the new one.");
    CLI::App* del = user->add_subcommand("del", "Delete a user.");
    CLI::App* list = user->add_subcommand("list", "Print every user name, one per line.");
    for (CLI::App* command : {add, passwd, del, list}) {
        command->add_option("--db", options->db_path, "The SQLite user database")
            ->option_text("PATH")
            ->capture_default_str();
        command->footer(std::string(help_footer));
    }
    for (CLI::App* command : {add, passwd, del}) {
        command->add_option("name", options->user, "The user name (user or user@domain)")->required();
    }
    for (CLI::App* command : {add, passwd}) {
        command->add_option("-s,--scheme", options->scheme_name, "Password scheme (see pigeon hash --list)")
            ->option_text("SCHEME")
            ->capture_default_str();
        command->add_flag("--stdin", options->from_stdin,
                          "Read the password as one line of standard input instead of from the terminal");
    }

    add->callback([options, &exit_code] { exit_code = add_or_change(*options, true); });
    passwd->callback([options, &exit_code] { exit_code = add_or_change(*options, false); });
    del->callback([options, &exit_code] { exit_code = delete_user(*options); });
    list->callback([options, &exit_code] { exit_code = list_users(*options); });
}

} // namespace pigeon::cli
