// `pigeon deliver`: the local delivery agent (LDA) for Postfix's mailbox_command and Exim's pipe
// transport, as dovecot-lda is for Dovecot: it reads one message on standard input and stores it
// in a user's maildrop through src/delivery (the same core as pigeond's LMTP), with the user
// database, the store and the quota of pigeond's configuration (server/backends.hpp). This module
// owns the command line, reading standard input in bounded pieces, the mbox From_ line an MTA may
// put first, and turning a verdict into one line on standard error and a sysexits(3) status.
// docs/operations.md and pigeon(1) document it.
#pragma once

namespace CLI {
class App;
} // namespace CLI

namespace pigeon::cli {

// Registers the `deliver` sub-command on `app`; it stores its exit status in `exit_code`.
void add_deliver_command(CLI::App& app, int& exit_code);

// The exit status for a command line CLI11 refused: EX_USAGE (64) when it was `pigeon deliver`'s
// (an MTA reads sysexits codes), exit_usage (2) for every other sub-command.
[[nodiscard]] int parse_error_exit_code(const CLI::App& app);

} // namespace pigeon::cli
