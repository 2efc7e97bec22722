#include "read_commands.hpp"

#include "client/account.hpp"
#include "client/mail_reader.hpp"
#include "exit_codes.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/ioctl.h>
#include <unistd.h>

namespace pigeon::cli {
namespace {

constexpr std::string_view store_help =
    R"(The store is the Maildir or mbox an account of fetch.toml delivers to (its deliver_to): the
account named by --account, else the FIRST account in name order (the order pigeon fetch goes
through them), so that `pigeon ls` and `pigeon show N` always read the same store; or any
Maildir or mbox named with --store. An account that delivers to a command or to an IMAP server
has nothing local to read.

Messages are numbered from 1 in the order they arrived (Maildir: the time in the file name, then
the name; mbox: file order); `pigeon ls` and `pigeon show N` agree on the numbers while the
store does not change. Nothing is modified: reading a message does not mark it seen.)";

constexpr std::string_view exit_help = R"(Exit codes:
  0   done
  2   usage or configuration error: unknown account, no such store or message, a fetch.toml error
  75  the store or a message could not be read (an I/O error, a permission))";

// Columns that are not the subject: number, flag, date, sender, size, and the spaces between.
constexpr std::size_t sender_columns = 20;
constexpr std::size_t size_columns = 5;
// The subject's columns when standard output is not a terminal (nothing is cut then).
constexpr std::size_t untruncated_subject_columns = 50;
constexpr std::size_t min_subject_columns = 10;

struct StoreOptions {
    std::string account;
    std::string config;
    std::string store;
};

struct LsOptions {
    StoreOptions from;
    bool json = false;
};

struct ShowOptions {
    StoreOptions from;
    std::uint64_t number = 0;
    bool raw = false;
};

void complain(std::string_view command, std::string_view message)
{
    fmt::print(stderr, "pigeon {}: {}\n", command, message);
}

struct ChosenStore {
    client::StoreLocation location;
    std::string account; // empty with --store
};

// The store to read, or the exit code to end with (the message is already on standard error).
tl::expected<ChosenStore, int> choose_store(std::string_view command, const StoreOptions& options)
{
    if (!options.store.empty()) {
        auto location = client::parse_store_location(options.store);
        if (!location) {
            complain(command, fmt::format("--store {}: expected maildir:PATH or mbox:PATH", options.store));
            return tl::unexpected(exit_usage);
        }
        return ChosenStore{std::move(*location), {}};
    }
    const std::string file = options.config.empty() ? client::default_accounts_file() : options.config;
    auto accounts = client::load_accounts(file);
    if (!accounts) {
        complain(command, fmt::format("{} (or name a store with --store maildir:PATH)", accounts.error()));
        return tl::unexpected(exit_usage);
    }
    if (accounts->empty()) {
        complain(command, fmt::format("{}: no accounts (or name a store with --store maildir:PATH)", file));
        return tl::unexpected(exit_usage);
    }
    const auto account =
        options.account.empty()
            ? accounts->begin()
            : std::find_if(accounts->begin(), accounts->end(),
                           [&options](const client::Account& a) { return a.name == options.account; });
    if (account == accounts->end()) {
        complain(command, fmt::format("{}: no account \"{}\"", file, options.account));
        return tl::unexpected(exit_usage);
    }
    auto location = client::parse_store_location(account->deliver_to);
    if (!location) {
        const std::string_view target = account->deliver_to;
        if (target.starts_with("command:") || target.starts_with("imap:")) {
            complain(command, fmt::format("account {} {}", account->name, location.error()));
        } else {
            complain(command, fmt::format("account {}: deliver_to: {}", account->name, location.error()));
        }
        return tl::unexpected(exit_usage);
    }
    return ChosenStore{std::move(*location), account->name};
}

tl::expected<client::MailStore, int> open_store(std::string_view command, const ChosenStore& chosen)
{
    auto store = client::MailStore::open(chosen.location);
    if (!store) {
        using Kind = client::StoreError::Kind;
        const Kind kind = store.error().kind;
        if (kind == Kind::not_found) {
            complain(command, fmt::format("{} does not exist{}", client::describe(chosen.location),
                                          chosen.account.empty() ? "" : " (nothing fetched yet?)"));
        } else {
            complain(command, client::terminal_safe(store.error().text, false));
        }
        return tl::unexpected(kind == Kind::io ? exit_temporary : exit_usage);
    }
    return std::move(*store);
}

void add_store_options(CLI::App& command, StoreOptions& options)
{
    auto* account =
        command.add_option("-a,--account", options.account,
                           "Account of fetch.toml whose store to read (default: the first by name)");
    command.add_option("-c,--config", options.config,
                       "Accounts file (default: $XDG_CONFIG_HOME/pigeon/fetch.toml)");
    command.add_option("--store", options.store, "Read this store instead: maildir:PATH or mbox:PATH")
        ->excludes(account);
}

void write_out(std::string_view text)
{
    static_cast<void>(std::fwrite(text.data(), 1, text.size(), stdout));
}

// The terminal's width, $COLUMNS, or nothing when standard output is not a terminal.
std::optional<std::size_t> terminal_columns()
{
    if (::isatty(STDOUT_FILENO) != 1) {
        return std::nullopt;
    }
    winsize size{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
        return size.ws_col;
    }
    if (const char* columns = std::getenv("COLUMNS"); columns != nullptr) { // NOLINT(concurrency-mt-unsafe)
        const long value = std::strtol(columns, nullptr, 10);
        if (value > 0 && value < 10'000) {
            return static_cast<std::size_t>(value);
        }
    }
    return 80;
}

std::string local_date(const std::optional<std::int64_t>& seconds)
{
    if (!seconds) {
        return "-";
    }
    const auto time = static_cast<std::time_t>(*seconds);
    std::tm parts{};
    std::array<char, 32> text{};
    if (::localtime_r(&time, &parts) == nullptr) {
        return "-";
    }
    return {text.data(), std::strftime(text.data(), text.size(), "%Y-%m-%d %H:%M", &parts)};
}

std::optional<std::string> utc_date(const std::optional<std::int64_t>& seconds)
{
    if (!seconds) {
        return std::nullopt;
    }
    const auto time = static_cast<std::time_t>(*seconds);
    std::tm parts{};
    std::array<char, 32> text{};
    if (::gmtime_r(&time, &parts) == nullptr) {
        return std::nullopt;
    }
    return std::string(text.data(), std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &parts));
}

// `text` padded with spaces to at least `columns` columns.
std::string pad(std::string text, std::size_t columns)
{
    const std::size_t width = client::display_width(text);
    text.append(columns > width ? columns - width : 0, ' ');
    return text;
}

// `text` cut or padded with spaces to exactly `columns` columns.
std::string fit(std::string_view text, std::size_t columns)
{
    return pad(client::truncate_to_width(text, columns), columns);
}

int run_ls(const LsOptions& options)
{
    const auto chosen = choose_store("ls", options.from);
    if (!chosen) {
        return chosen.error();
    }
    const auto store = open_store("ls", *chosen);
    if (!store) {
        return store.error();
    }
    const std::uint32_t count = store->message_count();
    if (options.json) {
        nlohmann::json messages = nlohmann::json::array();
        for (std::uint32_t i = 0; i < count; ++i) {
            const auto summary = store->summarize(MessageIndex{i});
            nlohmann::json entry = {
                {"number", i + 1},          {"date", utc_date(summary.date).value_or("")},
                {"sender", summary.sender}, {"subject", summary.subject},
                {"octets", summary.octets},
            };
            if (!summary.date) {
                entry["date"] = nullptr;
            }
            entry["seen"] = summary.seen ? nlohmann::json(*summary.seen) : nlohmann::json(nullptr);
            if (!summary.error.empty()) {
                entry["error"] = summary.error;
            }
            messages.push_back(std::move(entry));
        }
        nlohmann::json out = {{"store", client::describe(chosen->location)},
                              {"messages", std::move(messages)}};
        out["account"] = chosen->account.empty() ? nlohmann::json(nullptr) : nlohmann::json(chosen->account);
        std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        return exit_success;
    }
    if (count == 0) {
        complain("ls", fmt::format("{} holds no messages", client::describe(chosen->location)));
        return exit_success;
    }
    const std::size_t number_columns = std::to_string(count).size();
    // number, space, flag, space, date (16), two spaces, sender, two spaces, subject, two spaces, size
    const std::size_t fixed = number_columns + 1 + 1 + 1 + 16 + 2 + sender_columns + 2 + 2 + size_columns;
    const auto columns = terminal_columns();
    const std::size_t subject_columns =
        columns ? std::max(min_subject_columns, *columns > fixed ? *columns - fixed : 0)
                : untruncated_subject_columns;
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto summary = store->summarize(MessageIndex{i});
        const std::string sender = summary.sender.empty() ? "(unknown)" : summary.sender;
        std::string subject = summary.subject.empty() ? "(no subject)" : summary.subject;
        if (!summary.error.empty()) {
            subject = "(unreadable: " + summary.error + ")";
        }
        const std::string subject_field =
            columns ? fit(subject, subject_columns) : pad(subject, subject_columns);
        write_out(fmt::format("{:>{}} {} {:<16}  {}  {}  {:>{}}\n", i + 1, number_columns,
                              summary.seen.value_or(true) ? ' ' : 'N', local_date(summary.date),
                              fit(sender, sender_columns), subject_field, client::human_size(summary.octets),
                              size_columns));
    }
    return exit_success;
}

// Writes a message as stored; on a terminal its control characters are replaced, so that even
// --raw cannot send escape sequences to it (a pipe or a file gets the octets unchanged).
int show_raw(const client::MailStore& store, MessageIndex index)
{
    const bool terminal = ::isatty(STDOUT_FILENO) == 1;
    std::string pending;
    const auto written = store.write_raw(index, [&pending, terminal](std::string_view piece) {
        if (!terminal) {
            write_out(piece);
            return std::ferror(stdout) == 0;
        }
        pending.append(piece);
        std::size_t ready = client::complete_utf8_prefix(pending);
        if (ready > 0 && pending[ready - 1] == '\r') {
            --ready; // decided by the next octet: CR LF or a lone CR
        }
        write_out(client::terminal_safe(std::string_view(pending).substr(0, ready), true));
        pending.erase(0, ready);
        return std::ferror(stdout) == 0;
    });
    write_out(client::terminal_safe(pending, true));
    if (!written) {
        complain("show", client::terminal_safe(written.error(), false));
        return exit_temporary;
    }
    return exit_success;
}

int run_show(const ShowOptions& options)
{
    const auto chosen = choose_store("show", options.from);
    if (!chosen) {
        return chosen.error();
    }
    const auto store = open_store("show", *chosen);
    if (!store) {
        return store.error();
    }
    const std::uint32_t count = store->message_count();
    if (options.number == 0 || options.number > count) {
        complain("show", fmt::format("no message {}: {} holds {} message{}{}", options.number,
                                     client::describe(chosen->location), count, count == 1 ? "" : "s",
                                     count == 0 ? "" : fmt::format(" (1-{})", count)));
        return exit_usage;
    }
    const MessageNumber number{static_cast<std::uint32_t>(options.number)};
    if (options.raw) {
        return show_raw(*store, number.to_index());
    }
    const auto rendered = store->render(number.to_index());
    if (!rendered) {
        complain("show", client::terminal_safe(rendered.error(), false));
        return exit_temporary;
    }
    write_out(client::format_rendered(*rendered));
    return exit_success;
}

} // namespace

void add_ls_command(CLI::App& app, int& exit_code)
{
    auto options = std::make_shared<LsOptions>();
    auto* ls =
        app.add_subcommand("ls", "List the messages pigeon fetch stored (date, sender, subject, size)");
    add_store_options(*ls, options->from);
    ls->add_flag("--json", options->json, "Print the list as JSON on standard output");
    ls->footer(
        fmt::format("{}\n\nColumns: number, N for a message not yet seen (Maildir's S flag, mbox's Status "
                    "field),\nthe date (the Date field, else the arrival time; local time), the sender, the "
                    "subject\n(RFC 2047-decoded) and the size as stored.\n\n{}",
                    store_help, exit_help));
    ls->callback([options, &exit_code] { exit_code = run_ls(*options); });
}

void add_show_command(CLI::App& app, int& exit_code)
{
    auto options = std::make_shared<ShowOptions>();
    auto* show = app.add_subcommand("show", "Print a stored message as readable text");
    show->add_option("number", options->number, "Message number, as pigeon ls shows it")->required();
    add_store_options(*show, options->from);
    show->add_flag("--raw", options->raw, "Print the message as stored (mbox quoting undone)");
    show->footer(fmt::format(
        "{}\n\nThe readable form has the Date, From, To, Cc and Subject fields decoded, the text part (or\n"
        "the HTML part made text) decoded to UTF-8, at most {} MiB of it, and a list of the\n"
        "attachments. Only the first {} MiB of a message are read. Control characters are\n"
        "replaced, so a message cannot send escape sequences to the terminal; --raw keeps them when\n"
        "standard output is not a terminal.\n\n{}",
        store_help, client::max_body_text_octets >> 20U, client::max_render_input_octets >> 20U, exit_help));
    show->callback([options, &exit_code] { exit_code = run_show(*options); });
}

} // namespace pigeon::cli
