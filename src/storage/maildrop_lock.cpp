#include "storage/maildrop_lock.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/file.h>

namespace pigeon::storage {

MaildropLock::~MaildropLock()
{
    m_registry.release(m_path, this);
}

LockRegistry& LockRegistry::process()
{
    static LockRegistry registry;
    return registry;
}

Result<std::shared_ptr<MaildropLock>> LockRegistry::acquire(const std::string& lock_path, bool takeover)
{
    const std::lock_guard guard(m_mutex);
    auto found = m_held.find(lock_path);
    if (found != m_held.end()) {
        auto current = found->second.holder.lock();
        if (current && !takeover) {
            return fail(errc::maildrop_in_use);
        }
        if (current) {
            current->m_revoked = true;
        }
        auto holder = std::make_shared<MaildropLock>(*this, lock_path);
        found->second.holder = holder;
        return holder;
    }
    UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        return fail(last_errno());
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            return fail(errc::maildrop_in_use); // another process's session
        }
        return fail(last_errno());
    }
    auto holder = std::make_shared<MaildropLock>(*this, lock_path);
    m_held.emplace(lock_path, Entry{std::move(fd), holder});
    return holder;
}

void LockRegistry::release(const std::string& lock_path, const MaildropLock* holder)
{
    const std::lock_guard guard(m_mutex);
    const auto found = m_held.find(lock_path);
    if (found == m_held.end()) {
        return;
    }
    const auto current = found->second.holder.lock();
    // A revoked holder leaves the lock to the session that took it over. While the current
    // holder is being destroyed its weak_ptr has already expired.
    if (!current || current.get() == holder) {
        m_held.erase(found); // closing the file releases the flock
    }
}

} // namespace pigeon::storage
