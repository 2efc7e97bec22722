#include "auth/memory/memory_passdb.hpp"

#include <utility>

namespace pigeon::auth {

void MemoryPassDb::add_user(std::string name, std::string password)
{
    UserRecord record;
    record.name = std::move(name);
    record.password = SecretString("{PLAIN}" + password);
    wipe(password);
    add_record(std::move(record));
}

void MemoryPassDb::add_record(UserRecord record)
{
    const std::lock_guard guard(m_mutex);
    std::string key = record.name;
    m_users.insert_or_assign(std::move(key), std::move(record));
}

void MemoryPassDb::fail_next(std::error_code error)
{
    const std::lock_guard guard(m_mutex);
    m_fail_next = error;
}

Result<std::optional<UserRecord>> MemoryPassDb::lookup(std::string_view user)
{
    const std::lock_guard guard(m_mutex);
    if (auto error = std::exchange(m_fail_next, {})) {
        return fail(error);
    }
    const auto found = m_users.find(user);
    if (found == m_users.end()) {
        return std::optional<UserRecord>{};
    }
    return std::optional<UserRecord>{found->second.copy()};
}

} // namespace pigeon::auth
