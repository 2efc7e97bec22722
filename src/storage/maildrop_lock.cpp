#include "storage/maildrop_lock.hpp"

#include "storage/fs_util.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <fcntl.h>
#include <fmt/format.h>
#include <optional>
#include <string_view>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace pigeon::storage {
namespace {

constexpr std::string_view record_magic = "pigeon-lock 1";
// What a released lock file holds (an empty file, as older versions left it, is free too).
constexpr std::string_view free_record = "pigeon-lock free\n";
constexpr std::size_t max_record = 512;

std::string read_proc_file(const std::string& path)
{
    const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        return {};
    }
    std::array<char, 1024> buffer{};
    const ssize_t got = ::read(fd.get(), buffer.data(), buffer.size());
    return got > 0 ? std::string(buffer.data(), static_cast<std::size_t>(got)) : std::string{};
}

std::string first_word(std::string_view text)
{
    const auto end = text.find_first_of(" \t\r\n");
    return std::string(text.substr(0, end));
}

struct ProcState {
    char state = '?';
    std::string start_time; // field 22 of /proc/PID/stat, clock ticks since boot
};

// Fields after the command name, which is in parentheses and may hold anything but ends at the
// last ')'.
std::optional<ProcState> proc_state(const std::string& stat_text)
{
    const auto close = stat_text.rfind(')');
    if (close == std::string::npos) {
        return std::nullopt;
    }
    std::vector<std::string_view> fields;
    std::string_view rest = std::string_view(stat_text).substr(close + 1);
    while (!rest.empty() && fields.size() < 20) {
        const auto start = rest.find_first_not_of(' ');
        if (start == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(start);
        const auto end = rest.find(' ');
        fields.push_back(rest.substr(0, end));
        rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
    }
    if (fields.size() < 20 || fields[0].empty()) {
        return std::nullopt;
    }
    return ProcState{fields[0][0], std::string(fields[19])}; // state is field 3, start time 22
}

std::string format_record(const LockIdentity& id)
{
    return fmt::format("{} {} {} {} {} {:016x} {}\n", record_magic, id.boot_id, id.pid_namespace, id.pid,
                       id.start_time, id.token, id.host);
}

std::optional<LockIdentity> parse_record(std::string_view text)
{
    if (!text.starts_with(record_magic) || !text.ends_with('\n')) {
        return std::nullopt;
    }
    text.remove_prefix(record_magic.size());
    text.remove_suffix(1);
    std::array<std::string_view, 6> words{};
    for (auto& word : words) {
        if (!text.starts_with(' ')) {
            return std::nullopt;
        }
        text.remove_prefix(1);
        const auto end = text.find(' ');
        word = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end);
        if (word.empty()) {
            return std::nullopt;
        }
    }
    if (!text.empty()) {
        return std::nullopt;
    }
    LockIdentity id;
    id.boot_id = words[0];
    id.pid_namespace = words[1];
    const auto* const pid_end = words[2].data() + words[2].size();
    if (std::from_chars(words[2].data(), pid_end, id.pid).ptr != pid_end || id.pid <= 0) {
        return std::nullopt;
    }
    id.start_time = words[3];
    const auto* const token_end = words[4].data() + words[4].size();
    if (std::from_chars(words[4].data(), token_end, id.token, 16).ptr != token_end) {
        return std::nullopt;
    }
    id.host = words[5];
    return id;
}

LockIdentity this_process(std::uint64_t token)
{
    LockIdentity id;
    id.boot_id = first_word(read_proc_file("/proc/sys/kernel/random/boot_id"));
    std::array<char, 64> ns{};
    const ssize_t ns_length = ::readlink("/proc/self/ns/pid", ns.data(), ns.size() - 1);
    id.pid_namespace = ns_length > 0 ? std::string(ns.data(), static_cast<std::size_t>(ns_length)) : "-";
    id.pid = ::getpid();
    const auto state = proc_state(read_proc_file("/proc/self/stat"));
    id.start_time = state ? state->start_time : "-";
    id.token = token;
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0') {
        host = {'-'};
    }
    id.host = host.data();
    for (auto* field : {&id.boot_id, &id.pid_namespace, &id.start_time, &id.host}) {
        for (char& c : *field) {
            if (c == ' ' || c == '\n' || c == '\t') {
                c = '_';
            }
        }
        if (field->empty()) {
            *field = "-";
        }
    }
    return id;
}

enum class Owner {
    none,
    alive,
    stale
};

// Whether the process a record names still holds the lock. `me` is this registry's identity.
Owner owner_of(std::string_view record, const LockIdentity& me,
               std::chrono::system_clock::time_point modified)
{
    if (record.empty() || record == free_record) {
        return Owner::none;
    }
    const auto id = parse_record(record);
    if (!id) {
        return Owner::stale; // written by a process that died mid-write, or not ours at all
    }
    const bool verifiable = id->host == me.host && id->boot_id == me.boot_id &&
                            id->pid_namespace == me.pid_namespace && me.boot_id != "-" &&
                            me.pid_namespace != "-";
    if (id->host == me.host && id->boot_id != me.boot_id && me.boot_id != "-") {
        return Owner::stale; // written before this machine rebooted
    }
    if (!verifiable) {
        // Another host or PID namespace: trust its refreshes.
        return std::chrono::system_clock::now() - modified > LockRegistry::stale_after ? Owner::stale
                                                                                       : Owner::alive;
    }
    if (id->pid == me.pid) {
        // This process: another registry (alive), or a record this registry failed to clear.
        return id->token == me.token ? Owner::stale : Owner::alive;
    }
    const auto state = proc_state(read_proc_file(fmt::format("/proc/{}/stat", id->pid)));
    if (state) {
        const bool same_process = state->start_time == id->start_time;
        const bool exited = state->state == 'Z' || state->state == 'X';
        return same_process && !exited ? Owner::alive : Owner::stale;
    }
    // /proc hides other users' processes when mounted with hidepid: ask the kernel.
    if (::kill(id->pid, 0) != 0 && errno == ESRCH) {
        return Owner::stale;
    }
    return Owner::alive;
}

std::chrono::system_clock::time_point modified_time(const struct stat& st)
{
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

std::uint64_t random_token()
{
    std::uint64_t token = 0;
    if (::getrandom(&token, sizeof token, 0) != static_cast<ssize_t>(sizeof token)) {
        token = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                reinterpret_cast<std::uintptr_t>(&token);
    }
    return token;
}

Result<std::string> read_record(int fd)
{
    std::array<char, max_record> buffer{};
    const ssize_t got = ::pread(fd, buffer.data(), buffer.size(), 0);
    if (got < 0) {
        return fail(last_errno());
    }
    return std::string(buffer.data(), static_cast<std::size_t>(got));
}

} // namespace

MaildropLock::~MaildropLock()
{
    m_registry.release(m_path, this);
}

LockRegistry::LockRegistry() : m_token(random_token()) {}

LockRegistry& LockRegistry::process()
{
    static LockRegistry registry;
    return registry;
}

const std::string& LockRegistry::owner_record()
{
    if (m_record_pid != ::getpid()) {
        m_identity = this_process(m_token);
        m_record = format_record(m_identity);
        m_record_pid = ::getpid();
    }
    return m_record;
}

Result<std::shared_ptr<MaildropLock>> LockRegistry::acquire(const std::string& lock_path, bool takeover)
{
    // Declared before the guard, so destroyed after it: if the session holding `current` ends
    // meanwhile, this is the last reference, and ~MaildropLock calls release(), which takes
    // m_mutex. Destroyed under the guard it deadlocked the whole server (scripts/tsan-load).
    std::shared_ptr<MaildropLock> current;
    const std::lock_guard guard(m_mutex);
    auto found = m_held.find(lock_path);
    if (found != m_held.end()) {
        current = found->second.lock();
        if (current && !takeover) {
            return fail(errc::maildrop_in_use);
        }
        if (current) {
            current->m_revoked = true;
        }
        auto holder = std::make_shared<MaildropLock>(*this, lock_path);
        found->second = holder;
        return holder;
    }
    const UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) {
        return fail(last_errno());
    }
    // The flock() only guards the read-decide-write below, for microseconds; a process that
    // holds it longer is busy with this very maildrop.
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        return fail(errno == EWOULDBLOCK ? make_error_code(errc::maildrop_in_use) : last_errno());
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return fail(last_errno());
    }
    if (!S_ISREG(st.st_mode)) {
        return fail(std::make_error_code(std::errc::invalid_argument));
    }
    auto record = read_record(fd.get());
    if (!record) {
        return fail(record.error());
    }
    const auto& text = owner_record(); // also m_identity, parsed once per process
    if (owner_of(*record, m_identity, modified_time(st)) == Owner::alive) {
        return fail(errc::maildrop_in_use); // another process's session
    }
    if (::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()) ||
        ::ftruncate(fd.get(), static_cast<off_t>(text.size())) != 0) {
        const auto error = last_errno();
        (void)::ftruncate(fd.get(), 0);
        return fail(error);
    }
    auto holder = std::make_shared<MaildropLock>(*this, lock_path);
    m_held.emplace(lock_path, holder);
    return holder;
}

void LockRegistry::release(const std::string& lock_path, const MaildropLock* holder)
{
    // Before the guard, as in acquire(): the session that took the lock over may end meanwhile,
    // leaving `current` its last reference, whose destructor calls release() again.
    std::shared_ptr<MaildropLock> current;
    const std::lock_guard guard(m_mutex);
    const auto found = m_held.find(lock_path);
    if (found == m_held.end()) {
        return;
    }
    current = found->second.lock();
    // A revoked holder leaves the lock to the session that took it over. While the current
    // holder is being destroyed its weak_ptr has already expired.
    if (current && current.get() != holder) {
        return;
    }
    m_held.erase(found);
    const UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid() || ::flock(fd.get(), LOCK_EX) != 0) {
        return; // the record stays; this process's next acquire knows its own token
    }
    const auto record = read_record(fd.get());
    if (record && *record == owner_record()) {
        // A free lock keeps a few octets (never empty): the next acquire then writes into a block
        // the file already has, so a full disk does not keep the owner out of the maildrop.
        if (::pwrite(fd.get(), free_record.data(), free_record.size(), 0) !=
                static_cast<ssize_t>(free_record.size()) ||
            ::ftruncate(fd.get(), static_cast<off_t>(free_record.size())) != 0) {
            (void)::ftruncate(fd.get(), 0); // an empty lock file is a free lock too
        }
    }
}

void LockRegistry::prepare(const std::string& lock_path) noexcept
{
    const UniqueFd fd(::open(lock_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.valid() && ::write(fd.get(), free_record.data(), free_record.size()) < 0) {
        (void)::ftruncate(fd.get(), 0); // a free lock all the same
    }
}

std::size_t LockRegistry::refresh()
{
    const std::lock_guard guard(m_mutex);
    std::size_t touched = 0;
    for (const auto& [path, holder] : m_held) {
        if (::utimensat(AT_FDCWD, path.c_str(), nullptr, AT_SYMLINK_NOFOLLOW) == 0) {
            ++touched;
        }
    }
    return touched;
}

std::size_t LockRegistry::held() const
{
    const std::lock_guard guard(m_mutex);
    return m_held.size();
}

} // namespace pigeon::storage
