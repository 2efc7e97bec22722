#include "core/error.hpp"

namespace pigeon {
namespace {

class PigeonCategory final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "pigeon"; }

    // These texts go to logs and to people, never to the peer: protocol/response.cpp owns what a
    // client is told (shared/DESIGN.md §7: text shown to the peer is kept apart from log text).
    [[nodiscard]] std::string message(int value) const override
    {
        switch (static_cast<errc>(value)) {
        case errc::ok: return "success";
        case errc::line_too_long: return "line too long";
        case errc::argument_too_long: return "argument too long";
        case errc::unknown_command: return "unknown command";
        case errc::syntax_error: return "syntax error";
        case errc::invalid_message_number: return "invalid message number";
        case errc::bad_base64: return "invalid base64 data";
        case errc::malformed_response: return "malformed response";
        case errc::wrong_state: return "command not valid in this state";
        case errc::no_such_message: return "no such message";
        case errc::message_deleted: return "message is deleted";
        case errc::too_many_bad_commands: return "too many bad commands";
        case errc::plaintext_disallowed: return "plaintext authentication disallowed";
        case errc::utf8_not_enabled: return "UTF-8 not enabled";
        case errc::mechanism_unsupported: return "unsupported authentication mechanism";
        case errc::auth_failed: return "authentication failed";
        case errc::auth_cancelled: return "authentication cancelled";
        case errc::auth_temporary_failure: return "temporary authentication failure";
        case errc::login_delay: return "login too soon after the previous one";
        case errc::too_many_auth_failures: return "too many authentication failures";
        case errc::maildrop_in_use: return "maildrop in use";
        case errc::maildrop_unavailable: return "maildrop unavailable";
        case errc::maildrop_damaged: return "maildrop damaged";
        case errc::message_unavailable: return "message unavailable";
        case errc::commit_failed: return "deletions not committed";
        case errc::delivery_temporary_failure: return "temporary delivery failure";
        case errc::invalid_user_name: return "user name not usable as a maildrop path";
        case errc::unexpected_reply: return "unexpected reply";
        case errc::plaintext_after_stls: return "server sent data after STLS +OK before TLS";
        case errc::connection_closed: return "connection closed";
        }
        return "unknown pigeon error";
    }
};

} // namespace

const std::error_category& pigeon_category() noexcept
{
    static const PigeonCategory category;
    return category;
}

} // namespace pigeon
