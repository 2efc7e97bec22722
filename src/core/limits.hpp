// Every bound on peer input, named, with the reason for its value (shared/DESIGN.md §3).
#pragma once

#include <cstddef>
#include <cstdint>

namespace pigeon::limits {

// RFC 2449 §4: "Commands ... MUST NOT exceed 255 octets, including the terminating CRLF."
inline constexpr std::size_t max_command_line_octets = 255;

// RFC 2449 §4: "each argument may be up to 40 characters long".
inline constexpr std::size_t max_argument_octets = 40;

// RFC 5034 §4 bounds only the AUTH command line; continuation lines carry SASL tokens, and OAuth
// bearer tokens (XOAUTH2, OAUTHBEARER) exceed 2,000 octets. 16 KiB holds any token seen in
// practice while keeping a hostile client's buffer small.
inline constexpr std::size_t max_sasl_line_octets = std::size_t{16} * 1024;

// RFC 2449 §4: responses "may be up to 512 characters long, including the terminating CRLF".
// Real servers exceed it in greetings and multi-line listings, so the client accepts 8 KiB.
inline constexpr std::size_t max_response_line_octets = std::size_t{8} * 1024;

// RFC 1939 §7: a unique-id is "1 to 70 characters in the range 0x21 to 0x7E".
inline constexpr std::size_t max_unique_id_octets = 70;

// LMTP command lines (RFC 5321 §4.5.3.1.4: 512 octets, which SIZE= and BODY= parameters may
// extend, RFC 1869 §4.1.2; Postfix's line_length_limit is 2048): 2 KiB.
inline constexpr std::size_t max_lmtp_command_octets = std::size_t{2} * 1024;

// Consecutive bad commands before the server closes the connection (Dovecot uses 20; ten
// mistakes in a row is already not a confused client).
inline constexpr std::uint32_t default_max_bad_commands = 10;

// Failed authentications on one connection before it is closed.
inline constexpr std::uint32_t default_max_auth_failures = 3;

} // namespace pigeon::limits
