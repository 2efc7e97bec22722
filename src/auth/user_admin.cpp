#include "auth/user_admin.hpp"

#include "auth/password_scheme.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <unistd.h>

namespace pigeon::auth {
namespace {

// Long enough for user@a-long-domain; RFC 5321 §4.5.3.1 bounds an address at 254 octets.
constexpr std::size_t max_admin_user_name_octets = 255;

bool allowed_in_user_name(char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == '@';
}

AdminOutcome outcome(AdminStatus status, std::string message)
{
    return AdminOutcome{status, std::move(message)};
}

AdminOutcome database_failure(const SqlitePassDb& db, std::string_view what)
{
    return outcome(AdminStatus::failure, fmt::format("{}: {}", what, db.last_error_message()));
}

// Hashes the password with the named scheme into `stored`.
AdminOutcome hash_for(std::string_view scheme_name_text, const SecretString& password, std::string& stored)
{
    const auto scheme = scheme_from_name(scheme_name_text);
    if (!scheme) {
        return outcome(AdminStatus::invalid_input,
                       fmt::format("unknown password scheme '{}'", scheme_name_text));
    }
    if (password.view().empty()) {
        return outcome(AdminStatus::invalid_input, "empty password");
    }
    auto hashed = hash_password(*scheme, password.view());
    if (!hashed && hashed.error() == make_error_code(errc::syntax_error)) {
        return outcome(
            AdminStatus::invalid_input,
            fmt::format("{} cannot take this password (a NUL octet, or too long)", scheme_name(*scheme)));
    }
    if (!hashed) {
        return outcome(AdminStatus::failure, fmt::format("hashing with {} failed: {}", scheme_name(*scheme),
                                                         hashed.error().message()));
    }
    stored = std::move(*hashed);
    return {};
}

} // namespace

bool valid_admin_user_name(std::string_view name) noexcept
{
    if (name.empty() || name.size() > max_admin_user_name_octets || name.front() == '.' ||
        name.front() == '-') {
        return false;
    }
    return std::ranges::all_of(name, allowed_in_user_name);
}

Result<SecretString> read_secret_line(int fd)
{
    std::string line;
    // The capacity is fixed up front, so the buffer never reallocates and leaves an unwiped copy.
    line.reserve(max_password_octets + 1);
    bool any = false;
    bool too_long = false;
    for (;;) {
        // One octet at a time: nothing after the line end is consumed, and no stdio buffer keeps
        // a copy of the password.
        char octet = 0;
        const ssize_t got = ::read(fd, &octet, 1);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            wipe(line);
            return fail(std::error_code(errno, std::system_category()));
        }
        if (got == 0 || octet == '\n') {
            any = any || got > 0;
            break;
        }
        any = true;
        if (line.size() > max_password_octets) {
            too_long = true; // the rest of the line is consumed, and none of it kept
            continue;
        }
        line.push_back(octet);
    }
    if (!line.empty() && line.back() == '\r') {
        line.pop_back(); // a CRLF line end from a Windows-edited file
    }
    if (too_long || line.size() > max_password_octets) {
        wipe(line);
        return fail(errc::line_too_long);
    }
    if (!any) {
        return fail(errc::connection_closed);
    }
    return SecretString(std::move(line));
}

AdminOutcome read_new_password(const SecretLineReader& read_line, bool confirm, SecretString& password)
{
    const auto explain = [](std::error_code error) {
        if (error == make_error_code(errc::line_too_long)) {
            return outcome(AdminStatus::invalid_input,
                           fmt::format("password longer than {} octets", max_password_octets));
        }
        if (error == make_error_code(errc::connection_closed)) {
            return outcome(AdminStatus::invalid_input, "no password given");
        }
        return outcome(AdminStatus::failure, fmt::format("cannot read the password: {}", error.message()));
    };
    auto first = read_line(confirm ? "New password: " : "");
    if (!first) {
        return explain(first.error());
    }
    if (first->view().empty()) {
        return outcome(AdminStatus::invalid_input, "empty password");
    }
    if (confirm) {
        auto second = read_line("Retype new password: ");
        if (!second) {
            return explain(second.error());
        }
        if (!constant_time_equals(first->view(), second->view())) {
            return outcome(AdminStatus::invalid_input, "passwords do not match");
        }
    }
    password = std::move(*first);
    return {};
}

AdminOutcome add_user(SqlitePassDb& db, std::string_view user, std::string_view scheme,
                      const SecretString& password)
{
    if (!valid_admin_user_name(user)) {
        return outcome(AdminStatus::invalid_input,
                       fmt::format("invalid user name '{}' (letters, digits and .-_@, at most {} octets)",
                                   user.substr(0, max_admin_user_name_octets), max_admin_user_name_octets));
    }
    std::string stored;
    if (auto hashed = hash_for(scheme, password, stored); !hashed.ok()) {
        return hashed;
    }
    auto added = db.add_user(user, stored);
    wipe(stored);
    if (!added) {
        return database_failure(db, "adding the user failed");
    }
    if (!*added) {
        return outcome(AdminStatus::user_exists, fmt::format("user '{}' already exists", user));
    }
    return outcome(AdminStatus::ok, fmt::format("user '{}' added", user));
}

AdminOutcome set_password(SqlitePassDb& db, std::string_view user, std::string_view scheme,
                          const SecretString& password)
{
    // The name is looked for as given, not checked as `add` checks it, so a row added by hand
    // with a name `add` would refuse can still be managed.
    std::string stored;
    if (auto hashed = hash_for(scheme, password, stored); !hashed.ok()) {
        return hashed;
    }
    auto changed = db.set_password(user, stored);
    wipe(stored);
    if (!changed) {
        return database_failure(db, "changing the password failed");
    }
    if (!*changed) {
        return outcome(AdminStatus::no_such_user, fmt::format("no user '{}'", user));
    }
    return outcome(AdminStatus::ok, fmt::format("password of '{}' changed", user));
}

AdminOutcome delete_user(SqlitePassDb& db, std::string_view user)
{
    // Any name is looked for, as in set_password.
    auto deleted = db.delete_user(user);
    if (!deleted) {
        return database_failure(db, "deleting the user failed");
    }
    if (!*deleted) {
        return outcome(AdminStatus::no_such_user, fmt::format("no user '{}'", user));
    }
    return outcome(AdminStatus::ok, fmt::format("user '{}' deleted", user));
}

AdminOutcome list_users(SqlitePassDb& db)
{
    auto users = db.list_users();
    if (!users) {
        return database_failure(db, "listing users failed");
    }
    std::string text;
    for (const std::string& user : *users) {
        text += user;
        text += '\n';
    }
    return outcome(AdminStatus::ok, std::move(text));
}

} // namespace pigeon::auth
