// The logic of `pigeon user add|passwd|del|list` on the SQLite user database, kept out of
// apps/pigeon/user_command.cpp so that tests drive it without a terminal or a process: that file
// only parses arguments, reads passwords from the terminal and prints what these return.
//
// Passwords never come from the command line (other users see argv in ps and /proc): they are
// read without echo from the terminal, twice, or as one line from standard input (--stdin).
#pragma once

#include "auth/sqlite/sqlite_passdb.hpp"
#include "core/result.hpp"
#include "core/secret.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace pigeon::auth {

// What became of a command; apps/pigeon/user_command.cpp maps it to the exit codes all `pigeon`
// sub-commands share (apps/pigeon/exit_codes.hpp) and documents them in --help.
enum class AdminStatus {
    ok,
    user_exists,   // add: the name is taken
    no_such_user,  // passwd, del: nobody by that name
    invalid_input, // a bad user name, an unknown scheme, an empty or mismatched password
    failure,       // the database or the system failed (the message says how)
};

struct AdminOutcome {
    AdminStatus status = AdminStatus::ok;
    std::string message; // for the operator: what went wrong, what was done, or (list) the names

    [[nodiscard]] bool ok() const noexcept { return status == AdminStatus::ok; }
};

// A password longer than this is a mistake (a file piped in by accident), not a password; the
// same bound as `pigeon hash`.
inline constexpr std::size_t max_password_octets = 4096;

// Names `pigeon user` accepts: Dovecot's default auth_username_chars (ASCII letters, digits and
// ".-_@"), at most 255 octets, not starting with "." or "-". The name ends up in maildrop paths
// (/var/mail/%u) and log lines, so anything else is refused at the door.
[[nodiscard]] bool valid_admin_user_name(std::string_view name) noexcept;

// A source of secret lines: shows the prompt (if any) and returns one line, as
// read_secret_line() does. The terminal's, with echo off, is in apps/pigeon/user_command.cpp.
using SecretLineReader = std::function<Result<SecretString>(std::string_view prompt)>;

// One line from `fd` (standard input for --stdin, or the terminal): the password without its
// line end ("\n" or "\r\n"). errc::connection_closed at end of input before any octet,
// errc::line_too_long over max_password_octets (the whole line is consumed, so none of it is
// read as the next entry), or the read error.
[[nodiscard]] Result<SecretString> read_secret_line(int fd);

// The new password: one line when `confirm` is false (--stdin), otherwise two entries that must
// match. An empty password is refused (an empty stored password means "no password login").
// On success `password` holds it.
[[nodiscard]] AdminOutcome read_new_password(const SecretLineReader& read_line, bool confirm,
                                             SecretString& password);

[[nodiscard]] AdminOutcome add_user(SqlitePassDb& db, std::string_view user, std::string_view scheme,
                                    const SecretString& password);
[[nodiscard]] AdminOutcome set_password(SqlitePassDb& db, std::string_view user, std::string_view scheme,
                                        const SecretString& password);
[[nodiscard]] AdminOutcome delete_user(SqlitePassDb& db, std::string_view user);
// The message is every user name, one per line.
[[nodiscard]] AdminOutcome list_users(SqlitePassDb& db);

} // namespace pigeon::auth
