#include "protocol/response.hpp"

#include "core/error.hpp"

#include <array>

namespace pigeon::protocol {

std::string_view response_code_text(ResponseCode code) noexcept
{
    switch (code) {
    case ResponseCode::none: return {};
    case ResponseCode::in_use: return "IN-USE";
    case ResponseCode::login_delay: return "LOGIN-DELAY";
    case ResponseCode::sys_temp: return "SYS/TEMP";
    case ResponseCode::sys_perm: return "SYS/PERM";
    case ResponseCode::auth: return "AUTH";
    }
    return {};
}

namespace {

struct ErrorRow {
    errc error;
    ResponseCode code;
    bool closes;
    std::string_view text;
};

// The one table: for each error, its response code, whether the connection ends, and what the
// client is told. Errors not listed (an errno from a disk, say) answer
// "-ERR [SYS/TEMP] Internal error, try again later." and never show their detail to the peer.
constexpr std::array error_table{
    ErrorRow{errc::line_too_long, ResponseCode::none, false, "Line too long."},
    ErrorRow{errc::argument_too_long, ResponseCode::none, false, "Argument too long."},
    ErrorRow{errc::unknown_command, ResponseCode::none, false, "Unknown command."},
    ErrorRow{errc::syntax_error, ResponseCode::none, false, "Invalid arguments."},
    ErrorRow{errc::invalid_message_number, ResponseCode::none, false, "Invalid message number."},
    ErrorRow{errc::bad_base64, ResponseCode::none, false, "Invalid base64 data."},
    ErrorRow{errc::wrong_state, ResponseCode::none, false, "Command not valid in this state."},
    ErrorRow{errc::no_such_message, ResponseCode::none, false, "No such message."},
    ErrorRow{errc::message_deleted, ResponseCode::none, false, "Message is deleted."},
    ErrorRow{errc::too_many_bad_commands, ResponseCode::none, true, "Too many bad commands."},
    ErrorRow{errc::plaintext_disallowed, ResponseCode::auth, false,
             "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."},
    ErrorRow{errc::utf8_not_enabled, ResponseCode::none, false,
             "UTF-8 user names need the UTF8 command first."},
    ErrorRow{errc::mechanism_unsupported, ResponseCode::none, false, "Unsupported authentication mechanism."},
    ErrorRow{errc::auth_failed, ResponseCode::auth, false, "Authentication failed."},
    ErrorRow{errc::auth_cancelled, ResponseCode::none, false, "Authentication cancelled."},
    ErrorRow{errc::auth_temporary_failure, ResponseCode::sys_temp, false,
             "Temporary authentication failure, try again later."},
    ErrorRow{errc::login_delay, ResponseCode::login_delay, false, "Logged in too recently, try again later."},
    ErrorRow{errc::too_many_auth_failures, ResponseCode::auth, true, "Too many authentication failures."},
    ErrorRow{errc::maildrop_in_use, ResponseCode::in_use, false, "Maildrop is in use by another session."},
    ErrorRow{errc::maildrop_unavailable, ResponseCode::sys_temp, false,
             "Maildrop unavailable, try again later."},
    ErrorRow{errc::maildrop_damaged, ResponseCode::sys_perm, false, "Maildrop cannot be read."},
    ErrorRow{errc::message_unavailable, ResponseCode::sys_temp, false,
             "Message unavailable, try again later."},
    ErrorRow{errc::commit_failed, ResponseCode::sys_temp, true, "Some deleted messages were not removed."},
    ErrorRow{errc::delivery_temporary_failure, ResponseCode::sys_temp, false,
             "Temporary failure, try again later."},
    // A user whose name cannot become a maildrop path: retrying will not help.
    ErrorRow{errc::invalid_user_name, ResponseCode::sys_perm, false, "Maildrop unavailable for this user."},
};

const ErrorRow* find_row(std::error_code error) noexcept
{
    if (error.category() != pigeon_category()) {
        return nullptr;
    }
    for (const auto& row : error_table) {
        if (static_cast<int>(row.error) == error.value()) {
            return &row;
        }
    }
    return nullptr;
}

} // namespace

ResponseCode response_code_for(std::error_code error) noexcept
{
    const ErrorRow* row = find_row(error);
    // Errors from outside the table (an errno from a disk, say) are temporary system trouble.
    return row != nullptr ? row->code : ResponseCode::sys_temp;
}

bool error_closes_connection(std::error_code error) noexcept
{
    const ErrorRow* row = find_row(error);
    return row != nullptr && row->closes;
}

std::string_view client_text_for(std::error_code error) noexcept
{
    const ErrorRow* row = find_row(error);
    return row != nullptr ? row->text : std::string_view("Internal error, try again later.");
}

void append_ok(std::string& out, std::string_view text)
{
    out.append("+OK");
    if (!text.empty()) {
        out.push_back(' ');
        out.append(text);
    }
    out.append("\r\n");
}

void append_err(std::string& out, ResponseCode code, std::string_view text)
{
    out.append("-ERR");
    if (code != ResponseCode::none) {
        out.append(" [");
        out.append(response_code_text(code));
        out.push_back(']');
    }
    if (!text.empty()) {
        out.push_back(' ');
        out.append(text);
    }
    out.append("\r\n");
}

void append_err(std::string& out, std::error_code error)
{
    append_err(out, response_code_for(error), client_text_for(error));
}

void append_multiline_line(std::string& out, std::string_view line)
{
    if (!line.empty() && line.front() == '.') {
        out.push_back('.');
    }
    out.append(line);
    out.append("\r\n");
}

void append_multiline_end(std::string& out)
{
    out.append(".\r\n");
}

void append_continuation(std::string& out, std::string_view base64_challenge)
{
    out.append("+ ");
    out.append(base64_challenge);
    out.append("\r\n");
}

} // namespace pigeon::protocol
