// `pigeon hash`: makes and checks password hashes in Dovecot's "{SCHEME}data" notation, like
// Dovecot 2.3's `doveadm pw`, so an operator can fill a passwd-file or an SQL table for Pigeon or
// for Dovecot with the same values (shared/DESIGN.md §5). The schemes themselves are
// auth/password_scheme's; this module owns only the command line and reading the password (from
// the terminal without echo, or one line of standard input; never from the arguments).
#pragma once

namespace CLI {
class App;
} // namespace CLI

namespace pigeon::cli {

// Registers the `hash` sub-command on `app`. When it runs, it stores its exit code (exit_codes.hpp)
// in `exit_code`, which must outlive the parse.
void add_hash_command(CLI::App& app, int& exit_code);

} // namespace pigeon::cli
