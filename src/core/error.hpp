// Pigeon's error codes: one std::error_category for every failure a peer, a file or a backend
// can cause. Asio's error_code is std::error_code, so one type flows from socket to reply.
// This module knows nothing of POP3 replies; protocol/response.hpp maps codes to -ERR texts.
#pragma once

#include <string>
#include <system_error>

namespace pigeon {

enum class errc {
    ok = 0,
    // Input that breaks a rule of the protocol.
    line_too_long = 1,
    argument_too_long,
    unknown_command,
    syntax_error,
    invalid_message_number,
    bad_base64,
    malformed_response,
    // Commands that are well-formed but not possible now.
    wrong_state,
    no_such_message,
    message_deleted,
    too_many_bad_commands,
    plaintext_disallowed,
    utf8_not_enabled,
    mechanism_unsupported,
    // Authentication.
    auth_failed,
    auth_cancelled,
    auth_temporary_failure,
    login_delay,
    too_many_auth_failures,
    // Storage.
    maildrop_in_use,
    maildrop_unavailable,
    maildrop_damaged,
    message_unavailable,
    commit_failed,
    delivery_temporary_failure,
    invalid_user_name,
    // Client side.
    unexpected_reply,
    plaintext_after_stls,
    connection_closed,
};

[[nodiscard]] const std::error_category& pigeon_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept
{
    return {static_cast<int>(e), pigeon_category()};
}

} // namespace pigeon

template <>
struct std::is_error_code_enum<pigeon::errc> : std::true_type {
};
