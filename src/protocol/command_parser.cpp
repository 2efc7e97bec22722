#include "protocol/command_parser.hpp"

#include "core/limits.hpp"
#include "core/strings.hpp"

#include <array>

namespace pigeon::protocol {
namespace {

// Splits "ARG1 ARG2" into at most `max` arguments. Runs of spaces count as one separator, so a
// client that sends "LIST  1" is understood; tabs and other controls are not separators.
struct Arguments {
    std::array<std::string_view, 3> items{};
    std::size_t count = 0;
    bool too_many = false;
};

Arguments split_arguments(std::string_view rest, std::size_t max)
{
    Arguments args;
    std::size_t pos = 0;
    while (pos < rest.size()) {
        while (pos < rest.size() && rest[pos] == ' ') {
            ++pos;
        }
        if (pos == rest.size()) {
            break;
        }
        std::size_t end = rest.find(' ', pos);
        if (end == std::string_view::npos) {
            end = rest.size();
        }
        if (args.count == max) {
            args.too_many = true;
            break;
        }
        args.items[args.count++] = rest.substr(pos, end - pos);
        pos = end;
    }
    return args;
}

Result<MessageNumber> parse_message_number(std::string_view text)
{
    const auto value = parse_u32(text);
    if (!value || *value == 0) {
        return fail(errc::invalid_message_number);
    }
    return MessageNumber{*value};
}

enum class Verb {
    user,
    pass,
    apop,
    auth,
    quit,
    stat,
    list,
    retr,
    dele,
    noop,
    rset,
    top,
    uidl,
    capa,
    stls,
    utf8,
    last
};

struct VerbName {
    std::string_view name;
    Verb verb;
};

constexpr std::array<VerbName, 17> verbs{{
    {"USER", Verb::user},
    {"PASS", Verb::pass},
    {"APOP", Verb::apop},
    {"AUTH", Verb::auth},
    {"QUIT", Verb::quit},
    {"STAT", Verb::stat},
    {"LIST", Verb::list},
    {"RETR", Verb::retr},
    {"DELE", Verb::dele},
    {"NOOP", Verb::noop},
    {"RSET", Verb::rset},
    {"TOP", Verb::top},
    {"UIDL", Verb::uidl},
    {"CAPA", Verb::capa},
    {"STLS", Verb::stls},
    {"UTF8", Verb::utf8},
    {"LAST", Verb::last},
}};

} // namespace

Result<Command> parse_command(std::string_view line)
{
    const std::size_t space = line.find(' ');
    const std::string_view keyword = line.substr(0, space);
    const std::string_view rest =
        space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
    const VerbName* match = nullptr;
    for (const auto& candidate : verbs) {
        if (iequals(keyword, candidate.name)) {
            match = &candidate;
            break;
        }
    }
    if (match == nullptr) {
        return fail(errc::unknown_command);
    }

    // PASS takes the rest of the line verbatim (RFC 1939 §7: "a POP3 server may treat spaces in
    // the argument as part of the password"). The line bound already limits its length.
    if (match->verb == Verb::pass) {
        if (rest.empty() || has_control_characters(rest)) {
            return fail(errc::syntax_error);
        }
        return command::Pass{SecretString(std::string(rest))};
    }

    if (has_control_characters(rest)) {
        return fail(errc::syntax_error);
    }
    const Arguments args = split_arguments(rest, 2);
    if (args.too_many) {
        return fail(errc::syntax_error);
    }
    const bool is_auth = match->verb == Verb::auth;
    for (std::size_t i = 0; i < args.count; ++i) {
        // The AUTH initial response is bounded by the command line instead (RFC 5034 §4).
        if (is_auth && i == 1) {
            continue;
        }
        if (args.items[i].size() > limits::max_argument_octets) {
            return fail(errc::argument_too_long);
        }
    }
    const auto arity = [&](std::size_t minimum, std::size_t maximum) {
        return args.count >= minimum && args.count <= maximum;
    };

    switch (match->verb) {
    case Verb::user:
        if (!arity(1, 1)) {
            return fail(errc::syntax_error);
        }
        return command::User{std::string(args.items[0])};
    case Verb::apop:
        if (!arity(2, 2)) {
            return fail(errc::syntax_error);
        }
        return command::Apop{std::string(args.items[0]), std::string(args.items[1])};
    case Verb::auth: {
        command::Auth auth;
        if (args.count >= 1) {
            auth.mechanism = to_ascii_upper(args.items[0]);
        }
        if (args.count == 2) {
            auth.initial_response = std::string(args.items[1]);
        }
        return auth;
    }
    case Verb::list:
    case Verb::uidl: {
        if (!arity(0, 1)) {
            return fail(errc::syntax_error);
        }
        std::optional<MessageNumber> number;
        if (args.count == 1) {
            auto parsed = parse_message_number(args.items[0]);
            if (!parsed) {
                return fail(parsed.error());
            }
            number = *parsed;
        }
        if (match->verb == Verb::list) {
            return command::List{number};
        }
        return command::Uidl{number};
    }
    case Verb::retr:
    case Verb::dele: {
        if (!arity(1, 1)) {
            return fail(errc::syntax_error);
        }
        auto number = parse_message_number(args.items[0]);
        if (!number) {
            return fail(number.error());
        }
        if (match->verb == Verb::retr) {
            return command::Retr{*number};
        }
        return command::Dele{*number};
    }
    case Verb::top: {
        if (!arity(2, 2)) {
            return fail(errc::syntax_error);
        }
        auto number = parse_message_number(args.items[0]);
        if (!number) {
            return fail(number.error());
        }
        // RFC 1939 §7: "a non-negative number of lines".
        const auto lines = parse_u32(args.items[1]);
        if (!lines) {
            return fail(errc::syntax_error);
        }
        return command::Top{*number, *lines};
    }
    case Verb::quit:
    case Verb::stat:
    case Verb::noop:
    case Verb::rset:
    case Verb::capa:
    case Verb::stls:
    case Verb::utf8:
    case Verb::last:
        if (args.count != 0) {
            return fail(errc::syntax_error);
        }
        switch (match->verb) {
        case Verb::quit: return command::Quit{};
        case Verb::stat: return command::Stat{};
        case Verb::noop: return command::Noop{};
        case Verb::rset: return command::Rset{};
        case Verb::capa: return command::Capa{};
        case Verb::stls: return command::Stls{};
        case Verb::utf8: return command::Utf8{};
        default: return command::Last{};
        }
    case Verb::pass: break; // handled above
    }
    return fail(errc::unknown_command);
}

std::string_view command_keyword(const Command& command) noexcept
{
    static constexpr std::array<std::string_view, std::variant_size_v<Command>> keywords{
        "USER", "PASS", "APOP", "AUTH", "QUIT", "STAT", "LIST", "RETR", "DELE",
        "NOOP", "RSET", "TOP",  "UIDL", "CAPA", "STLS", "UTF8", "LAST"};
    return keywords[command.index()];
}

} // namespace pigeon::protocol
