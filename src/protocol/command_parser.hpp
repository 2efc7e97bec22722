// Parses one POP3 command line (without its CRLF) into a typed Command. Keywords are
// case-insensitive (RFC 1939 §3); arguments are separated by spaces and each is at most 40
// octets (RFC 2449 §4), except PASS, whose single argument is the rest of the line and may hold
// spaces (RFC 1939 §7). Line splitting and the 255-octet line bound are LineReader's.
#pragma once

#include "core/result.hpp"
#include "protocol/command.hpp"

#include <string_view>

namespace pigeon::protocol {

[[nodiscard]] Result<Command> parse_command(std::string_view line);

} // namespace pigeon::protocol
