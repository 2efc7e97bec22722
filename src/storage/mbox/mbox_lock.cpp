#include "storage/mbox/mbox_lock.hpp"

#include "storage/fs_util.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <fcntl.h>
#include <string_view>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <utility>

namespace pigeon::storage::mbox {
namespace {

constexpr std::chrono::milliseconds first_retry_delay{5};
constexpr std::chrono::milliseconds max_retry_delay{200};
constexpr std::chrono::seconds refresh_interval{30};

bool sleep_until_next_try(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds& delay)
{
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
        return false;
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(delay, deadline - now));
    delay = std::min(delay * 2, max_retry_delay);
    return true;
}

bool is_stale(const std::string& path, const struct stat& st)
{
    const auto modified = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
    if (std::chrono::system_clock::now() - modified > stale_dotlock_age) {
        return true;
    }
    // A dotlock that names a PID (as Pigeon's and liblockfile's do) whose process is gone: a
    // writer killed while it held the lock, which need not block everyone for five minutes.
    const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.valid()) {
        return false;
    }
    std::array<char, 32> text{};
    const ssize_t got = ::read(fd.get(), text.data(), text.size() - 1);
    if (got <= 1 || text[static_cast<std::size_t>(got) - 1] != '\n') {
        return false;
    }
    pid_t pid = 0;
    const char* end = text.data() + got - 1;
    if (std::from_chars(text.data(), end, pid).ptr != end || pid <= 0) {
        return false;
    }
    return ::kill(pid, 0) != 0 && errno == ESRCH;
}

// Creates `path` holding "PID\n": a private file linked to the name (EEXIST if the lock is
// taken), or O_EXCL where the file system has no hard links. On failure `error` is the errno.
UniqueFd create_dotlock(const std::string& path, int& error)
{
    const std::string pid = std::to_string(::getpid()) + "\n";
    static std::atomic<unsigned> sequence{0};
    const std::string mine =
        path + "." + std::to_string(::getpid()) + "." + std::to_string(++sequence) + ".tmp";
    UniqueFd fd(::open(mine.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.valid()) {
        const bool written = static_cast<bool>(write_all(fd.get(), pid));
        const int linked = written ? ::link(mine.c_str(), path.c_str()) : -1;
        error = errno;
        ::unlink(mine.c_str());
        if (linked == 0) {
            return fd; // the same inode as the dotlock
        }
        if (!written || (error != EPERM && error != ENOTSUP && error != EOPNOTSUPP)) {
            return UniqueFd();
        }
    }
    UniqueFd direct(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!direct.valid()) {
        error = errno;
        return direct;
    }
    (void)write_all(direct.get(), pid);
    return direct;
}

} // namespace

Result<MboxLock> MboxLock::acquire(int fd, const std::string& mbox_path, const Options& options)
{
    MboxLock lock;
    lock.m_fd = fd;
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    auto delay = first_retry_delay;

    if (options.dotlock) {
        const std::string path = mbox_path + ".lock";
        for (;;) {
            // The dotlock appears with our PID already in it (written to a private file, then
            // linked to the lock's name, as liblockfile does): a process killed while taking it
            // never leaves an empty dotlock that only the five-minute rule could clear.
            int created = -1;
            auto dotlock = create_dotlock(path, created);
            if (dotlock.valid()) {
                struct stat st {};
                if (::fstat(dotlock.get(), &st) == 0) {
                    lock.m_dotlock_inode = static_cast<std::uint64_t>(st.st_ino);
                }
                lock.m_dotlock_path = path;
                lock.m_refreshed = std::chrono::steady_clock::now();
                break;
            }
            errno = created;
            if (errno != EEXIST) {
                return fail(last_errno());
            }
            struct stat st {};
            if (::lstat(path.c_str(), &st) == 0 && is_stale(path, st)) {
                ::unlink(path.c_str()); // its owner died (a race with another remover is harmless)
                continue;
            }
            if (!sleep_until_next_try(deadline, delay)) {
                return fail(errc::maildrop_in_use);
            }
        }
    }

    delay = first_retry_delay;
    for (;;) {
        struct flock range {};
        range.l_type = F_WRLCK;
        range.l_whence = SEEK_SET;
#ifdef F_OFD_SETLK
        const int command = lock.m_ofd ? F_OFD_SETLK : F_SETLK;
#else
        lock.m_ofd = false;
        const int command = F_SETLK;
#endif
        if (::fcntl(fd, command, &range) == 0) {
            lock.m_file_locked = true;
            return lock;
        }
        if (errno == EINVAL && lock.m_ofd) {
            lock.m_ofd = false; // a kernel without OFD locks
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EACCES && errno != EAGAIN) {
            return fail(last_errno()); // the destructor removes the dotlock
        }
        if (!sleep_until_next_try(deadline, delay)) {
            return fail(errc::maildrop_in_use);
        }
    }
}

MboxLock::MboxLock(MboxLock&& other) noexcept
    : m_fd(std::exchange(other.m_fd, -1)), m_file_locked(std::exchange(other.m_file_locked, false)),
      m_ofd(other.m_ofd), m_dotlock_path(std::exchange(other.m_dotlock_path, {})),
      m_dotlock_inode(other.m_dotlock_inode), m_refreshed(other.m_refreshed)
{
}

MboxLock& MboxLock::operator=(MboxLock&& other) noexcept
{
    if (this != &other) {
        release();
        m_fd = std::exchange(other.m_fd, -1);
        m_file_locked = std::exchange(other.m_file_locked, false);
        m_ofd = other.m_ofd;
        m_dotlock_path = std::exchange(other.m_dotlock_path, {});
        m_dotlock_inode = other.m_dotlock_inode;
        m_refreshed = other.m_refreshed;
    }
    return *this;
}

MboxLock::~MboxLock()
{
    release();
}

void MboxLock::release() noexcept
{
    if (m_file_locked) {
        struct flock range {};
        range.l_type = F_UNLCK;
        range.l_whence = SEEK_SET;
#ifdef F_OFD_SETLK
        ::fcntl(m_fd, m_ofd ? F_OFD_SETLK : F_SETLK, &range);
#else
        ::fcntl(m_fd, F_SETLK, &range);
#endif
        m_file_locked = false;
    }
    if (!m_dotlock_path.empty()) {
        // Only our own: if someone wrongly judged it stale and made theirs, leave theirs alone.
        struct stat st {};
        if (::lstat(m_dotlock_path.c_str(), &st) == 0 &&
            static_cast<std::uint64_t>(st.st_ino) == m_dotlock_inode) {
            ::unlink(m_dotlock_path.c_str());
        }
        m_dotlock_path.clear();
    }
}

void MboxLock::refresh() noexcept
{
    if (m_dotlock_path.empty()) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - m_refreshed >= refresh_interval) {
        ::utimensat(AT_FDCWD, m_dotlock_path.c_str(), nullptr, 0);
        m_refreshed = now;
    }
}

} // namespace pigeon::storage::mbox
