// Locking an mbox against the other programs that write it, as Postfix's local(8) and mutt do:
// a dotlock ("<mbox>.lock", created atomically with O_EXCL, holding our PID; one older than five
// minutes, or naming a PID that no longer runs, is stale and removed) and an fcntl() write lock on the whole
// mbox. Both are tried again and again until a deadline, never waited on forever. Pigeon holds them while it
// appends and while it rewrites, and briefly at login to read a consistent mbox, never for a whole POP3
// session (MaildropLock is the session's lock).
//
// The fcntl lock is an open-file-description lock (F_OFD_SETLK) where the kernel has them: it
// conflicts with the F_SETLK locks of Postfix and mutt exactly as theirs do with each other,
// but unlike a classic POSIX lock it is not silently dropped when another thread of this process
// closes some other descriptor of the same file, and it excludes other threads of this process
// too. On older kernels it falls back to F_SETLK.
#pragma once

#include "core/result.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace pigeon::storage::mbox {

// A dotlock this old belongs to a process that died (Postfix and procmail use similar ages).
inline constexpr std::chrono::seconds stale_dotlock_age{300};

class MboxLock {
public:
    struct Options {
        bool dotlock = true;
        std::chrono::milliseconds timeout{30'000};
    };

    // errc::maildrop_in_use when the locks are still held by someone else at the deadline;
    // errno values for anything else (such as no permission to create the dotlock).
    [[nodiscard]] static Result<MboxLock> acquire(int fd, const std::string& mbox_path,
                                                  const Options& options);

    MboxLock(MboxLock&& other) noexcept;
    MboxLock& operator=(MboxLock&& other) noexcept;
    MboxLock(const MboxLock&) = delete;
    MboxLock& operator=(const MboxLock&) = delete;
    ~MboxLock();

    void release() noexcept;
    // A long rewrite touches its dotlock now and then, so that nobody takes it for stale.
    void refresh() noexcept;

private:
    MboxLock() = default;

    int m_fd = -1; // not owned
    bool m_file_locked = false;
    bool m_ofd = true;
    std::string m_dotlock_path; // empty when no dotlock is held
    std::uint64_t m_dotlock_inode = 0;
    std::chrono::steady_clock::time_point m_refreshed{};
};

} // namespace pigeon::storage::mbox
