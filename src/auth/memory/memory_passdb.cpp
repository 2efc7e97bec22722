#include "auth/memory/memory_passdb.hpp"

#include <utility>

namespace pigeon::auth {

void MemoryPassDb::add_user(std::string name, std::string password)
{
    m_users.insert_or_assign(std::move(name), std::move(password));
}

Result<std::string> MemoryPassDb::verify(const sasl::Credentials& credentials)
{
    if (auto error = std::exchange(m_fail_next, {})) {
        return fail(error);
    }
    const auto found = m_users.find(sasl::credentials_user(credentials));
    if (found == m_users.end()) {
        return fail(errc::auth_failed);
    }
    const std::string& secret = found->second;
    bool ok = false;
    if (const auto* password = std::get_if<sasl::PasswordCredentials>(&credentials)) {
        ok = constant_time_equals(password->password.view(), secret);
    } else if (const auto* apop_credentials = std::get_if<sasl::ApopCredentials>(&credentials)) {
        const auto& apop = *apop_credentials;
        ok = constant_time_equals(apop_digest(apop.timestamp, secret), apop.digest);
    }
    if (!ok) {
        return fail(errc::auth_failed);
    }
    return found->first;
}

} // namespace pigeon::auth
