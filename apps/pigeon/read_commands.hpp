// `pigeon ls` and `pigeon show`: reading the mail `pigeon fetch` stored, offline. `ls` lists the
// messages of an account's Maildir or mbox (number, date, sender, subject, size), `show N` prints
// message N as readable text (or as stored, with --raw). The store, the numbering and MIME are
// src/client/mail_reader's; this module owns the command line, choosing the store (an account of
// fetch.toml, or --store), the columns and --json. docs/fetch.md and pigeon(1) document them.
#pragma once

namespace CLI {
class App;
} // namespace CLI

namespace pigeon::cli {

// Register the `ls` and `show` sub-commands on `app`. When one runs, it stores its exit code
// (exit_codes.hpp) in `exit_code`, which must outlive the parse.
void add_ls_command(CLI::App& app, int& exit_code);
void add_show_command(CLI::App& app, int& exit_code);

} // namespace pigeon::cli
