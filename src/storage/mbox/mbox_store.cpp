#include "storage/mbox/mbox_store.hpp"

#include "core/crash_point.hpp"
#include "storage/fs_util.hpp"
#include "storage/maildrop_lock.hpp"
#include "storage/mbox/mbox_index.hpp"
#include "storage/mbox/mbox_io.hpp"
#include "storage/mbox/mbox_lock.hpp"
#include "storage/mbox/mbox_parser.hpp"
#include "storage/path_template.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_set>
#include <vector>

namespace pigeon::storage {
namespace {

using mbox::Entry;
using mbox::MboxLock;
using mbox::RewriteContext;

constexpr std::size_t read_chunk_octets = std::size_t{64} * 1024;

std::string directory_of(const std::string& path)
{
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

std::string name_of(const std::string& path)
{
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<void> make_directory(const std::string& path)
{
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        return fail(last_errno());
    }
    return {};
}

// The directories a user's files go in; their parents may not exist yet either
// (/var/mail/example.org/alice).
Result<void> ensure_directories(const MboxPaths& paths)
{
    for (const std::string& directory : {directory_of(paths.mbox), paths.index_directory}) {
        const std::string parent = directory_of(directory);
        if (parent != directory) {
            (void)make_directory(parent);
        }
        if (auto made = make_directory(directory); !made) {
            return made;
        }
    }
    return {};
}

// Opens the mbox for reading and rewriting. A spool directory such as /var/mail is shared, so
// what a local user could plant there is refused: a symbolic link (O_NOFOLLOW), something that
// is not a regular file, or a file with another hard link (Postfix's local(8) checks the same).
Result<UniqueFd> open_mbox(const std::string& path, bool create)
{
    const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | (create ? O_CREAT : 0);
    UniqueFd fd(::open(path.c_str(), flags, 0600));
    if (!fd.valid()) {
        return fail(last_errno());
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return fail(last_errno());
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
        return fail(errc::maildrop_unavailable);
    }
    return fd;
}

MboxLock::Options lock_options(const MboxOptions& options)
{
    return MboxLock::Options{options.dotlock, options.lock_timeout};
}

RewriteContext rewrite_context(int fd, const MboxPaths& paths, const MboxOptions& options, MboxLock* lock)
{
    return RewriteContext{fd, paths.journal, paths.index, &options.test_hooks, lock};
}

// "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n": asctime()'s layout, spelled out so that no
// locale can change it.
std::string from_line_now()
{
    static constexpr std::array<const char*, 7> days{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr std::array<const char*, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    ::localtime_r(&now, &local);
    return fmt::format("From MAILER-DAEMON {} {} {:2} {:02}:{:02}:{:02} {}\n",
                       days[static_cast<std::size_t>(local.tm_wday) % 7],
                       months[static_cast<std::size_t>(local.tm_mon) % 12], local.tm_mday, local.tm_hour,
                       local.tm_min, local.tm_sec, local.tm_year + 1900);
}

// --- reading -----------------------------------------------------------------------------------

class MboxReader final : public MessageReader {
public:
    MboxReader(std::shared_ptr<UniqueFd> fd, std::uint64_t begin, std::uint64_t end)
        : m_fd(std::move(fd)), m_offset(begin), m_end(end), m_raw(std::size_t{16} * 1024)
    {
    }

    [[nodiscard]] Result<std::size_t> read(std::span<char> buffer) override
    {
        while (m_pending_position == m_pending.size()) {
            if (m_finished) {
                return 0;
            }
            m_pending.clear();
            m_pending_position = 0;
            if (m_offset == m_end) {
                m_unquoter.finish(m_pending);
                m_finished = true;
                continue;
            }
            const auto want =
                static_cast<std::size_t>(std::min<std::uint64_t>(m_raw.size(), m_end - m_offset));
            auto count = mbox::pread_full(m_fd->get(), m_raw.data(), want, m_offset);
            if (!count) {
                return fail(count.error());
            }
            if (*count == 0) {
                return fail(errc::message_unavailable); // the mbox shrank under us
            }
            m_unquoter.feed(std::string_view(m_raw.data(), *count), m_pending);
            m_offset += *count;
        }
        const std::size_t count = std::min(buffer.size(), m_pending.size() - m_pending_position);
        std::memcpy(buffer.data(), m_pending.data() + m_pending_position, count);
        m_pending_position += count;
        return count;
    }

private:
    std::shared_ptr<UniqueFd> m_fd;
    std::uint64_t m_offset;
    std::uint64_t m_end;
    std::vector<char> m_raw;
    mbox::Unquoter m_unquoter;
    std::string m_pending; // unquoted octets not yet handed out (at most a raw chunk and a few)
    std::size_t m_pending_position = 0;
    bool m_finished = false;
};

class MboxMaildrop final : public Maildrop {
public:
    MboxMaildrop(const MboxOptions& options, MboxPaths paths, std::shared_ptr<UniqueFd> fd,
                 std::vector<Entry> entries, std::shared_ptr<MaildropLock> lock)
        : m_options(options), m_paths(std::move(paths)), m_fd(std::move(fd)), m_entries(std::move(entries)),
          m_lock(std::move(lock))
    {
    }

    [[nodiscard]] std::uint32_t message_count() const noexcept override
    {
        return static_cast<std::uint32_t>(m_entries.size());
    }
    [[nodiscard]] std::uint64_t message_octets(MessageIndex index) const noexcept override
    {
        return m_entries[index.value].wire_octets;
    }
    [[nodiscard]] std::string_view unique_id(MessageIndex index) const noexcept override
    {
        return m_entries[index.value].unique_id;
    }

    [[nodiscard]] Result<std::unique_ptr<MessageReader>> open_message(MessageIndex index) override
    {
        if (index.value >= m_entries.size()) {
            return fail(errc::no_such_message);
        }
        const Entry& entry = m_entries[index.value];
        // Only appends may happen during a session; should another program have rewritten the
        // mbox anyway, refuse rather than send the wrong octets.
        std::array<char, 5> head{};
        auto count = mbox::pread_full(m_fd->get(), head.data(), head.size(), entry.from_offset);
        if (!count || std::string_view(head.data(), *count) != mbox::from_prefix) {
            return fail(errc::message_unavailable);
        }
        return std::make_unique<MboxReader>(m_fd, entry.content_offset, entry.content_end);
    }

    [[nodiscard]] std::string retrieval_record_path() const override { return m_paths.retrieval_record; }

    [[nodiscard]] Result<void> commit(std::span<const MessageIndex> deletions) override
    {
        if (m_lock->revoked()) {
            return fail(errc::maildrop_in_use); // another login took this maildrop over
        }
        // Deletions go by unique-id: they stay right even if the mbox changed since the snapshot.
        std::unordered_set<std::string> doomed;
        for (const MessageIndex index : deletions) {
            if (index.value < m_entries.size()) {
                doomed.insert(m_entries[index.value].unique_id);
            }
        }
        if (doomed.empty()) {
            return {};
        }
        auto fd = open_mbox(m_paths.mbox, false);
        if (!fd) {
            if (fd.error() == std::error_code(ENOENT, std::system_category())) {
                return {}; // the mbox is gone, and the messages with it
            }
            return fail(errc::commit_failed);
        }
        auto lock = MboxLock::acquire(fd->get(), m_paths.mbox, lock_options(m_options));
        if (!lock) {
            return fail(errc::commit_failed);
        }
        const RewriteContext context = rewrite_context(fd->get(), m_paths, m_options, &*lock);
        if (!mbox::replay_journal(context)) {
            return fail(errc::commit_failed);
        }
        // A second attempt parses the whole mbox, should the index have pointed at anything
        // other than a From_ line.
        for (int attempt = 0; attempt < 2; ++attempt) {
            mbox::SyncOptions sync;
            sync.force_full = attempt > 0;
            auto index = mbox::sync_index(fd->get(), m_paths.index, sync);
            if (!index) {
                return fail(errc::commit_failed);
            }
            std::vector<bool> deleted(index->entries.size(), false);
            for (std::size_t i = 0; i < index->entries.size(); ++i) {
                deleted[i] = doomed.contains(index->entries[i].unique_id);
            }
            auto plan = mbox::plan_deletions(*index, deleted);
            if (!plan) {
                return {}; // none of them is there any more
            }
            auto boundaries = check_boundaries(fd->get(), *index, plan->region_start);
            if (!boundaries) {
                return fail(errc::commit_failed);
            }
            if (!*boundaries) {
                continue;
            }
            // Checked last, just before anything changes.
            if (m_lock->revoked()) {
                return fail(errc::maildrop_in_use);
            }
            if (!mbox::rewrite(context, *plan)) {
                return fail(errc::commit_failed);
            }
            return {};
        }
        return fail(errc::commit_failed);
    }

private:
    // Every message the rewrite moves must start where the index says.
    static Result<bool> check_boundaries(int fd, const mbox::Index& index, std::uint64_t region_start)
    {
        for (const Entry& entry : index.entries) {
            if (entry.from_offset < region_start) {
                continue;
            }
            std::array<char, 5> head{};
            auto count = mbox::pread_full(fd, head.data(), head.size(), entry.from_offset);
            if (!count) {
                return fail(count.error());
            }
            if (std::string_view(head.data(), *count) != mbox::from_prefix) {
                return false;
            }
        }
        return true;
    }

    MboxOptions m_options;
    MboxPaths m_paths;
    std::shared_ptr<UniqueFd> m_fd;
    std::vector<Entry> m_entries;
    std::shared_ptr<MaildropLock> m_lock;
};

class EmptyMaildrop final : public Maildrop {
public:
    explicit EmptyMaildrop(std::shared_ptr<MaildropLock> lock) : m_lock(std::move(lock)) {}

    [[nodiscard]] std::uint32_t message_count() const noexcept override { return 0; }
    [[nodiscard]] std::uint64_t message_octets(MessageIndex /*index*/) const noexcept override { return 0; }
    [[nodiscard]] std::string_view unique_id(MessageIndex /*index*/) const noexcept override { return {}; }
    [[nodiscard]] Result<std::unique_ptr<MessageReader>> open_message(MessageIndex /*index*/) override
    {
        return fail(errc::no_such_message);
    }
    [[nodiscard]] Result<void> commit(std::span<const MessageIndex> /*deletions*/) override
    {
        if (m_lock->revoked()) {
            return fail(errc::maildrop_in_use);
        }
        return {};
    }

private:
    std::shared_ptr<MaildropLock> m_lock;
};

// --- delivery ----------------------------------------------------------------------------------

// A delivery that takes more than one write announces itself first in an "append mark" file:
//   pigeon-mbox-append 1 <device> <inode> <mbox size before> <entry octets> <head octets>\n<head>
// where the head is what the entry starts with (the blank line it may add, and its From_ line).
// Whoever locks the mbox next settles a mark a crash left: the entry is whole (its octets are all
// there and hold no From_ line but its own), so the mark goes; the mbox still ends inside the
// entry with nothing after it but its own octets, so it is cut back to its size before; anything
// else (another program appended after a remnant, or the file was replaced) leaves the mbox alone
// and the mark set aside ("<mark>.set-aside"), for a human.
constexpr std::string_view append_mark_magic = "pigeon-mbox-append 1 ";
constexpr std::size_t max_append_mark_octets = 4096;

Result<void> write_append_mark(const std::string& path, int mbox_fd, std::uint64_t original_size,
                               std::uint64_t entry_octets, std::string_view head)
{
    struct stat st {};
    if (::fstat(mbox_fd, &st) != 0) {
        return fail(last_errno());
    }
    return write_file_atomically(path,
                                 fmt::format("{}{} {} {} {} {}\n{}", append_mark_magic, st.st_dev, st.st_ino,
                                             original_size, entry_octets, head.size(), head));
}

struct AppendMark {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::uint64_t original_size = 0;
    std::uint64_t entry_octets = 0;
    std::string head;
};

std::optional<AppendMark> parse_append_mark(std::string_view text)
{
    if (!text.starts_with(append_mark_magic)) {
        return std::nullopt;
    }
    text.remove_prefix(append_mark_magic.size());
    const auto newline = text.find('\n');
    if (newline == std::string_view::npos) {
        return std::nullopt;
    }
    std::array<std::uint64_t, 5> fields{};
    std::string_view line = text.substr(0, newline);
    for (auto& field : fields) {
        const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), field);
        if (ec != std::errc()) {
            return std::nullopt;
        }
        line.remove_prefix(static_cast<std::size_t>(end - line.data()));
        if (!line.empty() && line.front() == ' ') {
            line.remove_prefix(1);
        }
    }
    const std::string_view head = text.substr(newline + 1);
    if (!line.empty() || head.size() != fields[4] || head.empty() || fields[3] < head.size()) {
        return std::nullopt;
    }
    return AppendMark{fields[0], fields[1], fields[2], fields[3], std::string(head)};
}

// Under the mbox lock (see above).
Result<void> settle_append(int mbox_fd, const std::string& mark_path)
{
    auto text = read_small_file(mark_path, max_append_mark_octets);
    if (!text) {
        if (text.error() == std::error_code(ENOENT, std::system_category())) {
            return {};
        }
        return fail(text.error());
    }
    const auto set_aside = [&mark_path]() -> Result<void> {
        if (::rename(mark_path.c_str(), (mark_path + ".set-aside").c_str()) != 0) {
            return fail(last_errno());
        }
        return {};
    };
    const auto mark = parse_append_mark(*text);
    struct stat st {};
    if (::fstat(mbox_fd, &st) != 0) {
        return fail(last_errno());
    }
    if (!mark || mark->device != static_cast<std::uint64_t>(st.st_dev) ||
        mark->inode != static_cast<std::uint64_t>(st.st_ino)) {
        return set_aside();
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const std::uint64_t end = std::min(size, mark->original_size + mark->entry_octets);
    // Is what follows the old end this entry (its head, then no other From_ line)?
    bool ours = size > mark->original_size;
    std::uint32_t from_lines = 0;
    std::vector<char> buffer(std::size_t{64} * 1024);
    int matched = 0; // octets of "From " matched at the start of the current line; -1: none
    for (std::uint64_t at = mark->original_size; ours && at < end;) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - at));
        auto count = mbox::pread_full(mbox_fd, buffer.data(), want, at);
        if (!count) {
            return fail(count.error());
        }
        if (*count != want) {
            return fail(errc::maildrop_unavailable);
        }
        for (std::size_t i = 0; i < want; ++i) {
            const std::uint64_t position = at + i - mark->original_size;
            const char c = buffer[i];
            if (position < mark->head.size() && c != mark->head[static_cast<std::size_t>(position)]) {
                ours = false; // not even our head: someone else's mail (or nothing of ours)
                break;
            }
            if (matched >= 0 && c == "From "[static_cast<std::size_t>(matched)]) {
                if (++matched == 5) {
                    ++from_lines;
                    matched = -1;
                }
            } else {
                matched = -1;
            }
            if (c == '\n') {
                matched = 0;
            }
        }
        at += want;
    }
    if (size <= mark->original_size) {
        // Nothing of the entry was written (or the mbox was cut since): nothing to settle.
    } else if (!ours || from_lines != 1) {
        return set_aside();
    } else if (size < mark->original_size + mark->entry_octets) {
        crash_point("mbox-settle", "truncate");
        if (::ftruncate(mbox_fd, static_cast<off_t>(mark->original_size)) != 0) {
            return fail(last_errno());
        }
        if (auto synced = mbox::fsync_file(mbox_fd); !synced) {
            return synced;
        }
    }
    ::unlink(mark_path.c_str());
    return {};
}

// The message is quoted into a nameless spool file as it arrives, so the mbox is locked only for
// the final copy, never while a slow client sends it.
Result<UniqueFd> open_spool(const std::string& directory)
{
#ifdef O_TMPFILE
    UniqueFd fd(::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (fd.valid()) {
        return fd;
    }
#endif
    std::string name = directory + "/.pigeon-spool.XXXXXX";
    const int raw = ::mkostemp(name.data(), O_CLOEXEC);
    if (raw < 0) {
        return fail(last_errno());
    }
    ::unlink(name.c_str()); // nameless: gone with the descriptor, even after a crash
    return UniqueFd(raw);
}

class MboxPendingDelivery final : public PendingDelivery {
public:
    MboxPendingDelivery(const MboxOptions& options, MboxPaths paths, UniqueFd spool)
        : m_options(options), m_paths(std::move(paths)), m_spool(std::move(spool)),
          m_from_line(from_line_now())
    {
    }

    [[nodiscard]] Result<void> write(std::string_view bytes) override
    {
        if (m_failed || m_committed) {
            return fail(errc::delivery_temporary_failure);
        }
        m_scratch.clear();
        m_quoter.feed(bytes, m_scratch);
        if (!spool(m_scratch)) {
            m_failed = true;
            return fail(errc::delivery_temporary_failure);
        }
        if (!bytes.empty()) {
            m_last_octet = bytes.back();
            m_message_octets += bytes.size();
        }
        return {};
    }

    [[nodiscard]] Result<std::string> commit() override
    {
        if (m_failed || m_committed) {
            return fail(errc::delivery_temporary_failure);
        }
        auto unique_id = append();
        if (!unique_id) {
            m_failed = true;
            return fail(errc::delivery_temporary_failure);
        }
        m_committed = true;
        return unique_id;
    }

private:
    Result<void> spool(std::string_view bytes)
    {
        if (auto written = mbox::pwrite_all(m_spool.get(), bytes, m_spool_octets); !written) {
            return written;
        }
        m_spool_octets += bytes.size();
        return {};
    }

    static void roll_back(int fd, std::uint64_t size)
    {
        // Under the lock nobody else has appended since: cut back to exactly what was there.
        (void)::ftruncate(fd, static_cast<off_t>(size));
        (void)mbox::fsync_file(fd);
    }

    Result<std::string> append()
    {
        m_scratch.clear();
        m_quoter.finish(m_scratch);
        if (auto written = spool(m_scratch); !written) {
            return fail(written.error());
        }
        // The next From_ line must start a line: a message without a final newline gets one,
        // and the index remembers to leave it out when reading.
        const bool trimmed = m_message_octets > 0 && m_last_octet != '\n';

        (void)ensure_directories(m_paths);
        auto fd = open_mbox(m_paths.mbox, true);
        if (!fd) {
            return fail(fd.error());
        }
        auto lock = MboxLock::acquire(fd->get(), m_paths.mbox, lock_options(m_options));
        if (!lock) {
            return fail(lock.error());
        }
        if (auto replayed = mbox::replay_journal(rewrite_context(fd->get(), m_paths, m_options, &*lock));
            !replayed) {
            return fail(replayed.error());
        }
        if (auto settled = settle_append(fd->get(), m_paths.append_mark); !settled) {
            return fail(settled.error());
        }
        struct stat st {};
        if (::fstat(fd->get(), &st) != 0) {
            return fail(last_errno());
        }
        const auto original_size = static_cast<std::uint64_t>(st.st_size);
        // A blank line must come before the From_ line; an mbox written by a careless program
        // may lack it (or even the last line's LF).
        std::string head;
        if (original_size > 0) {
            std::array<char, 2> last{'\n', '\n'};
            const std::uint64_t take = std::min<std::uint64_t>(original_size, 2);
            auto count = mbox::pread_full(fd->get(), last.data() + (2 - take), static_cast<std::size_t>(take),
                                          original_size - take);
            if (!count) {
                return fail(count.error());
            }
            if (last[1] != '\n') {
                head = "\n\n";
            } else if (last[0] != '\n') {
                head = "\n";
            }
        }
        const std::uint64_t from_offset = original_size + head.size();
        head += m_from_line;

        const std::string_view tail = trimmed ? "\n\n" : "\n"; // (the added LF and) the separator
        bool marked_append = false;
        auto appended = [&]() -> Result<void> {
            std::uint64_t offset = original_size;
            if (m_spool_octets <= read_chunk_octets) {
                // Most mail: the whole entry (From_ line, message, separator) in one write, so a
                // crash leaves all of it or none of it, never a From_ line without its message.
                std::string entry = head;
                entry.resize(head.size() + static_cast<std::size_t>(m_spool_octets));
                auto count = mbox::pread_full(m_spool.get(), entry.data() + head.size(),
                                              static_cast<std::size_t>(m_spool_octets), 0);
                if (!count) {
                    return fail(count.error());
                }
                if (*count != m_spool_octets) {
                    return fail(errc::delivery_temporary_failure);
                }
                entry += tail;
                crash_point("mbox-deliver", "write");
                if (auto written = mbox::pwrite_all(fd->get(), entry, offset); !written) {
                    return written;
                }
                crash_point("mbox-deliver", "fsync");
                if (auto synced = mbox::fsync_file(fd->get()); !synced) {
                    return synced;
                }
                return original_size == 0 ? fsync_directory(directory_of(m_paths.mbox)) : Result<void>{};
            }
            // More than one write: a crash could leave a From_ line and part of a message, so
            // the append is announced first and the next locker cuts such a remnant off.
            const std::uint64_t entry_octets = head.size() + m_spool_octets + tail.size();
            if (auto marked =
                    write_append_mark(m_paths.append_mark, fd->get(), original_size, entry_octets, head);
                !marked) {
                return marked;
            }
            marked_append = true;
            if (auto written = mbox::pwrite_all(fd->get(), head, offset); !written) {
                return written;
            }
            offset += head.size();
            std::vector<char> buffer(read_chunk_octets);
            for (std::uint64_t copied = 0; copied < m_spool_octets;) {
                const auto want =
                    static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), m_spool_octets - copied));
                auto count = mbox::pread_full(m_spool.get(), buffer.data(), want, copied);
                if (!count) {
                    return fail(count.error());
                }
                if (*count != want) {
                    return fail(errc::delivery_temporary_failure);
                }
                crash_point("mbox-deliver", "write");
                if (auto written = mbox::pwrite_all(fd->get(), std::string_view(buffer.data(), want), offset);
                    !written) {
                    return written;
                }
                copied += want;
                offset += want;
                lock->refresh();
            }
            if (auto written = mbox::pwrite_all(fd->get(), tail, offset); !written) {
                return written;
            }
            crash_point("mbox-deliver", "fsync");
            if (auto synced = mbox::fsync_file(fd->get()); !synced) {
                return synced;
            }
            // An mbox this delivery may have created exists after a crash only once its
            // directory entry is on disk too.
            return original_size == 0 ? fsync_directory(directory_of(m_paths.mbox)) : Result<void>{};
        }();
        if (!appended) {
            roll_back(fd->get(), original_size);
        }
        if (marked_append) {
            // Whole and synced, or rolled back: the mark has nothing left to settle. Its removal
            // need not be durable (a mark that outlives it finds the append whole).
            crash_point("mbox-deliver", "unmark");
            ::unlink(m_paths.append_mark.c_str());
        }
        if (!appended) {
            return fail(appended.error());
        }

        mbox::SyncOptions sync;
        if (trimmed) {
            sync.trimmed_message_at = from_offset;
            sync.index_required = true;
        }
        auto index = mbox::sync_index(fd->get(), m_paths.index, sync);
        if (!index) {
            roll_back(fd->get(), original_size);
            return fail(index.error());
        }
        const auto found = std::find_if(index->entries.begin(), index->entries.end(),
                                        [&](const Entry& entry) { return entry.from_offset == from_offset; });
        if (found == index->entries.end() || found->trimmed != trimmed) {
            roll_back(fd->get(), original_size);
            return fail(errc::delivery_temporary_failure);
        }
        return found->unique_id;
    }

    MboxOptions m_options;
    MboxPaths m_paths;
    UniqueFd m_spool;
    std::string m_from_line;
    mbox::Quoter m_quoter;
    std::string m_scratch;
    std::uint64_t m_spool_octets = 0;
    std::uint64_t m_message_octets = 0;
    char m_last_octet = '\n';
    bool m_failed = false;
    bool m_committed = false;
};

} // namespace

MboxStore::MboxStore(MboxOptions options) : m_options(std::move(options)) {}

Result<MboxPaths> MboxStore::paths(std::string_view user) const
{
    auto mbox_path = expand_path_template(m_options.path_template, user);
    if (!mbox_path) {
        return fail(mbox_path.error());
    }
    MboxPaths paths;
    paths.mbox = std::move(*mbox_path);
    if (m_options.index_directory_template.empty()) {
        paths.index_directory = directory_of(paths.mbox);
        const std::string prefix = paths.index_directory + "/." + name_of(paths.mbox);
        paths.index = prefix + ".pigeon-index";
        paths.session_lock = prefix + ".pigeon-pop3.lock";
        paths.journal = prefix + ".pigeon-journal";
        paths.append_mark = prefix + ".pigeon-append";
        paths.retrieval_record = prefix + ".pigeon-retrieved";
    } else {
        auto directory = expand_path_template(m_options.index_directory_template, user);
        if (!directory) {
            return fail(directory.error());
        }
        paths.index_directory = std::move(*directory);
        paths.index = paths.index_directory + "/pigeon-index";
        paths.session_lock = paths.index_directory + "/pigeon-pop3.lock";
        paths.journal = paths.index_directory + "/pigeon-journal";
        paths.append_mark = paths.index_directory + "/pigeon-append";
        paths.retrieval_record = paths.index_directory + "/pigeon-retrieved";
    }
    return paths;
}

Result<std::unique_ptr<Maildrop>> MboxStore::open(std::string_view user)
{
    auto paths = this->paths(user);
    if (!paths) {
        return fail(paths.error());
    }
    if (!ensure_directories(*paths)) {
        return fail(errc::maildrop_unavailable);
    }
    auto session = LockRegistry::process().acquire(paths->session_lock, m_options.takeover);
    if (!session) {
        return fail(session.error() == make_error_code(errc::maildrop_in_use)
                        ? session.error()
                        : make_error_code(errc::maildrop_unavailable));
    }
    auto fd = open_mbox(paths->mbox, false);
    if (!fd) {
        if (fd.error() == std::error_code(ENOENT, std::system_category())) {
            return std::make_unique<EmptyMaildrop>(std::move(*session)); // nothing delivered yet
        }
        return fail(errc::maildrop_unavailable);
    }
    // The mbox lock only while reading it into the snapshot: a consistent view (no half-appended
    // message, no half-done rewrite), without keeping the MTA waiting for the whole session.
    auto lock = MboxLock::acquire(fd->get(), paths->mbox, lock_options(m_options));
    if (!lock) {
        return fail(lock.error() == make_error_code(errc::maildrop_in_use)
                        ? lock.error()
                        : make_error_code(errc::maildrop_unavailable));
    }
    if (!mbox::replay_journal(rewrite_context(fd->get(), *paths, m_options, &*lock)) ||
        !settle_append(fd->get(), paths->append_mark)) {
        return fail(errc::maildrop_unavailable);
    }
    auto index = mbox::sync_index(fd->get(), paths->index, mbox::SyncOptions{});
    if (!index) {
        return fail(errc::maildrop_unavailable);
    }
    lock->release();
    return std::make_unique<MboxMaildrop>(m_options, std::move(*paths),
                                          std::make_shared<UniqueFd>(std::move(*fd)),
                                          std::move(index->entries), std::move(*session));
}

Result<std::unique_ptr<PendingDelivery>> MboxStore::begin(std::string_view user)
{
    auto paths = this->paths(user);
    if (!paths) {
        return fail(paths.error());
    }
    if (!ensure_directories(*paths)) {
        return fail(errc::delivery_temporary_failure);
    }
    auto spool = open_spool(paths->index_directory);
    if (!spool) {
        return fail(errc::delivery_temporary_failure);
    }
    return std::make_unique<MboxPendingDelivery>(m_options, std::move(*paths), std::move(*spool));
}

} // namespace pigeon::storage
