// The typed POP3 commands: one struct per command of RFC 1939, RFC 2449 (CAPA), RFC 2595 (STLS),
// RFC 5034 (AUTH), RFC 6856 (UTF8) and RFC 1460 (LAST). A parsed command carries typed arguments:
// a message number is a MessageNumber, never a bare integer.
#pragma once

#include "core/message_listing.hpp"
#include "core/secret.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace pigeon::protocol {

namespace command {
struct User {
    std::string name;
};
struct Pass {
    SecretString password;
};
struct Apop {
    std::string name;
    std::string digest;
};
struct Auth {
    std::optional<std::string> mechanism;        // absent: list mechanisms (RFC 1734 habit)
    std::optional<std::string> initial_response; // still base64; "=" means an empty response
};
struct Quit {};
struct Stat {};
struct List {
    std::optional<MessageNumber> message;
};
struct Retr {
    MessageNumber message;
};
struct Dele {
    MessageNumber message;
};
struct Noop {};
struct Rset {};
struct Top {
    MessageNumber message;
    std::uint32_t body_lines = 0;
};
struct Uidl {
    std::optional<MessageNumber> message;
};
struct Capa {};
struct Stls {};
struct Utf8 {};
struct Last {};
} // namespace command

using Command =
    std::variant<command::User, command::Pass, command::Apop, command::Auth, command::Quit, command::Stat,
                 command::List, command::Retr, command::Dele, command::Noop, command::Rset, command::Top,
                 command::Uidl, command::Capa, command::Stls, command::Utf8, command::Last>;

// The keyword of a command, for logs and tests.
[[nodiscard]] std::string_view command_keyword(const Command& command) noexcept;

} // namespace pigeon::protocol
