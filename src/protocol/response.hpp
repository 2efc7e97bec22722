// Writing POP3 responses (RFC 1939 §3): status lines, multi-line responses, SASL continuations,
// and the response codes of RFC 2449 §8 and RFC 3206 from one table. Also the one place that
// decides whether an error is answered with -ERR or ends the connection (shared/DESIGN.md §7).
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace pigeon::protocol {

enum class ResponseCode {
    none,
    in_use,      // RFC 2449 §8.1.2 [IN-USE]: the maildrop is locked by another session
    login_delay, // RFC 2449 §8.1.1 [LOGIN-DELAY]: logged in too recently
    sys_temp,    // RFC 3206 §4 [SYS/TEMP]: a temporary system problem
    sys_perm,    // RFC 3206 §4 [SYS/PERM]: a permanent system problem
    auth,        // RFC 3206 §5 [AUTH]: a problem with the credentials
};

// The text between the brackets, e.g. "SYS/TEMP"; empty for ResponseCode::none.
[[nodiscard]] std::string_view response_code_text(ResponseCode code) noexcept;

// The code a client should see for an error, from the one table.
[[nodiscard]] ResponseCode response_code_for(std::error_code error) noexcept;

// Whether an error leaves the session unable to continue safely, so the connection is closed
// after the -ERR.
[[nodiscard]] bool error_closes_connection(std::error_code error) noexcept;

// The human-readable text a client sees for an error (no internal detail).
[[nodiscard]] std::string_view client_text_for(std::error_code error) noexcept;

void append_ok(std::string& out, std::string_view text);
void append_err(std::string& out, ResponseCode code, std::string_view text);
// "-ERR [CODE] text" with the code and text the tables give for `error`.
void append_err(std::string& out, std::error_code error);
// A line of a multi-line response: the caller guarantees it holds no CR or LF; a leading "." is
// doubled (RFC 1939 §3).
void append_multiline_line(std::string& out, std::string_view line);
void append_multiline_end(std::string& out);
// RFC 5034 §4: "+ " followed by the base64 challenge.
void append_continuation(std::string& out, std::string_view base64_challenge);

} // namespace pigeon::protocol
