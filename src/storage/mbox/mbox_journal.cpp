#include "storage/mbox/mbox_journal.hpp"

#include "core/crash_point.hpp"
#include "core/strings.hpp"
#include "storage/fs_util.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pigeon::storage::mbox {
namespace {

constexpr std::string_view journal_magic = "pigeon-mbox-journal 1 ";
constexpr std::string_view trailer_magic = "pigeon-mbox-journal-end ";
constexpr std::size_t trailer_octets = trailer_magic.size() + 64 + 1;
constexpr std::size_t max_header_octets = 512;
constexpr std::size_t default_chunk_octets = std::size_t{64} * 1024;
// Replays that fold newly appended mail into the journal before giving up (each fold takes in
// everything appended so far, so one is enough unless a non-locking writer keeps appending).
constexpr int max_replay_rounds = 4;

struct JournalHeader {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::uint64_t region_start = 0;
    std::uint64_t old_size = 0;
    std::uint64_t kept_octets = 0;
    std::uint64_t index_octets = 0;
    std::uint64_t index_covers = 0;
    std::string stale_hash;
    std::uint64_t header_octets = 0; // filled in by parsing or formatting

    [[nodiscard]] std::uint64_t kept_offset() const noexcept { return header_octets; }
    [[nodiscard]] std::uint64_t index_offset() const noexcept { return header_octets + kept_octets; }
    [[nodiscard]] std::uint64_t body_octets() const noexcept { return index_offset() + index_octets; }
    [[nodiscard]] std::uint64_t new_end() const noexcept { return region_start + kept_octets; }
};

std::string format_header(const JournalHeader& header)
{
    return fmt::format("{}{} {} {} {} {} {} {} {}\n", journal_magic, header.device, header.inode,
                       header.region_start, header.old_size, header.kept_octets, header.index_octets,
                       header.index_covers, header.stale_hash);
}

std::optional<JournalHeader> parse_header(std::string_view text)
{
    const std::size_t end = text.find('\n');
    if (end == std::string_view::npos || !text.starts_with(journal_magic)) {
        return std::nullopt;
    }
    std::string_view rest = text.substr(journal_magic.size(), end - journal_magic.size());
    std::array<std::uint64_t, 7> numbers{};
    for (auto& number : numbers) {
        const std::size_t space = rest.find(' ');
        if (space == std::string_view::npos) {
            return std::nullopt;
        }
        const auto parsed = parse_u64(rest.substr(0, space));
        if (!parsed) {
            return std::nullopt;
        }
        number = *parsed;
        rest.remove_prefix(space + 1);
    }
    JournalHeader header{numbers[0], numbers[1], numbers[2],        numbers[3], numbers[4],
                         numbers[5], numbers[6], std::string(rest), end + 1};
    // Sizes that cannot be: guards against overflow in what follows.
    const std::uint64_t limit = std::uint64_t{1} << 62U;
    if (header.stale_hash.size() != 32 || header.old_size > limit || header.region_start > header.old_size ||
        header.kept_octets > header.old_size - header.region_start ||
        header.index_octets > max_index_octets || header.index_covers > header.new_end()) {
        return std::nullopt;
    }
    return header;
}

std::string directory_of(const std::string& path)
{
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

class Steps {
public:
    explicit Steps(const RewriteContext& context) : m_context(context) {}
    void operator()(std::string_view step) const
    {
        crash_point("mbox", step);
        if (m_context.hooks != nullptr && m_context.hooks->before_io_step) {
            m_context.hooks->before_io_step(step);
        }
    }

private:
    const RewriteContext& m_context;
};

std::size_t chunk_octets(const RewriteContext& context)
{
    return context.hooks != nullptr && context.hooks->copy_chunk_octets > 0 ? context.hooks->copy_chunk_octets
                                                                            : default_chunk_octets;
}

// Copies [from_offset, from_offset + length) of one file to another at to_offset, one chunk
// (and one named step) at a time.
Result<void> copy_range(const RewriteContext& context, int from_fd, std::uint64_t from_offset, int to_fd,
                        std::uint64_t to_offset, std::uint64_t length, std::string_view step, Sha256* hash)
{
    const Steps steps(context);
    std::vector<char> buffer(chunk_octets(context));
    while (length > 0) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), length));
        auto count = pread_full(from_fd, buffer.data(), want, from_offset);
        if (!count) {
            return fail(count.error());
        }
        if (*count < want) {
            return fail(errc::maildrop_damaged); // shorter than it must be
        }
        const std::string_view piece(buffer.data(), want);
        steps(step);
        if (auto written = pwrite_all(to_fd, piece, to_offset); !written) {
            return written;
        }
        if (hash != nullptr) {
            hash->update(piece);
        }
        if (context.lock != nullptr) {
            context.lock->refresh();
        }
        from_offset += want;
        to_offset += want;
        length -= want;
    }
    return {};
}

Result<bool> ranges_equal(int a_fd, std::uint64_t a_offset, int b_fd, std::uint64_t b_offset,
                          std::uint64_t length)
{
    std::vector<char> a(default_chunk_octets);
    std::vector<char> b(default_chunk_octets);
    while (length > 0) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(a.size(), length));
        auto a_count = pread_full(a_fd, a.data(), want, a_offset);
        auto b_count = pread_full(b_fd, b.data(), want, b_offset);
        if (!a_count || !b_count) {
            return fail(!a_count ? a_count.error() : b_count.error());
        }
        if (*a_count != want || *b_count != want || std::memcmp(a.data(), b.data(), want) != 0) {
            return false;
        }
        a_offset += want;
        b_offset += want;
        length -= want;
    }
    return true;
}

// The journal's header if the journal is complete and intact, nullopt if not.
Result<std::optional<JournalHeader>> read_complete_journal(int fd)
{
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return fail(last_errno());
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::array<char, max_header_octets> head{};
    auto count = pread_full(fd, head.data(), head.size(), 0);
    if (!count) {
        return fail(count.error());
    }
    auto header = parse_header(std::string_view(head.data(), *count));
    if (!header || header->body_octets() + trailer_octets != size) {
        return std::optional<JournalHeader>{};
    }
    std::array<char, trailer_octets> trailer{};
    count = pread_full(fd, trailer.data(), trailer.size(), header->body_octets());
    if (!count) {
        return fail(count.error());
    }
    const std::string_view trailer_text(trailer.data(), *count);
    if (*count != trailer_octets || !trailer_text.starts_with(trailer_magic) || trailer_text.back() != '\n') {
        return std::optional<JournalHeader>{};
    }
    Sha256 hash;
    std::vector<char> buffer(default_chunk_octets);
    for (std::uint64_t offset = 0; offset < header->body_octets();) {
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), header->body_octets() - offset));
        auto got = pread_full(fd, buffer.data(), want, offset);
        if (!got) {
            return fail(got.error());
        }
        if (*got != want) {
            return std::optional<JournalHeader>{};
        }
        hash.update(std::string_view(buffer.data(), want));
        offset += want;
    }
    if (trailer_text.substr(trailer_magic.size(), 64) != to_hex(hash.finish(), 32)) {
        return std::optional<JournalHeader>{};
    }
    return header;
}

Result<ReplayOutcome> set_aside(const RewriteContext& context)
{
    Steps{context}("journal-set-aside");
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    const std::string aside = fmt::format("{}.set-aside.{}", context.journal_path,
                                          std::chrono::duration_cast<std::chrono::seconds>(now).count());
    if (::rename(context.journal_path.c_str(), aside.c_str()) != 0) {
        return fail(last_errno());
    }
    (void)fsync_directory(directory_of(context.journal_path));
    return ReplayOutcome::set_aside;
}

// The rewrite is in place: write the index it carries, then drop the journal.
Result<ReplayOutcome> finish(const RewriteContext& context, int journal_fd, const JournalHeader& header)
{
    const Steps steps(context);
    std::string text(static_cast<std::size_t>(header.index_octets), '\0');
    auto count = pread_full(journal_fd, text.data(), text.size(), header.index_offset());
    if (!count) {
        return fail(count.error());
    }
    auto entries = *count == text.size() ? parse_entries(text, header.index_covers) : std::nullopt;
    struct stat st {};
    if (::fstat(context.mbox_fd, &st) != 0) {
        return fail(last_errno());
    }
    if (entries) {
        auto stamp = make_stamp(context.mbox_fd, st, header.index_covers);
        if (!stamp) {
            return fail(stamp.error());
        }
        steps("index-write");
        if (!write_file_atomically(context.index_path,
                                   format_index(Index{std::move(*stamp), std::move(*entries)}))) {
            // Keep the journal: the next replay finds the rewrite done and writes the index again.
            return ReplayOutcome::applied;
        }
    }
    steps("journal-remove");
    if (::unlink(context.journal_path.c_str()) != 0 && errno != ENOENT) {
        return fail(last_errno());
    }
    steps("journal-dir-fsync");
    (void)fsync_directory(directory_of(context.journal_path));
    return ReplayOutcome::applied;
}

// Mail was appended after a crash that left the rewrite not yet truncated: a new journal whose
// kept content also holds that tail, replacing the old one atomically.
Result<void> fold_appended_tail(const RewriteContext& context, int journal_fd, const JournalHeader& header,
                                std::uint64_t file_size)
{
    const Steps steps(context);
    const std::uint64_t appended = file_size - header.old_size;
    JournalHeader folded = header;
    folded.old_size = file_size;
    folded.kept_octets = header.kept_octets + appended;
    auto stale = hash_file_range(context.mbox_fd, folded.new_end(), file_size);
    if (!stale) {
        return fail(stale.error());
    }
    folded.stale_hash = std::move(*stale);
    const std::string header_text = format_header(folded);
    folded.header_octets = header_text.size();

    const std::string path = context.journal_path + ".fold";
    steps("fold-create");
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        return fail(last_errno());
    }
    Sha256 hash;
    auto result = [&]() -> Result<void> {
        std::uint64_t offset = 0;
        steps("fold-write");
        if (auto written = pwrite_all(fd.get(), header_text, offset); !written) {
            return written;
        }
        hash.update(header_text);
        offset += header_text.size();
        if (auto copied = copy_range(context, journal_fd, header.kept_offset(), fd.get(), offset,
                                     header.kept_octets, "fold-write", &hash);
            !copied) {
            return copied;
        }
        offset += header.kept_octets;
        if (auto copied = copy_range(context, context.mbox_fd, header.old_size, fd.get(), offset, appended,
                                     "fold-write", &hash);
            !copied) {
            return copied;
        }
        offset += appended;
        if (auto copied = copy_range(context, journal_fd, header.index_offset(), fd.get(), offset,
                                     header.index_octets, "fold-write", &hash);
            !copied) {
            return copied;
        }
        offset += header.index_octets;
        const std::string trailer = fmt::format("{}{}\n", trailer_magic, to_hex(hash.finish(), 32));
        steps("fold-write");
        if (auto written = pwrite_all(fd.get(), trailer, offset); !written) {
            return written;
        }
        steps("fold-fsync");
        if (auto synced = fsync_file(fd.get()); !synced) {
            return synced;
        }
        fd.reset();
        steps("fold-rename");
        if (::rename(path.c_str(), context.journal_path.c_str()) != 0) {
            return fail(last_errno());
        }
        return {};
    }();
    if (!result) {
        fd.reset();
        ::unlink(path.c_str());
        return result;
    }
    steps("fold-dir-fsync");
    return fsync_directory(directory_of(context.journal_path));
}

enum class ApplyResult : std::uint8_t {
    done,
    folded
};

Result<std::pair<ApplyResult, ReplayOutcome>> apply(const RewriteContext& context, int journal_fd,
                                                    const JournalHeader& header)
{
    const Steps steps(context);
    struct stat st {};
    if (::fstat(context.mbox_fd, &st) != 0) {
        return fail(last_errno());
    }
    if (static_cast<std::uint64_t>(st.st_dev) != header.device ||
        static_cast<std::uint64_t>(st.st_ino) != header.inode) {
        auto outcome = set_aside(context); // the mbox was replaced: this journal is not about it
        if (!outcome) {
            return fail(outcome.error());
        }
        return std::pair{ApplyResult::done, *outcome};
    }
    const auto file_size = static_cast<std::uint64_t>(st.st_size);
    bool completed = file_size < header.old_size; // only our truncation ever shrinks it
    if (!completed) {
        auto stale = hash_file_range(context.mbox_fd, header.new_end(), header.old_size);
        if (!stale) {
            return fail(stale.error());
        }
        // The old octets past the new end are still there: not truncated yet. Otherwise they
        // were cut off, and what is there now was appended since.
        completed = *stale != header.stale_hash;
        if (!completed && file_size > header.old_size) {
            if (auto folded = fold_appended_tail(context, journal_fd, header, file_size); !folded) {
                return fail(folded.error());
            }
            return std::pair{ApplyResult::folded, ReplayOutcome::none};
        }
    }
    if (completed) {
        auto same = file_size >= header.new_end()
                        ? ranges_equal(context.mbox_fd, header.region_start, journal_fd, header.kept_offset(),
                                       header.kept_octets)
                        : Result<bool>(false);
        if (!same) {
            return fail(same.error());
        }
        if (!*same) {
            auto outcome = set_aside(context);
            if (!outcome) {
                return fail(outcome.error());
            }
            return std::pair{ApplyResult::done, *outcome};
        }
    } else {
        if (auto copied = copy_range(context, journal_fd, header.kept_offset(), context.mbox_fd,
                                     header.region_start, header.kept_octets, "rewrite-write", nullptr);
            !copied) {
            return fail(copied.error());
        }
        steps("rewrite-fsync");
        if (auto synced = fsync_file(context.mbox_fd); !synced) {
            return fail(synced.error());
        }
        steps("truncate");
        if (::ftruncate(context.mbox_fd, static_cast<off_t>(header.new_end())) != 0) {
            return fail(last_errno());
        }
        steps("truncate-fsync");
        if (auto synced = fsync_file(context.mbox_fd); !synced) {
            return fail(synced.error());
        }
    }
    auto outcome = finish(context, journal_fd, header);
    if (!outcome) {
        return fail(outcome.error());
    }
    return std::pair{ApplyResult::done, *outcome};
}

} // namespace

std::optional<RewritePlan> plan_deletions(const Index& index, const std::vector<bool>& deleted)
{
    const auto first = std::find(deleted.begin(), deleted.end(), true);
    if (first == deleted.end() || deleted.size() != index.entries.size()) {
        return std::nullopt;
    }
    const auto first_deleted = static_cast<std::size_t>(first - deleted.begin());
    RewritePlan plan;
    plan.region_start = index.entries[first_deleted].from_offset;
    plan.old_size = index.stamp.size;
    std::uint64_t removed = 0;
    for (std::size_t i = 0; i < index.entries.size(); ++i) {
        const Entry& entry = index.entries[i];
        if (i < first_deleted) {
            plan.entries.push_back(entry);
            continue;
        }
        // A message's region runs to the next From_ line (its separator included).
        const std::uint64_t end =
            i + 1 < index.entries.size() ? index.entries[i + 1].from_offset : index.stamp.size;
        if (deleted[i]) {
            removed += end - entry.from_offset;
            continue;
        }
        if (!plan.kept.empty() && plan.kept.back().second == entry.from_offset) {
            plan.kept.back().second = end;
        } else {
            plan.kept.emplace_back(entry.from_offset, end);
        }
        Entry moved = entry;
        moved.from_offset -= removed;
        moved.content_offset -= removed;
        moved.content_end -= removed;
        plan.entries.push_back(std::move(moved));
    }
    return plan;
}

Result<void> rewrite(const RewriteContext& context, const RewritePlan& plan)
{
    const Steps steps(context);
    struct stat st {};
    if (::fstat(context.mbox_fd, &st) != 0) {
        return fail(last_errno());
    }
    JournalHeader header;
    header.device = static_cast<std::uint64_t>(st.st_dev);
    header.inode = static_cast<std::uint64_t>(st.st_ino);
    header.region_start = plan.region_start;
    header.old_size = plan.old_size;
    for (const auto& [begin, end] : plan.kept) {
        header.kept_octets += end - begin;
    }
    const std::string index_text = format_entries(plan.entries);
    header.index_octets = index_text.size();
    header.index_covers = header.new_end();
    auto stale = hash_file_range(context.mbox_fd, header.new_end(), header.old_size);
    if (!stale) {
        return fail(stale.error());
    }
    header.stale_hash = std::move(*stale);
    const std::string header_text = format_header(header);

    steps("journal-create");
    UniqueFd fd(::open(context.journal_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        return fail(last_errno());
    }
    auto written = [&]() -> Result<void> {
        Sha256 hash;
        std::uint64_t offset = 0;
        steps("journal-write-header");
        if (auto done = pwrite_all(fd.get(), header_text, offset); !done) {
            return done;
        }
        hash.update(header_text);
        offset += header_text.size();
        for (const auto& [begin, end] : plan.kept) {
            if (auto copied = copy_range(context, context.mbox_fd, begin, fd.get(), offset, end - begin,
                                         "journal-write", &hash);
                !copied) {
                return copied;
            }
            offset += end - begin;
        }
        steps("journal-write-index");
        if (auto done = pwrite_all(fd.get(), index_text, offset); !done) {
            return done;
        }
        hash.update(index_text);
        offset += index_text.size();
        const std::string trailer = fmt::format("{}{}\n", trailer_magic, to_hex(hash.finish(), 32));
        steps("journal-write-trailer");
        if (auto done = pwrite_all(fd.get(), trailer, offset); !done) {
            return done;
        }
        steps("journal-fsync");
        if (auto synced = fsync_file(fd.get()); !synced) {
            return synced;
        }
        fd.reset();
        // The journal must survive a crash before the mbox is touched.
        steps("journal-dir-fsync");
        return fsync_directory(directory_of(context.journal_path));
    }();
    if (!written) {
        fd.reset();
        ::unlink(context.journal_path.c_str()); // the mbox is untouched: nothing to keep
        return written;
    }
    auto replayed = replay_journal(context);
    if (!replayed) {
        return fail(replayed.error());
    }
    if (*replayed != ReplayOutcome::applied) {
        return fail(errc::commit_failed);
    }
    return {};
}

Result<ReplayOutcome> replay_journal(const RewriteContext& context)
{
    // A fold that never got renamed into place is not a journal.
    ::unlink((context.journal_path + ".fold").c_str());
    for (int round = 0; round < max_replay_rounds; ++round) {
        UniqueFd fd(::open(context.journal_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd.valid()) {
            if (errno == ENOENT) {
                return ReplayOutcome::none;
            }
            return fail(last_errno());
        }
        auto header = read_complete_journal(fd.get());
        if (!header) {
            return fail(header.error());
        }
        if (!*header) {
            // Torn: the crash came before the journal was complete, so before the mbox was touched.
            Steps{context}("journal-discard");
            fd.reset();
            if (::unlink(context.journal_path.c_str()) != 0 && errno != ENOENT) {
                return fail(last_errno());
            }
            (void)fsync_directory(directory_of(context.journal_path));
            return ReplayOutcome::discarded;
        }
        auto applied = apply(context, fd.get(), **header);
        if (!applied) {
            return fail(applied.error());
        }
        if (applied->first == ApplyResult::done) {
            return applied->second;
        }
    }
    return fail(errc::commit_failed);
}

} // namespace pigeon::storage::mbox
