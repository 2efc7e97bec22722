// pigeon: the command-line tool (shared/DESIGN.md §2). main() only: it builds the CLI11
// application, registers each sub-command (one line each, defined in its own file beside this
// one), parses, and returns the exit code the sub-command chose (exit_codes.hpp).
#include "deliver_command.hpp"
#include "exit_codes.hpp"
#include "fetch_command.hpp"
#include "hash_command.hpp"
#include "read_commands.hpp"
#include "user_command.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

namespace {

int run(int argc, char** argv)
{
    CLI::App app{"Pigeon's command-line tool: POP3 mail, users and password hashes.", "pigeon"};
    app.require_subcommand(1);
    int exit_code = pigeon::cli::exit_success;

    pigeon::cli::add_deliver_command(app, exit_code);
    pigeon::cli::add_fetch_command(app, exit_code);
    pigeon::cli::add_hash_command(app, exit_code);
    pigeon::cli::add_ls_command(app, exit_code);
    pigeon::cli::add_show_command(app, exit_code);
    pigeon::cli::add_user_command(app, exit_code);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        // CLI11 reports --help as a ParseError with exit code 0; every other one is a usage error.
        return app.exit(error) == 0 ? pigeon::cli::exit_success : pigeon::cli::parse_error_exit_code(app);
    }
    return exit_code;
}

} // namespace

int main(int argc, char** argv)
{
    // The last-resort catch (shared/DESIGN.md §7): sub-commands return errors as values; what
    // can still throw is CLI11 and the standard library running out of memory.
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        static_cast<void>(std::fprintf(stderr, "pigeon: %s\n", error.what()));
        return pigeon::cli::exit_temporary;
    }
}
