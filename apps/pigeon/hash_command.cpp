#include "hash_command.hpp"

#include "auth/password_scheme.hpp"
#include "core/secret.hpp"
#include "exit_codes.hpp"

#include <CLI/CLI.hpp>
#include <tl/expected.hpp>

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

// Longer input is not a password but a mistake (a file piped in by accident); bounding it also
// bounds the buffer that has to be wiped.
constexpr std::size_t max_password_octets = 4096;

constexpr auto default_scheme = auth::PasswordScheme::argon2id;

constexpr std::string_view help_footer =
    R"(The password is read from the terminal, without echo, twice (once with -t), or with --stdin
as one line of standard input (the line end is not part of the password).

There is no -p option, unlike doveadm pw: a password in the arguments is visible to every local
user (ps, /proc/PID/cmdline) while the command runs, and stays in the shell's history. (The
HASH of -t is an argument: a {PLAIN} value there is the password itself.)

The default scheme is ARGON2ID: memory-hard (64 MiB per check, which makes guessing on GPUs and
ASICs expensive), RFC 9106's recommendation, and read by Dovecot 2.3 as well, so the hashes work
with both. Hashes use doveadm's default costs; --list names every scheme.

Exit codes:
  0   the hash was printed; with -t, the password matches
  1   with -t, the password does not match; or the two entries differ
  2   usage error: unknown option or scheme, no terminal, an empty or unusable password
  75  temporary failure (EX_TEMPFAIL): a hash Pigeon cannot read, or no randomness or memory)";

struct HashOptions {
    std::string scheme_name{auth::scheme_name(default_scheme)};
    std::string test_hash;
    bool from_stdin = false;
    bool list = false;
};

// A password, or the exit code to end with (the message is already on standard error).
using PasswordInput = tl::expected<SecretString, int>;

void complain(std::string_view message)
{
    static_cast<void>(
        std::fprintf(stderr, "pigeon hash: %.*s\n", static_cast<int>(message.size()), message.data()));
}

// Octets as they are (a {PLAIN} value may hold any), then a line end.
void print_line(std::string_view text)
{
    static_cast<void>(std::fwrite(text.data(), 1, text.size(), stdout));
    static_cast<void>(std::fputc('\n', stdout));
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

// One line from `fd`, read an octet at a time so nothing after the line end is consumed and
// no stdio buffer keeps a copy; the line end ("\n", or "\r\n") is dropped. The buffer's capacity
// is fixed up front, so it never reallocates and leaves an unwiped copy behind.
PasswordInput read_line(int fd)
{
    std::string line;
    line.reserve(max_password_octets + 2);
    bool saw_anything = false;
    for (;;) {
        char octet = 0;
        const ssize_t got = ::read(fd, &octet, 1);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            wipe(line);
            complain("cannot read the password");
            return tl::unexpected(exit_usage);
        }
        if (got == 0) {
            if (!saw_anything) {
                complain("no password given (end of input)");
                return tl::unexpected(exit_usage);
            }
            break;
        }
        saw_anything = true;
        if (octet == '\n') {
            break;
        }
        if (line.size() > max_password_octets) {
            wipe(line);
            complain("password longer than " + std::to_string(max_password_octets) + " octets");
            return tl::unexpected(exit_usage);
        }
        line.push_back(octet);
    }
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    if (line.size() > max_password_octets) {
        wipe(line);
        complain("password longer than " + std::to_string(max_password_octets) + " octets");
        return tl::unexpected(exit_usage);
    }
    return SecretString(std::move(line));
}

// The terminal's settings while echo is off, so a signal that ends the program gives the user
// their echo back. Only async-signal-safe calls (tcsetattr, signal, raise) run in the handler,
// and a handler can reach nothing but globals.
volatile std::sig_atomic_t g_tty_fd = -1; // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
termios g_saved_tty{};                    // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

void restore_tty_and_reraise(int signal_number)
{
    if (g_tty_fd >= 0) {
        ::tcsetattr(g_tty_fd, TCSAFLUSH, &g_saved_tty);
    }
    static_cast<void>(std::signal(signal_number, SIG_DFL));
    static_cast<void>(std::raise(signal_number));
}

constexpr std::array<int, 4> fatal_signals{SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// Prompts on the controlling terminal (not standard input, which may be redirected) and reads
// one line with echo off. Echo goes off (discarding type-ahead, which would be echoed) before
// the prompt appears, so whatever is typed after the prompt is kept, as getpass(3) does.
PasswordInput read_from_terminal(int tty, std::string_view prompt)
{
    termios quiet{};
    if (::tcgetattr(tty, &g_saved_tty) != 0) {
        complain("cannot turn echo off on the terminal; use --stdin");
        return tl::unexpected(exit_usage);
    }
    quiet = g_saved_tty;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    g_tty_fd = tty;
    for (const int signal_number : fatal_signals) {
        static_cast<void>(std::signal(signal_number, restore_tty_and_reraise));
    }
    PasswordInput line;
    if (::tcsetattr(tty, TCSAFLUSH, &quiet) == 0) {
        write_all(tty, prompt);
        line = read_line(tty);
        ::tcsetattr(tty, TCSAFLUSH, &g_saved_tty);
    } else {
        complain("cannot turn echo off on the terminal; use --stdin");
        line = tl::unexpected(exit_usage);
    }
    for (const int signal_number : fatal_signals) {
        static_cast<void>(std::signal(signal_number, SIG_DFL));
    }
    g_tty_fd = -1;
    write_all(tty, "\n"); // the user's Enter was not echoed
    return line;
}

PasswordInput read_password(const HashOptions& options, bool confirm)
{
    PasswordInput password;
    if (options.from_stdin) {
        password = read_line(STDIN_FILENO);
    } else {
        const int tty = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (tty < 0) {
            complain("no terminal to read the password from; use --stdin");
            return tl::unexpected(exit_usage);
        }
        password = read_from_terminal(tty, "Password: ");
        if (password && confirm) {
            const PasswordInput again = read_from_terminal(tty, "Retype password: ");
            if (!again) {
                password = tl::unexpected(again.error());
            } else if (again->view() != password->view()) {
                complain("the two passwords differ");
                password = tl::unexpected(exit_mismatch);
            }
        }
        ::close(tty);
    }
    return password;
}

int list_schemes()
{
    for (const auto scheme : auth::all_password_schemes()) {
        const std::string_view name = auth::scheme_name(scheme);
        print_line(name);
    }
    return exit_success;
}

int make_hash(const HashOptions& options)
{
    const auto scheme = auth::scheme_from_name(options.scheme_name);
    if (!scheme) {
        complain("unknown scheme \"" + options.scheme_name + "\" (see pigeon hash --list)");
        return exit_usage;
    }
    const PasswordInput password = read_password(options, true);
    if (!password) {
        return password.error();
    }
    if (password->view().empty()) {
        // An empty line is almost always a mistake (an empty file, Enter pressed twice), and a
        // hash of nothing would let anyone in.
        complain("refusing an empty password");
        return exit_usage;
    }
    if (password->view().find('\0') != std::string::npos) {
        // Dovecot's files and configuration are C strings: such a password could never be typed
        // back in, and crypt(3) would cut it at the NUL.
        complain("refusing a password with a NUL octet");
        return exit_usage;
    }
    const auto hash = auth::hash_password(*scheme, password->view());
    if (!hash) {
        if (hash.error() == make_error_code(errc::syntax_error)) {
            complain(std::string(auth::scheme_name(*scheme)) +
                     " cannot take this password (a NUL octet, or more than 511 octets)");
            return exit_usage;
        }
        complain("hashing failed: " + hash.error().message());
        return exit_temporary;
    }
    print_line(*hash);
    return exit_success;
}

int test_hash(const HashOptions& options)
{
    const PasswordInput password = read_password(options, false);
    if (!password) {
        return password.error();
    }
    const auto match = auth::verify_password(options.test_hash, password->view());
    if (!match) {
        complain("cannot read this hash (unknown scheme, or a malformed or too costly value)");
        return exit_temporary;
    }
    if (!*match) {
        complain("the password does not match");
        return exit_mismatch;
    }
    // As doveadm pw -t prints it.
    print_line(options.test_hash + " (verified)");
    return exit_success;
}

} // namespace

void add_hash_command(CLI::App& app, int& exit_code)
{
    CLI::App* hash = app.add_subcommand(
        "hash", "Make a password hash in Dovecot's {SCHEME} notation, or check one (like doveadm pw).");
    auto options = std::make_shared<HashOptions>();
    CLI::Option* scheme = hash->add_option("-s,--scheme", options->scheme_name,
                                           "Scheme to hash with (default ARGON2ID; see --list)");
    CLI::Option* test = hash->add_option("-t,--test", options->test_hash,
                                         "Check the password against HASH instead of making one");
    test->option_text("HASH");
    hash->add_flag("--stdin", options->from_stdin,
                   "Read the password as one line of standard input instead of from the terminal");
    CLI::Option* list = hash->add_flag("-l,--list", options->list, "List the schemes and exit");
    test->excludes(scheme);
    list->excludes(scheme)->excludes(test);
    hash->footer(std::string(help_footer));
    hash->callback([options, test, &exit_code] {
        if (options->list) {
            exit_code = list_schemes();
        } else if (test->count() > 0) {
            exit_code = test_hash(*options);
        } else {
            exit_code = make_hash(*options);
        }
    });
}

} // namespace pigeon::cli
