// Exclusive access to a maildrop (RFC 1939 §8: one POP3 session at a time), across processes
// and within one, without holding a file descriptor while the session lasts: a server with
// 10,000 sessions needs 10,000 sockets, not 20,000 descriptors.
//
// Across processes the lock is an owner record in a lock file: boot id, PID namespace, PID and
// the process's start time, a token of the registry, and the host name. The record is read and
// written under a brief flock(), so two processes never both take a free lock; a free lock is
// "pigeon-lock free" (or an empty file): the file keeps its block, so a full disk does not keep
// the owner out of the maildrop. A record whose process is gone (a crash, kill -9, a reboot, a PID reused by
// another program) is stale and taken over, so a crashed server never leaves a maildrop locked.
// A record that cannot be checked here (another host sharing the mail store, another PID
// namespace) is honoured while its holder keeps it fresh: refresh() touches every held lock and
// a record untouched for stale_after is taken over.
//
// Within a process a registry remembers who holds which lock, so a new login can take over the
// session of a client that vanished (POP3's intermittent links) when the server allows it: the
// old holder is marked revoked, its commit is refused, and the lock passes to the new session
// without ever being released in between.
#pragma once

#include "core/result.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <sys/types.h>

namespace pigeon::storage {

// Who holds a lock: what a lock file's record says (see the top of this file).
struct LockIdentity {
    std::string boot_id;
    std::string pid_namespace;
    pid_t pid = 0;
    std::string start_time;
    std::uint64_t token = 0;
    std::string host;
};

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
    // A record another host or PID namespace wrote, and nobody refreshed for this long, is stale.
    static constexpr std::chrono::seconds stale_after{300};
    // How often a server should call refresh() so its own records never look stale.
    static constexpr std::chrono::seconds refresh_interval{60};

    LockRegistry();

    // The registry of this process.
    static LockRegistry& process();

    // errc::maildrop_in_use if another session holds the lock and takeover is false, or if
    // another process holds it.
    [[nodiscard]] Result<std::shared_ptr<MaildropLock>> acquire(const std::string& lock_path, bool takeover);

    // Creates a free lock file if there is none (a new maildrop), so that it has its block before
    // the disk may fill: see the top of this file. Errors are ignored (acquire() reports them).
    static void prepare(const std::string& lock_path) noexcept;

    // Touches every lock this registry holds (see stale_after). Returns how many were touched.
    std::size_t refresh();

    // How many locks this registry holds.
    [[nodiscard]] std::size_t held() const;

private:
    friend class MaildropLock;
    void release(const std::string& lock_path, const MaildropLock* holder);
    // This process's record, computed once per PID (a forked child is another process).
    // Called with m_mutex held.
    [[nodiscard]] const std::string& owner_record();

    std::uint64_t m_token;
    pid_t m_record_pid = 0;
    std::string m_record;    // this process's record, as written to lock files
    LockIdentity m_identity; // the same, as owner_of() compares it
    mutable std::mutex m_mutex;
    std::map<std::string, std::weak_ptr<MaildropLock>> m_held;
};

} // namespace pigeon::storage
