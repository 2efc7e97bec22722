// Maildrop locations from a template, as Dovecot's mail_location does: %u is the whole user
// name, %n its local part (before "@"), %d its domain (after "@", empty if none), %% a "%".
// The user name comes from the peer, so it is checked before it becomes part of a path: no "/",
// no NUL or other control characters, not "." or "..", nothing starting with "." (no hidden or
// parent directories), and at most 255 octets.
#pragma once

#include "core/result.hpp"

#include <string>
#include <string_view>

namespace pigeon::storage {

[[nodiscard]] bool is_safe_path_user(std::string_view user) noexcept;

// errc::invalid_user_name for a user name that is not safe in a path.
[[nodiscard]] Result<std::string> expand_path_template(std::string_view path_template, std::string_view user);

} // namespace pigeon::storage
