// `pigeon fetch`: downloads the mail of POP3 accounts into a Maildir, an mbox or a delivery
// command, never losing or duplicating a message (the engine is src/client; this module owns
// the command line, the password prompt, the progress display and the summary). docs/fetch.md
// and pigeon(1) document it.
#pragma once

namespace CLI {
class App;
} // namespace CLI

namespace pigeon::cli {

void add_fetch_command(CLI::App& app, int& exit_code);

} // namespace pigeon::cli
