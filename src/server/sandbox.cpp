#include "server/sandbox.hpp"

#include <fmt/format.h>
#include <linux/landlock.h>
#include <seccomp.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <string_view>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace pigeon::server {
namespace {

// The directory above a path template's first % sequence: every path it expands to is beneath.
std::string fixed_directory(const std::string& path_template)
{
    const auto percent = path_template.find('%');
    const std::string fixed = path_template.substr(0, percent);
    const auto slash = fixed.rfind('/');
    if (slash == std::string::npos || slash == 0) {
        return {}; // "%h/Maildir", "/%u": no directory short of the whole file system
    }
    return fixed.substr(0, slash);
}

std::string directory_of(const std::string& path)
{
    return std::filesystem::path(path).parent_path().string();
}

// The directory of a file and, when the file is a symbolic link (Let's Encrypt's live/ names
// point into archive/), the directory of what it points to.
void add_file_directories(std::vector<std::string>& out, const std::string& file)
{
    if (file.empty()) {
        return;
    }
    out.push_back(directory_of(file));
    std::error_code ec;
    const auto real = std::filesystem::canonical(file, ec);
    if (!ec) {
        out.push_back(real.parent_path().string());
    }
}

// What the C library (user and group names, time zone), OpenSSL (its configuration) and the
// sanitizer runtimes read; nothing there is written. All of /proc, not only this process's
// directory: a maildrop lock left by another process is judged stale from /proc/PID/stat of
// that PID (storage/maildrop_lock.cpp), and the boot id is in /proc/sys.
constexpr std::array<const char*, 10> system_read_paths{
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime", "/etc/ssl",
    "/usr",        "/proc",      "/dev/urandom",       "/dev/null",      "/etc/hosts"};

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif

constexpr std::uint64_t fs_read_file = LANDLOCK_ACCESS_FS_READ_FILE;
constexpr std::uint64_t fs_read_dir = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
constexpr std::uint64_t fs_write_file = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE;
constexpr std::uint64_t fs_write_dir = fs_read_dir | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                       LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                                       LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                                       LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_REFER;
// Everything Landlock ABI 1 and 2 can restrict (ABI 2 adds REFER: renames across directories).
constexpr std::uint64_t fs_abi1 =
    LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
    LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
    LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
    LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
    LANDLOCK_ACCESS_FS_MAKE_SYM;

class Fd {
public:
    explicit Fd(int fd) : m_fd(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&&) = delete;
    Fd& operator=(Fd&&) = delete;
    ~Fd()
    {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
    }
    [[nodiscard]] int get() const { return m_fd; }

private:
    int m_fd;
};

tl::expected<void, std::string> add_rule(int ruleset, const std::string& path, bool write,
                                         std::uint64_t handled)
{
    const Fd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (fd.get() < 0) {
        if (!write && errno == ENOENT) {
            return {}; // nothing there to read
        }
        return tl::unexpected(fmt::format("sandbox: {}: {}", path, std::strerror(errno)));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return tl::unexpected(fmt::format("sandbox: {}: {}", path, std::strerror(errno)));
    }
    const bool directory = S_ISDIR(st.st_mode);
    landlock_path_beneath_attr rule{};
    rule.parent_fd = fd.get();
    rule.allowed_access =
        (directory ? (write ? fs_write_dir : fs_read_dir) : (write ? fs_write_file : fs_read_file)) & handled;
    if (::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
        return tl::unexpected(fmt::format("sandbox: Landlock rule for {}: {}", path, std::strerror(errno)));
    }
    return {};
}

} // namespace

tl::expected<SandboxPaths, std::string> sandbox_paths(const config::Config& config)
{
    SandboxPaths paths;
    const auto& sandbox = config.sandbox;
    for (const auto* path_template : {&config.storage.location, &config.storage.index_directory}) {
        if (path_template->empty()) {
            continue;
        }
        const std::string directory = fixed_directory(*path_template);
        if (directory.empty()) {
            if (sandbox.write_paths.empty()) {
                return tl::unexpected(fmt::format(
                    "sandbox: \"{}\" has no fixed directory above its first % sequence to confine the "
                    "maildrops to: name the directories that hold them in sandbox.write_paths, or set "
                    "sandbox.landlock = false",
                    *path_template));
            }
            continue;
        }
        paths.write.push_back(directory);
    }
    if (config.passdb.driver == "sqlite") {
        paths.write.push_back(directory_of(config.passdb.path)); // its journal beside it
    } else {
        add_file_directories(paths.read, config.passdb.path);
    }
    add_file_directories(paths.read, config.file.string());
    for (const auto& certificate : config.tls.certificates) {
        add_file_directories(paths.read, certificate.certificate);
        add_file_directories(paths.read, certificate.key);
    }
    add_file_directories(paths.read, config.tls.client_ca);
    if (config.auth.oauth) {
        add_file_directories(paths.read, config.auth.oauth->key_file);
    }
    if (config.log.destination != "stderr" && config.log.destination != "syslog") {
        paths.write.push_back(directory_of(config.log.destination));
    }
    for (const auto& entry : config.lmtp.listen) {
        if (entry.starts_with("unix:")) {
            paths.write.push_back(directory_of(entry.substr(5))); // removed at stop
        }
    }
    paths.read.insert(paths.read.end(), system_read_paths.begin(), system_read_paths.end());
    paths.read.insert(paths.read.end(), sandbox.read_paths.begin(), sandbox.read_paths.end());
    paths.write.insert(paths.write.end(), sandbox.write_paths.begin(), sandbox.write_paths.end());
    return paths;
}

tl::expected<std::string, std::string> confine_files(const SandboxPaths& paths)
{
    const long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1) {
        return fmt::format("sandbox: Landlock is not available here ({}): file access is not confined",
                           std::strerror(errno));
    }
    const std::uint64_t handled = abi >= 2 ? (fs_abi1 | LANDLOCK_ACCESS_FS_REFER) : fs_abi1;
    landlock_ruleset_attr attributes{};
    attributes.handled_access_fs = handled;
    const Fd ruleset(
        static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attributes, sizeof attributes, 0)));
    if (ruleset.get() < 0) {
        return tl::unexpected(
            fmt::format("sandbox: cannot create a Landlock ruleset: {}", std::strerror(errno)));
    }
    for (const auto& path : paths.write) {
        if (::mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) {
            return tl::unexpected(fmt::format("sandbox: {}: {}", path, std::strerror(errno)));
        }
        if (auto added = add_rule(ruleset.get(), path, true, handled); !added) {
            return tl::unexpected(added.error());
        }
    }
    for (const auto& path : paths.read) {
        if (auto added = add_rule(ruleset.get(), path, false, handled); !added) {
            return tl::unexpected(added.error());
        }
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return tl::unexpected(fmt::format("sandbox: PR_SET_NO_NEW_PRIVS: {}", std::strerror(errno)));
    }
    if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) {
        return tl::unexpected(fmt::format("sandbox: Landlock: {}", std::strerror(errno)));
    }
    return std::string();
}

namespace {

// The system calls pigeond makes once it serves: I/O on sockets and files, the maildrops' file
// operations, memory, threads and their synchronisation, clocks, signals, and what the C library,
// OpenSSL, SQLite and the sanitizer runtimes call underneath. Not here: exec, mount, module,
// namespace, privilege, tracing and keyring calls, bind/listen (listeners are bound at start).
constexpr std::array allowed_calls{
    // I/O
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "sendfile", "splice", "lseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "flock", "ioctl",
    "pipe", "pipe2", "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "timerfd_create", "timerfd_settime",
    "timerfd_gettime",
    // sockets (accepting, reading, writing; syslog and systemd notification connect)
    "socket", "connect", "accept", "accept4", "shutdown", "getsockname", "getpeername", "getsockopt",
    "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "socketpair",
    // files and directories
    "open", "openat", "openat2", "creat", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs",
    "fstatfs", "access", "faccessat", "faccessat2", "getdents", "getdents64", "readlink", "readlinkat",
    "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2", "link",
    "linkat", "unlink", "unlinkat", "symlink", "symlinkat", "truncate", "ftruncate", "fallocate", "fadvise64",
    "fsync", "fdatasync", "syncfs", "sync_file_range", "chmod", "fchmod", "fchmodat", "chown", "fchown",
    "lchown", "fchownat", "umask", "utimensat", "futimesat", "utime", "utimes",
    // memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore", "mlock", "munlock",
    "membarrier",
    // threads, their synchronisation and scheduling
    "clone", "clone3", "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq",
    "set_tid_address", "sched_yield", "sched_getaffinity", "sched_setaffinity", "getpriority", "prctl",
    "arch_prctl", "exit", "exit_group", "wait4",
    // identity, time, limits, randomness
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid",
    "getresgid", "uname", "sysinfo", "getrlimit", "prlimit64", "getrusage", "times", "clock_gettime",
    "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "getrandom",
    // signals (kill and tgkill only to itself: see below)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigpending", "rt_sigsuspend",
    "sigaltstack", "restart_syscall"};

// Calls that only code pigeond does not contain would make: the process ends at once.
constexpr std::array fatal_calls{"execve", "execveat", "process_vm_readv", "process_vm_writev", "ptrace"};

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitizer_build = true; // LeakSanitizer stops the world with ptrace at exit
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool sanitizer_build = true;
#else
constexpr bool sanitizer_build = false;
#endif
#else
constexpr bool sanitizer_build = false;
#endif

class Filter {
public:
    Filter() : m_ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM))) {}
    Filter(const Filter&) = delete;
    Filter& operator=(const Filter&) = delete;
    Filter(Filter&&) = delete;
    Filter& operator=(Filter&&) = delete;
    ~Filter()
    {
        if (m_ctx != nullptr) {
            seccomp_release(m_ctx);
        }
    }
    [[nodiscard]] scmp_filter_ctx get() const { return m_ctx; }

private:
    scmp_filter_ctx m_ctx;
};

} // namespace

tl::expected<void, std::string> confine_system_calls()
{
    const Filter filter;
    if (filter.get() == nullptr) {
        return tl::unexpected(std::string("sandbox: seccomp_init failed"));
    }
    const auto failed = [](std::string_view what, int rc) {
        return tl::unexpected(fmt::format("sandbox: seccomp: {}: {}", what, std::strerror(-rc)));
    };
    if (const int rc = seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc != 0) {
        return failed("every thread (TSYNC)", rc);
    }
    for (const char* name : allowed_calls) {
        const int number = seccomp_syscall_resolve_name(name);
        if (number == __NR_SCMP_ERROR) {
            continue; // not a call on this architecture
        }
        if (const int rc = seccomp_rule_add(filter.get(), SCMP_ACT_ALLOW, number, 0); rc != 0) {
            return failed(name, rc);
        }
    }
    // Signals only to itself (the crash points of the fault-injection tests, abort()), and signal
    // 0 to any process: whether the owner of a stale lock (maildrop, mbox dotlock) still lives.
    if (const int rc =
            seccomp_rule_add(filter.get(), SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A1(SCMP_CMP_EQ, 0));
        rc != 0) {
        return failed("kill 0", rc);
    }
    const auto self = static_cast<scmp_datum_t>(::getpid());
    if (const int rc =
            seccomp_rule_add(filter.get(), SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_EQ, self));
        rc != 0) {
        return failed("kill", rc);
    }
    if (const int rc =
            seccomp_rule_add(filter.get(), SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, self));
        rc != 0) {
        return failed("tgkill", rc);
    }
    for (const char* name : fatal_calls) {
        const int number = seccomp_syscall_resolve_name(name);
        if (number == __NR_SCMP_ERROR) {
            continue;
        }
        const bool needed = sanitizer_build && std::string_view(name) == "ptrace";
        if (const int rc =
                seccomp_rule_add(filter.get(), needed ? SCMP_ACT_ALLOW : SCMP_ACT_KILL_PROCESS, number, 0);
            rc != 0) {
            return failed(name, rc);
        }
    }
    if (const int rc = seccomp_load(filter.get()); rc != 0) {
        return failed("load", rc);
    }
    return {};
}

} // namespace pigeon::server
