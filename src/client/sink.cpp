#include "client/sink.hpp"

#include "client/imap_sink.hpp"
#include "client/sink_support.hpp"

#include "core/strings.hpp"
#include "storage/fs_util.hpp"
#include "storage/mbox/mbox_io.hpp"
#include "storage/mbox/mbox_lock.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pigeon::client {
namespace {

using namespace detail; // NOLINT(google-build-using-namespace): the sinks' shared helpers
using storage::UniqueFd;

std::string host_name()
{
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0') {
        return "localhost";
    }
    std::string name = host.data();
    // maildir(5): '/' and ':' cannot appear in a file name part.
    for (char& c : name) {
        if (c == '/' || c == ':') {
            c = '_';
        }
    }
    return name;
}

SinkResult fsync_dir(const std::string& path)
{
    if (auto done = storage::fsync_directory(path); !done) {
        return tl::unexpected(fmt::format("{}: {}", path, done.error().message()));
    }
    return {};
}

tl::expected<bool, std::string> durable(const SinkResult& synced)
{
    if (!synced) {
        return tl::unexpected(synced.error());
    }
    return true;
}

// --- Maildir ------------------------------------------------------------------------------------

// A message's pieces are gathered up to this before they are written.
constexpr std::size_t write_buffer_octets = std::size_t{256} * 1024;

class MaildirMessage final : public SinkMessage {
public:
    MaildirMessage(std::string root, std::string tmp_name, UniqueFd fd)
        : m_root(std::move(root)), m_tmp_name(std::move(tmp_name)), m_fd(std::move(fd))
    {
    }
    MaildirMessage(const MaildirMessage&) = delete;
    MaildirMessage& operator=(const MaildirMessage&) = delete;
    MaildirMessage(MaildirMessage&&) = delete;
    MaildirMessage& operator=(MaildirMessage&&) = delete;
    ~MaildirMessage() override
    {
        if (!m_published) {
            ::unlink(tmp_path().c_str());
        }
    }

    // Pieces are gathered up to write_buffer_octets so that a message costs one or two write()s.
    SinkResult write(std::string_view bytes) override
    {
        m_octets += bytes.size();
        m_buffer.append(bytes);
        if (m_buffer.size() < write_buffer_octets) {
            return {};
        }
        return flush();
    }

    SinkResult finish() override
    {
        if (auto flushed = flush(); !flushed) {
            return flushed;
        }
        // ",S=" is the file's size, as Dovecot writes it, so readers need not stat it.
        m_final_name = fmt::format("{},S={}", m_tmp_name, m_octets);
        return {};
    }

    [[nodiscard]] std::string tmp_path() const { return m_root + "/tmp/" + m_tmp_name; }
    SinkResult flush()
    {
        auto written = write_fd(m_fd.get(), m_buffer, tmp_path());
        std::string().swap(m_buffer); // a message waiting for its group holds no buffer
        return written;
    }
    [[nodiscard]] std::string final_path() const { return m_root + "/new/" + m_final_name; }
    [[nodiscard]] std::string target() const
    {
        return fmt::format("maildir {} {}", m_final_name, m_tmp_name);
    }
    [[nodiscard]] int fd() const noexcept { return m_fd.get(); }
    void published()
    {
        m_published = true;
        m_fd.reset();
    }

private:
    std::string m_root;
    std::string m_tmp_name;
    std::string m_final_name;
    UniqueFd m_fd;
    std::uint64_t m_octets = 0;
    std::string m_buffer;
    bool m_published = false;
};

class MaildirSink final : public Sink {
public:
    explicit MaildirSink(std::string root) : m_root(std::move(root)), m_host(host_name()) {}

    tl::expected<std::unique_ptr<SinkMessage>, std::string> begin() override
    {
        if (!m_ready) {
            for (const char* folder : {"", "/tmp", "/new", "/cur"}) {
                const std::string path = m_root + folder;
                if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
                    return tl::unexpected(errno_text(path));
                }
            }
            m_ready = true;
        }
        const std::string name = fmt::format("{}.{}", unique_base(), m_host);
        const std::string path = m_root + "/tmp/" + name;
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!fd.valid()) {
            return tl::unexpected(errno_text(path));
        }
        return std::make_unique<MaildirMessage>(m_root, name, std::move(fd));
    }

    SinkResult sync(const std::vector<SinkMessage*>& group) override
    {
        std::vector<std::pair<int, std::string>> files;
        for (auto* message : group) {
            const auto* maildir = own<MaildirMessage>(message);
            files.emplace_back(maildir->fd(), maildir->tmp_path());
        }
        return sync_files(files);
    }

    std::vector<SinkResult> publish(const std::vector<SinkMessage*>& group, const Intend& intend) override
    {
        std::vector<std::string> targets;
        for (auto* message : group) {
            targets.push_back(own<MaildirMessage>(message)->target());
        }
        if (auto noted = intend(targets); !noted) {
            return std::vector<SinkResult>(group.size(), noted);
        }
        std::vector<SinkResult> results;
        bool any = false;
        for (auto* message : group) {
            auto* maildir = own<MaildirMessage>(message);
            if (::rename(maildir->tmp_path().c_str(), maildir->final_path().c_str()) != 0) {
                results.emplace_back(tl::unexpected(errno_text(maildir->final_path())));
                continue;
            }
            maildir->published();
            results.emplace_back();
            any = true;
        }
        if (any) {
            if (auto synced = fsync_dir(m_root + "/new"); !synced) {
                return std::vector<SinkResult>(group.size(), synced);
            }
        }
        return results;
    }

    tl::expected<bool, std::string> resolve(const std::string& target) override
    {
        const auto words = split_words(target);
        if (words.size() != 3 || words[0] != "maildir" || !plain_name(words[1]) || !plain_name(words[2])) {
            return tl::unexpected(fmt::format("damaged pending delivery \"{}\"", target));
        }
        const std::string final_name(words[1]);
        // Found means found durably: the rename a killed run made may not have reached the disk.
        struct stat st {};
        if (::lstat((m_root + "/new/" + final_name).c_str(), &st) == 0) {
            return durable(fsync_dir(m_root + "/new"));
        }
        // A mail reader may have moved it to cur/, adding ":2,flags".
        if (DIR* dir = ::opendir((m_root + "/cur").c_str()); dir != nullptr) {
            bool found = false;
            while (const dirent* entry = ::readdir(dir)) {
                const std::string_view name = entry->d_name;
                if (name == final_name || (name.starts_with(final_name) && name[final_name.size()] == ':')) {
                    found = true;
                    break;
                }
            }
            ::closedir(dir);
            if (found) {
                return durable(fsync_dir(m_root + "/cur"));
            }
        }
        // Killed between the journal and the rename: the file in tmp/ is complete (fsynced
        // before the journal line was written), so the rename can be done now.
        const std::string tmp_path = m_root + "/tmp/" + std::string(words[2]);
        if (::lstat(tmp_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
            const std::string final_path = m_root + "/new/" + final_name;
            if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
                return tl::unexpected(errno_text(final_path));
            }
            if (auto synced = fsync_dir(m_root + "/new"); !synced) {
                return tl::unexpected(synced.error());
            }
            return true;
        }
        return false;
    }

    [[nodiscard]] std::string describe() const override { return "maildir " + m_root; }

private:
    std::string m_root;
    std::string m_host;
    bool m_ready = false;
};

// --- spool files (mbox, command) ----------------------------------------------------------------

// --- mbox ---------------------------------------------------------------------------------------

std::string from_line()
{
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    std::array<char, 64> date{};
    (void)std::strftime(date.data(), date.size(), "%a %b %e %H:%M:%S %Y", &utc);
    return fmt::format("From MAILER-DAEMON {}\n", date.data());
}

struct OpenMbox {
    UniqueFd fd;
    storage::mbox::MboxLock lock;
};

tl::expected<OpenMbox, std::string> open_locked(const std::string& path, bool create)
{
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600));
    if (!fd.valid()) {
        return tl::unexpected(errno_text(path));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return tl::unexpected(fmt::format("{}: not a regular file", path));
    }
    auto lock = storage::mbox::MboxLock::acquire(fd.get(), path, {});
    if (!lock) {
        return tl::unexpected(fmt::format("{}: cannot lock it: {}", path, lock.error().message()));
    }
    return OpenMbox{std::move(fd), std::move(*lock)};
}

class MboxMessage final : public SinkMessage {
public:
    explicit MboxMessage(SpoolFile spool) : m_spool(std::move(spool)) {}

    SinkResult write(std::string_view bytes) override
    {
        std::string quoted;
        m_quoter.feed(bytes, quoted);
        if (!quoted.empty()) {
            m_last = quoted.back();
        }
        return m_spool.write(quoted);
    }

    SinkResult finish() override
    {
        std::string tail;
        m_quoter.finish(tail);
        if (!tail.empty()) {
            m_last = tail.back();
        }
        if (m_last != '\n') {
            tail += '\n'; // the next From_ line must start a line
        }
        tail += '\n'; // the blank separator line
        if (auto written = m_spool.write(tail); !written) {
            return written;
        }
        m_hash = m_spool.hash();
        return {};
    }

    [[nodiscard]] SpoolFile& spool() noexcept { return m_spool; }
    [[nodiscard]] const std::string& hash() const noexcept { return m_hash; }

private:
    SpoolFile m_spool;
    MboxrdQuoter m_quoter;
    std::string m_hash;
    char m_last = '\n';
};

// Appends a spool file to the mbox at `offset`.
SinkResult append_spool(int fd, const std::string& mbox, SpoolFile& spool, std::uint64_t offset)
{
    std::array<char, 65536> buffer{};
    for (std::uint64_t done = 0; done < spool.octets();) {
        auto got = storage::mbox::pread_full(
            spool.fd(), buffer.data(), std::min<std::uint64_t>(buffer.size(), spool.octets() - done), done);
        if (!got || *got == 0) {
            return tl::unexpected(fmt::format("{}: cannot read it back", spool.path()));
        }
        if (auto written =
                storage::mbox::pwrite_all(fd, std::string_view(buffer.data(), *got), offset + done);
            !written) {
            return tl::unexpected(fmt::format("{}: {}", mbox, written.error().message()));
        }
        done += *got;
    }
    return {};
}

class MboxSink final : public Sink {
public:
    MboxSink(std::string path, std::string spool) : m_path(std::move(path)), m_spool(std::move(spool)) {}

    tl::expected<std::unique_ptr<SinkMessage>, std::string> begin() override
    {
        auto spool = SpoolFile::create(m_spool);
        if (!spool) {
            return tl::unexpected(spool.error());
        }
        if (auto written = spool->write(from_line()); !written) {
            return tl::unexpected(written.error());
        }
        return std::make_unique<MboxMessage>(std::move(*spool));
    }

    SinkResult sync(const std::vector<SinkMessage*>& group) override
    {
        std::vector<std::pair<int, std::string>> files;
        for (auto* message : group) {
            auto& spool = own<MboxMessage>(message)->spool();
            files.emplace_back(spool.fd(), spool.path());
        }
        return sync_files(files);
    }

    // The whole group under one lock, one fsync; a failed append is taken back, and the
    // messages after it are not appended.
    std::vector<SinkResult> publish(const std::vector<SinkMessage*>& group, const Intend& intend) override
    {
        const auto all = [&group](const SinkResult& result) {
            return std::vector<SinkResult>(group.size(), result);
        };
        auto opened = open_locked(m_path, true);
        if (!opened) {
            return all(tl::unexpected(opened.error()));
        }
        const int fd = opened->fd.get();
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            return all(tl::unexpected(errno_text(m_path)));
        }
        auto offset = static_cast<std::uint64_t>(st.st_size);
        if (offset > 0) {
            char last = '\n';
            if (auto got = storage::mbox::pread_full(fd, &last, 1, offset - 1); !got || *got != 1) {
                return all(tl::unexpected(errno_text(m_path)));
            }
            if (last != '\n') {
                if (auto fixed = storage::mbox::pwrite_all(fd, "\n\n", offset); !fixed) {
                    return all(tl::unexpected(fmt::format("{}: {}", m_path, fixed.error().message())));
                }
                offset += 2;
            }
        }
        std::vector<std::string> targets;
        std::vector<std::uint64_t> offsets;
        for (std::uint64_t at = offset; auto* message : group) {
            auto* mbox = own<MboxMessage>(message);
            targets.push_back(fmt::format("mbox {} {} {} {}", at, mbox->spool().octets(), mbox->hash(),
                                          mbox->spool().name()));
            offsets.push_back(at);
            at += mbox->spool().octets();
        }
        if (auto noted = intend(targets); !noted) {
            return all(noted);
        }
        std::vector<SinkResult> results;
        for (std::size_t i = 0; i < group.size(); ++i) {
            auto appended = append_spool(fd, m_path, own<MboxMessage>(group[i])->spool(), offsets[i]);
            if (!appended) {
                (void)::ftruncate(fd, static_cast<off_t>(offsets[i]));
                results.resize(group.size(), appended);
                break;
            }
            results.emplace_back();
        }
        if (auto synced = storage::mbox::fsync_file(fd); !synced) {
            return all(tl::unexpected(fmt::format("{}: {}", m_path, synced.error().message())));
        }
        return results;
    }

    tl::expected<bool, std::string> resolve(const std::string& target) override
    {
        const auto words = split_words(target);
        std::uint64_t offset = 0;
        std::uint64_t length = 0;
        if (words.size() != 5 || words[0] != "mbox" || !plain_name(words[4]) ||
            std::from_chars(words[1].data(), words[1].data() + words[1].size(), offset).ec != std::errc() ||
            std::from_chars(words[2].data(), words[2].data() + words[2].size(), length).ec != std::errc()) {
            return tl::unexpected(fmt::format("damaged pending delivery \"{}\"", target));
        }
        const std::string spool_path = m_spool + "/" + std::string(words[4]);
        auto opened = open_locked(m_path, true);
        if (!opened) {
            return tl::unexpected(opened.error());
        }
        const int fd = opened->fd.get();
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            return tl::unexpected(errno_text(m_path));
        }
        const auto size = static_cast<std::uint64_t>(st.st_size);
        bool delivered = false;
        if (size >= offset + length) {
            auto hash = storage::mbox::hash_file_range(fd, offset, offset + length);
            delivered = hash && *hash == words[3];
            if (delivered && ::fsync(fd) != 0) { // the append a killed run made, made durable
                return tl::unexpected(errno_text(m_path));
            }
        }
        const UniqueFd spool(::open(spool_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!delivered && size > offset && size < offset + length && spool.valid()) {
            // Killed mid-append: remove the partial message if it is ours, byte for byte. (Without
            // the spool, the append never started: this run's process removed it, or never
            // wrote it.)
            auto ours = storage::mbox::hash_file_range(spool.get(), 0, size - offset);
            auto theirs = storage::mbox::hash_file_range(fd, offset, size);
            if (ours && theirs && *ours == *theirs) {
                if (::ftruncate(fd, static_cast<off_t>(offset)) != 0 || ::fsync(fd) != 0) {
                    return tl::unexpected(errno_text(m_path));
                }
            }
            // Otherwise another program changed the mbox since: the partial message cannot be
            // told apart from theirs and stays; the message is delivered again.
        }
        ::unlink(spool_path.c_str());
        return delivered;
    }

    [[nodiscard]] std::string describe() const override { return "mbox " + m_path; }

private:
    std::string m_path;
    std::string m_spool;
};

// --- command ------------------------------------------------------------------------------------

class CommandMessage final : public SinkMessage {
public:
    explicit CommandMessage(SpoolFile spool) : m_spool(std::move(spool)) {}

    SinkResult write(std::string_view bytes) override { return m_spool.write(bytes); }
    SinkResult finish() override { return {}; }
    [[nodiscard]] SpoolFile& spool() noexcept { return m_spool; }

private:
    SpoolFile m_spool;
};

// Runs the command with the spool file on its standard input; exit status 0 is success.
SinkResult run_command(const std::string& command, SpoolFile& spool, const SinkOptions& options)
{
    if (::lseek(spool.fd(), 0, SEEK_SET) != 0) {
        return tl::unexpected(errno_text(spool.path()));
    }
    const pid_t child = ::fork();
    if (child < 0) {
        return tl::unexpected(errno_text("fork"));
    }
    if (child == 0) {
        ::setpgid(0, 0); // its own process group: a timeout ends the command and its children
        ::dup2(spool.fd(), STDIN_FILENO);
        ::dup2(STDERR_FILENO, STDOUT_FILENO); // keep pigeon's own output (--json) clean
        ::setenv("PIGEON_ACCOUNT", options.account.c_str(), 1);
        ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    (void)::setpgid(child, child);
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
    const auto deadline = std::chrono::steady_clock::now() + options.command_timeout;
    for (bool exited = false; !exited;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            ::kill(-child, SIGKILL);
            ::waitpid(child, nullptr, 0);
            if (pidfd >= 0) {
                ::close(pidfd);
            }
            return tl::unexpected(fmt::format("delivery command timed out after {} s: {}",
                                              options.command_timeout.count() / 1000, command));
        }
        if (pidfd >= 0) {
            pollfd entry{pidfd, POLLIN, 0};
            const int ready = ::poll(&entry, 1, static_cast<int>(std::min<long long>(left.count(), 60'000)));
            exited = ready > 0;
        } else {
            // No pidfd (an old kernel): look ten times a second, leaving the child to waitpid().
            siginfo_t info{};
            exited = ::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                     info.si_pid == child;
            if (!exited) {
                ::usleep(100'000);
            }
        }
    }
    if (pidfd >= 0) {
        ::close(pidfd);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            return tl::unexpected(errno_text("waitpid"));
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return {};
    }
    return tl::unexpected(
        WIFEXITED(status)
            ? fmt::format("delivery command exited with status {}{}: {}", WEXITSTATUS(status),
                          WEXITSTATUS(status) == 75 ? " (temporary failure)" : "", command)
            : fmt::format("delivery command killed by signal {}: {}", WTERMSIG(status), command));
}

class CommandSink final : public Sink {
public:
    CommandSink(std::string command, SinkOptions options)
        : m_command(std::move(command)), m_options(std::move(options))
    {
    }

    tl::expected<std::unique_ptr<SinkMessage>, std::string> begin() override
    {
        return begin_spooled<CommandMessage>(m_options.spool_directory);
    }

    SinkResult sync(const std::vector<SinkMessage*>& group) override
    {
        return sync_spooled<CommandMessage>(group);
    }

    // One message at a time: each journalled, then delivered.
    std::vector<SinkResult> publish(const std::vector<SinkMessage*>& group, const Intend& intend) override
    {
        std::vector<SinkResult> results;
        for (auto* message : group) {
            auto& spool = own<CommandMessage>(message)->spool();
            if (auto noted = intend({fmt::format("command {}", spool.name())}); !noted) {
                results.emplace_back(noted);
                continue;
            }
            results.push_back(run_command(m_command, spool, m_options));
        }
        return results;
    }

    tl::expected<bool, std::string> resolve(const std::string& target) override
    {
        // A command cannot be asked whether it delivered: deliver again (at least once).
        const auto words = split_words(target);
        if (words.size() == 2 && plain_name(words[1])) {
            ::unlink((m_options.spool_directory + "/" + std::string(words[1])).c_str());
        }
        return false;
    }

    [[nodiscard]] std::string describe() const override { return "command " + m_command; }

private:
    std::string m_command;
    SinkOptions m_options;
};

} // namespace

void CrlfToLf::feed(std::string_view in, std::string& out)
{
    out.reserve(out.size() + in.size());
    if (m_cr && !in.empty()) {
        m_cr = false;
        if (in.front() != '\n') {
            out += '\r';
        }
    }
    while (!in.empty()) {
        const auto cr = in.find('\r');
        if (cr == std::string_view::npos) {
            out.append(in);
            return;
        }
        out.append(in.substr(0, cr));
        if (cr + 1 == in.size()) {
            m_cr = true; // decided by the next piece
            return;
        }
        if (in[cr + 1] != '\n') {
            out += '\r';
        }
        in.remove_prefix(cr + 1);
    }
}

void CrlfToLf::finish(std::string& out)
{
    if (m_cr) {
        out += '\r';
        m_cr = false;
    }
}

void MboxrdQuoter::feed(std::string_view in, std::string& out)
{
    static constexpr std::string_view from = "From ";
    out.reserve(out.size() + in.size());
    for (const char c : in) {
        if (!m_line_start) {
            out += c;
            m_line_start = c == '\n';
            continue;
        }
        // At the start of a line: count '>'s, then match "From " (held, never stored: a line
        // of a million '>'s costs a counter, not a buffer).
        if (c == '>' && m_from == 0) {
            ++m_gts;
            continue;
        }
        if (m_from < from.size() && c == from[m_from]) {
            if (++m_from == from.size()) {
                out.append(m_gts + 1, '>'); // mboxrd: one more '>'
                out.append(from);
                m_gts = 0;
                m_from = 0;
                m_line_start = false;
            }
            continue;
        }
        out.append(m_gts, '>');
        out.append(from.substr(0, m_from));
        out += c;
        m_gts = 0;
        m_from = 0;
        m_line_start = c == '\n';
    }
}

void MboxrdQuoter::finish(std::string& out)
{
    out.append(m_gts, '>');
    out.append(std::string_view("From ").substr(0, m_from));
    m_gts = 0;
    m_from = 0;
    m_line_start = true;
}

tl::expected<std::unique_ptr<Sink>, std::string> make_sink(const std::string& deliver_to, SinkOptions options)
{
    if (deliver_to.starts_with("maildir:") && deliver_to.size() > 8) {
        return std::make_unique<MaildirSink>(deliver_to.substr(8));
    }
    if (deliver_to.starts_with("mbox:") && deliver_to.size() > 5) {
        return std::make_unique<MboxSink>(deliver_to.substr(5), options.spool_directory);
    }
    if (deliver_to.starts_with("command:") && deliver_to.size() > 8) {
        return std::make_unique<CommandSink>(deliver_to.substr(8), std::move(options));
    }
    if (deliver_to.starts_with("imap:")) {
        auto target = parse_imap_target(deliver_to.substr(5));
        if (!target) {
            return tl::unexpected(fmt::format("deliver_to: {}", target.error()));
        }
        return make_imap_sink(std::move(*target), std::move(options));
    }
    return tl::unexpected(fmt::format(
        "deliver_to \"{}\": must be maildir:PATH, mbox:PATH, command:COMMAND or imap:URL", deliver_to));
}

} // namespace pigeon::client
