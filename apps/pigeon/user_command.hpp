// `pigeon user add|passwd|del|list`: manages the users of the SQLite user database. The logic is
// auth/user_admin's (tested without a terminal); this module owns only the command line, reading
// passwords (from the terminal without echo, twice, or one line of standard input with --stdin;
// never from the arguments) and turning outcomes into messages and exit codes (exit_codes.hpp).
#pragma once

namespace CLI {
class App;
} // namespace CLI

namespace pigeon::cli {

// Registers the `user` sub-command on `app`. When one of its commands runs, it stores its exit
// code in `exit_code`, which must outlive the parse.
void add_user_command(CLI::App& app, int& exit_code);

} // namespace pigeon::cli
