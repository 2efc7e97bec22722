#include "deliver_command.hpp"

#include "config/config.hpp"
#include "core/strings.hpp"
#include "delivery/local_delivery.hpp"
#include "exit_codes.hpp"
#include "server/backends.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

namespace pigeon::cli {
namespace {

constexpr std::string_view default_config = "/etc/pigeon/pigeond.toml";
// Standard input is read in pieces of this size; nothing larger is held in memory (the
// delivery core holds at most the header section, 64 KiB, besides).
constexpr std::size_t read_chunk_octets = std::size_t{64} * 1024;
// An mbox From_ line is short ("From sender date"); a longer first line is not one.
constexpr std::size_t max_from_line_octets = 1000; // RFC 5322 §2.1.1's line limit
// dovecot-lda's envelope sender when none is known (DEFAULT_ENVELOPE_SENDER).
constexpr std::string_view unknown_sender = "MAILER-DAEMON";

constexpr std::string_view help_footer =
    R"(Reads one message on standard input and stores it in USER's maildrop, as pigeond's LMTP would:
the user database, the storage and the quota come from pigeond's configuration (--config). For
Postfix's mailbox_command and Exim's pipe transport; see docs/operations.md.

A Return-Path: (the sender) and a Delivered-To: (the address, else USER) header are added unless
the message already starts with them, as Postfix's local(8) writes them. An mbox "From " line
before the message is dropped, and gives the sender when -f is not given.

On failure, one line on standard error, starting with an enhanced status code that Postfix uses
for the bounce or the deferral ("5.2.2 pigeon deliver: Quota exceeded ...").

Exit codes (sysexits.h; dovecot-lda -e exits the same way):
  0   stored (on disk, fsynced)
  64  EX_USAGE: bad command line
  67  EX_NOUSER: no such user
  75  EX_TEMPFAIL: try again later: an I/O error, a full disk, the user database or the
      configuration cannot be read, a bad quota rule; over quota with [quota] full_tempfail
  77  EX_NOPERM: refused for good: over quota, or larger than [delivery] max_message_size)";

struct DeliverOptions {
    std::string user;
    std::string sender;
    std::string address;
    std::string config{default_config};
    bool sender_given = false;
};

// The one line an MTA keeps: "<enhanced status> pigeon deliver: <text>" (Postfix's pipe_command
// takes a leading "D.S.N text" as the status of the bounce or deferral).
void report(std::string_view status, std::string_view text)
{
    const std::string line = fmt::format("{} pigeon deliver: {}\n", status, text);
    static_cast<void>(std::fwrite(line.data(), 1, line.size(), stderr));
}

int refuse(const delivery::Refusal& refusal, bool full_tempfail, std::string_view reason)
{
    const auto reply = delivery::reply_code(refusal, full_tempfail);
    report(reply.status, reason.empty() ? refusal.detail : fmt::format("{}: {}", refusal.detail, reason));
    return delivery::exit_status(refusal, full_tempfail);
}

// A path as Postfix and dovecot-lda take -f and -a: angle brackets optional, no control characters.
std::optional<std::string> address_argument(std::string_view text)
{
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>') {
        text = text.substr(1, text.size() - 2);
    }
    if (has_control_characters(text)) {
        return std::nullopt;
    }
    return std::string(text);
}

// Reads into `buffer`; 0 at the end of input.
tl::expected<std::size_t, int> read_input(std::span<char> buffer)
{
    for (;;) {
        const ssize_t got = ::read(STDIN_FILENO, buffer.data(), buffer.size());
        if (got >= 0) {
            return static_cast<std::size_t>(got);
        }
        if (errno != EINTR) {
            report("4.3.0", fmt::format("cannot read the message: {}", std::strerror(errno)));
            return tl::unexpected(exit_temporary);
        }
    }
}

// The start of the input, without an mbox From_ line (whose sender is returned when there is one).
struct Start {
    std::string bytes;
    std::optional<std::string> from_line_sender;
    std::uint64_t dropped = 0; // octets of the From_ line
};

tl::expected<Start, int> read_start()
{
    Start start;
    std::array<char, max_from_line_octets + 1> buffer{};
    // Enough to tell a From_ line from a header: its whole first line, or 1001 octets.
    while (start.bytes.size() < buffer.size() && start.bytes.find('\n') == std::string::npos) {
        auto got = read_input(std::span(buffer).first(buffer.size() - start.bytes.size()));
        if (!got) {
            return tl::unexpected(got.error());
        }
        if (*got == 0) {
            break;
        }
        start.bytes.append(buffer.data(), *got);
    }
    const std::size_t end = start.bytes.find('\n');
    if (!start.bytes.starts_with("From ") || end == std::string::npos) {
        return start;
    }
    std::string_view line = std::string_view(start.bytes).substr(5, end - 5);
    line = line.substr(0, line.find(' '));
    if (!line.empty() && !has_control_characters(line)) {
        start.from_line_sender = line == "MAILER-DAEMON" ? std::string() : std::string(line);
    }
    start.dropped = end + 1;
    start.bytes.erase(0, end + 1);
    return start;
}

int run_deliver(const DeliverOptions& options)
{
    if (options.user.empty() || has_control_characters(options.user)) {
        report("5.3.0", "-u needs a user name");
        return exit_sysexits_usage;
    }
    const auto sender = address_argument(options.sender);
    const auto address = address_argument(options.address);
    if (!sender || !address) {
        report("5.3.0", "-f and -a take an address without control characters");
        return exit_sysexits_usage;
    }

    // A configuration or user database that cannot be read is the operator's to mend: mail waits
    // (EX_TEMPFAIL) rather than bounce (EX_CONFIG would make Postfix and Exim bounce it).
    auto config = config::load(options.config);
    if (!config) {
        report("4.3.5", config.error());
        return exit_temporary;
    }
    server::PassDbOpening opening;
    opening.create_sqlite = false;
    opening.passwd_file_required = true;
    auto passdb = server::open_passdb(*config, opening);
    if (!passdb) {
        report("4.3.5", passdb.error());
        return exit_temporary;
    }
    const server::Stores stores = server::open_stores(*config);
    auto delivery_options = server::delivery_options(*config);
    // The operator's reason for a temporary failure goes on the same line as the verdict.
    auto reason = std::make_shared<std::string>();
    delivery_options.log = [reason](std::string_view line) { *reason = std::string(line); };
    const bool full_tempfail = delivery_options.quota.full_tempfail;
    delivery::LocalDelivery local(**passdb, *stores.delivery, *stores.usage, std::move(delivery_options));

    auto start = read_start();
    if (!start) {
        return start.error();
    }
    std::uint64_t declared_size = 0;
    struct stat st {};
    if (::fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
        // A file on standard input has a known size: over quota is found before reading it.
        const auto position = ::lseek(STDIN_FILENO, 0, SEEK_CUR);
        if (position >= 0 && st.st_size >= position) {
            declared_size = static_cast<std::uint64_t>(st.st_size - position) + start->bytes.size();
        }
    }
    auto recipient = local.check_user(options.user, *address, declared_size);
    if (!recipient) {
        return refuse(recipient.error(), full_tempfail, *reason);
    }
    const std::string envelope_sender = options.sender_given      ? *sender
                                        : start->from_line_sender ? *start->from_line_sender
                                                                  : std::string(unknown_sender);
    auto message = local.begin(*recipient, envelope_sender, delivery::TraceHeaders::add_missing);
    if (!message) {
        return refuse(message.error(), full_tempfail, *reason);
    }
    if (auto written = (*message)->write(start->bytes); !written) {
        return refuse(written.error(), full_tempfail, *reason);
    }
    start->bytes.clear();
    std::string buffer(read_chunk_octets, '\0');
    for (;;) {
        auto got = read_input(std::span(buffer.data(), buffer.size()));
        if (!got) {
            return got.error();
        }
        if (*got == 0) {
            break;
        }
        if (auto written = (*message)->write(std::string_view(buffer.data(), *got)); !written) {
            return refuse(written.error(), full_tempfail, *reason);
        }
    }
    if (auto committed = (*message)->commit(); !committed) {
        return refuse(committed.error(), full_tempfail, *reason);
    }
    return exit_success;
}

} // namespace

void add_deliver_command(CLI::App& app, int& exit_code)
{
    auto options = std::make_shared<DeliverOptions>();
    auto* deliver = app.add_subcommand(
        "deliver", "Store one message from standard input in a user's maildrop (an LDA, like dovecot-lda)");
    deliver->footer(std::string(help_footer));
    deliver->add_option("-u,--user", options->user, "The recipient user, as the user database names it")
        ->required();
    auto* sender = deliver->add_option("-f,--from", options->sender,
                                       "Envelope sender, for Return-Path: (\"\" for the null sender)");
    deliver->add_option("-a,--address", options->address,
                        "Recipient address, for Delivered-To: (default: USER)");
    deliver->add_option("-c,--config", options->config,
                        fmt::format("pigeond's configuration (default: {})", default_config));
    deliver->callback([options, sender, &exit_code] {
        options->sender_given = sender->count() > 0;
        exit_code = run_deliver(*options);
    });
}

int parse_error_exit_code(const CLI::App& app)
{
    for (const CLI::App* command : app.get_subcommands()) {
        if (command->get_name() == "deliver") {
            return exit_sysexits_usage;
        }
    }
    return exit_usage;
}

} // namespace pigeon::cli
