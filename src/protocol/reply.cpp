#include "protocol/reply.hpp"

#include "core/limits.hpp"
#include "core/strings.hpp"

#include <algorithm>

namespace pigeon::protocol {

ResponseCode Reply::known_code() const noexcept
{
    // RFC 2449 §8: codes are hierarchical; a client that knows "SYS/TEMP" treats "SYS/TEMP/X" as it.
    const auto matches = [&](std::string_view known) {
        return code.size() >= known.size() &&
               iequals(std::string_view(code).substr(0, known.size()), known) &&
               (code.size() == known.size() || code[known.size()] == '/');
    };
    if (matches("IN-USE")) {
        return ResponseCode::in_use;
    }
    if (matches("LOGIN-DELAY")) {
        return ResponseCode::login_delay;
    }
    if (matches("SYS/TEMP")) {
        return ResponseCode::sys_temp;
    }
    if (matches("SYS/PERM")) {
        return ResponseCode::sys_perm;
    }
    if (matches("AUTH")) {
        return ResponseCode::auth;
    }
    return ResponseCode::none;
}

Result<Reply> parse_reply(std::string_view line)
{
    Reply reply;
    std::string_view rest;
    if (line.starts_with("+OK")) {
        reply.kind = Reply::Kind::ok;
        rest = line.substr(3);
    } else if (line.starts_with("-ERR")) {
        reply.kind = Reply::Kind::err;
        rest = line.substr(4);
    } else if (line.starts_with("+")) {
        // RFC 5034 §4: "+" SP base64; some servers send a bare "+" for an empty challenge.
        reply.kind = Reply::Kind::continuation;
        rest = line.substr(1);
        if (!rest.empty() && rest.front() == ' ') {
            rest.remove_prefix(1);
        }
        reply.text = std::string(rest);
        return reply;
    } else {
        return fail(errc::malformed_response);
    }
    if (!rest.empty() && rest.front() != ' ') {
        return fail(errc::malformed_response); // "+OKAY" is not "+OK"
    }
    while (!rest.empty() && rest.front() == ' ') {
        rest.remove_prefix(1);
    }
    if (rest.starts_with("[")) {
        const std::size_t close = rest.find(']');
        if (close != std::string_view::npos) {
            reply.code = std::string(rest.substr(1, close - 1));
            rest.remove_prefix(close + 1);
            while (!rest.empty() && rest.front() == ' ') {
                rest.remove_prefix(1);
            }
        }
    }
    reply.text = std::string(rest);
    return reply;
}

std::optional<std::string> apop_timestamp(std::string_view greeting_text)
{
    const std::size_t close = greeting_text.rfind('>');
    if (close == std::string_view::npos) {
        return std::nullopt;
    }
    const std::size_t open = greeting_text.rfind('<', close);
    if (open == std::string_view::npos) {
        return std::nullopt;
    }
    const std::string_view stamp = greeting_text.substr(open, close - open + 1);
    // A msg-id (RFC 822): it holds an "@"; no spaces or controls.
    if (stamp.find('@') == std::string_view::npos || stamp.find(' ') != std::string_view::npos ||
        has_control_characters(stamp) || stamp.size() < 3) {
        return std::nullopt;
    }
    return std::string(stamp);
}

namespace {

// Splits "a b" at the first run of spaces; both parts non-empty.
std::optional<std::pair<std::string_view, std::string_view>> split_two(std::string_view text)
{
    while (!text.empty() && text.front() == ' ') {
        text.remove_prefix(1);
    }
    const std::size_t space = text.find(' ');
    if (space == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view first = text.substr(0, space);
    std::string_view second = text.substr(space + 1);
    while (!second.empty() && second.front() == ' ') {
        second.remove_prefix(1);
    }
    // Anything after the second field is ignored (RFC 1939 §5: servers may append text).
    const std::size_t end = second.find(' ');
    second = second.substr(0, end);
    if (first.empty() || second.empty()) {
        return std::nullopt;
    }
    return std::pair{first, second};
}

} // namespace

Result<MaildropStat> parse_stat(std::string_view text)
{
    const auto parts = split_two(text);
    if (!parts) {
        return fail(errc::malformed_response);
    }
    const auto messages = parse_u32(parts->first);
    const auto octets = parse_u64(parts->second);
    if (!messages || !octets) {
        return fail(errc::malformed_response);
    }
    return MaildropStat{*messages, *octets};
}

Result<ScanListing> parse_scan_listing(std::string_view line)
{
    const auto parts = split_two(line);
    if (!parts) {
        return fail(errc::malformed_response);
    }
    const auto number = parse_u32(parts->first);
    const auto octets = parse_u64(parts->second);
    if (!number || *number == 0 || !octets) {
        return fail(errc::malformed_response);
    }
    return ScanListing{MessageNumber{*number}, *octets};
}

Result<UniqueIdListing> parse_unique_id_listing(std::string_view line)
{
    const auto parts = split_two(line);
    if (!parts) {
        return fail(errc::malformed_response);
    }
    const auto number = parse_u32(parts->first);
    if (!number || *number == 0) {
        return fail(errc::malformed_response);
    }
    const std::string_view uid = parts->second;
    // RFC 1939 §7: 1-70 octets in 0x21-0x7E.
    if (uid.size() > limits::max_unique_id_octets) {
        return fail(errc::malformed_response);
    }
    for (const char c : uid) {
        if (c < 0x21 || c > 0x7E) {
            return fail(errc::malformed_response);
        }
    }
    return UniqueIdListing{MessageNumber{*number}, std::string(uid)};
}

bool Capabilities::has_mechanism(std::string_view name) const noexcept
{
    return std::ranges::any_of(sasl_mechanisms,
                               [&](const std::string& mechanism) { return iequals(mechanism, name); });
}

void add_capability_line(Capabilities& caps, std::string_view line)
{
    const std::size_t space = line.find(' ');
    const std::string_view tag = line.substr(0, space);
    std::string_view args = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
    const auto first_arg = [&]() { return args.substr(0, args.find(' ')); };
    if (iequals(tag, "TOP")) {
        caps.top = true;
    } else if (iequals(tag, "UIDL")) {
        caps.uidl = true;
    } else if (iequals(tag, "USER")) {
        caps.user = true;
    } else if (iequals(tag, "RESP-CODES")) {
        caps.resp_codes = true;
    } else if (iequals(tag, "AUTH-RESP-CODE")) {
        caps.auth_resp_code = true;
    } else if (iequals(tag, "PIPELINING")) {
        caps.pipelining = true;
    } else if (iequals(tag, "STLS")) {
        caps.stls = true;
    } else if (iequals(tag, "UTF8")) {
        caps.utf8 = true;
    } else if (iequals(tag, "SASL")) {
        caps.sasl_mechanisms.clear();
        while (!args.empty()) {
            const std::size_t end = args.find(' ');
            const std::string_view mechanism = args.substr(0, end);
            if (!mechanism.empty()) {
                caps.sasl_mechanisms.push_back(to_ascii_upper(mechanism));
            }
            args = end == std::string_view::npos ? std::string_view{} : args.substr(end + 1);
        }
    } else if (iequals(tag, "LOGIN-DELAY")) {
        caps.login_delay_seconds = parse_u32(first_arg());
    } else if (iequals(tag, "EXPIRE")) {
        const std::string_view value = first_arg();
        if (iequals(value, "NEVER")) {
            caps.expire_never = true;
            caps.expire_days.reset();
        } else {
            caps.expire_days = parse_u32(value);
        }
    } else if (iequals(tag, "IMPLEMENTATION")) {
        caps.implementation = std::string(args);
    }
}

} // namespace pigeon::protocol
