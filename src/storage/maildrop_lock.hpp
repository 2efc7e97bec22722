// Exclusive access to a maildrop (RFC 1939 §8: one POP3 session at a time), across processes
// and within one. The lock is an flock() on a lock file, so it dies with the process that held
// it: a crashed server never leaves a maildrop locked. Within a process a registry remembers who
// holds which lock, so a new login can take over the session of a client that vanished (POP3's
// intermittent links) when the server allows it: the old holder is marked revoked, its commit is
// refused, and the lock passes to the new session without ever being released in between.
#pragma once

#include "core/result.hpp"
#include "storage/fs_util.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace pigeon::storage {

class LockRegistry;

class MaildropLock {
public:
    MaildropLock(LockRegistry& registry, std::string path) : m_registry(registry), m_path(std::move(path)) {}
    MaildropLock(const MaildropLock&) = delete;
    MaildropLock& operator=(const MaildropLock&) = delete;
    ~MaildropLock();

    // True once another session took the maildrop over: commit nothing.
    [[nodiscard]] bool revoked() const noexcept { return m_revoked.load(); }

private:
    friend class LockRegistry;
    LockRegistry& m_registry;
    std::string m_path;
    std::atomic<bool> m_revoked{false};
};

class LockRegistry {
public:
    // The registry of this process: flock() locks belong to open files, which are process-wide.
    static LockRegistry& process();

    // errc::maildrop_in_use if another session holds the lock and takeover is false, or if
    // another process holds it.
    [[nodiscard]] Result<std::shared_ptr<MaildropLock>> acquire(const std::string& lock_path, bool takeover);

private:
    friend class MaildropLock;
    void release(const std::string& lock_path, const MaildropLock* holder);

    struct Entry {
        UniqueFd fd;
        std::weak_ptr<MaildropLock> holder;
    };
    std::mutex m_mutex;
    std::map<std::string, Entry> m_held;
};

} // namespace pigeon::storage
