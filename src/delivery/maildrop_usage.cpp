#include "delivery/maildrop_usage.hpp"

#include "storage/fs_util.hpp"
#include "storage/maildir/maildir_name.hpp"
#include "storage/maildir/maildir_store.hpp"
#include "storage/mbox/mbox_index.hpp"
#include "storage/mbox/mbox_store.hpp"
#include "storage/memory/memory_maildrop.hpp"
#include "storage/path_template.hpp"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <dirent.h>
#include <fcntl.h>
#include <optional>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_set>
#include <vector>

namespace pigeon::delivery {

using storage::mtime_ns;
using storage::now_ns;
namespace {

using storage::last_errno;
using storage::UniqueFd;

// A usage file is a header line and at most a few hundred short lines; anything larger is not one.
constexpr std::size_t max_usage_file_octets = std::size_t{64} * 1024;
constexpr std::size_t read_chunk_octets = std::size_t{64} * 1024;
// A directory changed this recently may change again within the same timestamp tick, so a
// count taken now cannot vouch for it (the rule storage/maildir's index follows too).
constexpr std::int64_t mtime_settle_ns = 2'000'000'000;

// The numbers of a line separated by single spaces; nothing if any is not one.
template <std::size_t count>
std::optional<std::array<std::int64_t, count>> parse_numbers(std::string_view line)
{
    std::array<std::int64_t, count> out{};
    const char* position = line.data();
    const char* const end = line.data() + line.size();
    for (std::size_t i = 0; i < count; ++i) {
        if (i > 0) {
            if (position == end || *position != ' ') {
                return std::nullopt;
            }
            ++position;
        }
        const auto [next, ec] = std::from_chars(position, end, out[i]);
        if (ec != std::errc() || next == position) {
            return std::nullopt;
        }
        position = next;
    }
    if (position != end) {
        return std::nullopt;
    }
    return out;
}

// --- Maildir -----------------------------------------------------------------------------------

// What must not have changed since a count for the count to stand.
struct MaildirStamps {
    std::int64_t cur_mtime = 0;
    std::int64_t cur_inode = 0;
    std::int64_t index_inode = 0; // pigeon-index is replaced whole (a new inode) when rewritten
    std::int64_t index_mtime = 0;
    std::int64_t index_size = 0;
    bool operator==(const MaildirStamps&) const = default;
};

struct MaildirCache {
    Usage counted;
    std::int64_t counted_at = 0; // unix seconds
    MaildirStamps stamps;
    bool trusted = false;
    Usage recorded; // deliveries appended since the count
    std::size_t recorded_lines = 0;
    std::int64_t listed_from_ns = 0; // when the count began listing new/ and cur/ (unix ns)
};

Result<MaildirStamps> maildir_stamps(const std::string& root)
{
    MaildirStamps stamps;
    struct stat st {};
    if (::stat((root + "/cur").c_str(), &st) == 0) {
        stamps.cur_mtime = mtime_ns(st);
        stamps.cur_inode = static_cast<std::int64_t>(st.st_ino);
    } else if (errno != ENOENT) {
        return fail(last_errno());
    }
    if (::stat((root + "/" + storage::maildir_index_file).c_str(), &st) == 0) {
        stamps.index_inode = static_cast<std::int64_t>(st.st_ino);
        stamps.index_mtime = mtime_ns(st);
        stamps.index_size = static_cast<std::int64_t>(st.st_size);
    } else if (errno != ENOENT) {
        return fail(last_errno());
    }
    return stamps;
}

std::optional<MaildirCache> parse_maildir_cache(std::string_view text)
{
    const std::size_t first = text.find('\n');
    if (first == std::string_view::npos || text.substr(0, first) != "pigeon-quota 2") {
        return std::nullopt;
    }
    text.remove_prefix(first + 1);
    const std::size_t second = text.find('\n');
    if (second == std::string_view::npos) {
        return std::nullopt;
    }
    const auto numbers = parse_numbers<10>(text.substr(0, second));
    text.remove_prefix(second + 1);
    if (!numbers || (*numbers)[0] < 0 || (*numbers)[1] < 0) {
        return std::nullopt;
    }
    MaildirCache cache;
    cache.counted = {static_cast<std::uint64_t>((*numbers)[0]), static_cast<std::uint64_t>((*numbers)[1])};
    cache.counted_at = (*numbers)[2];
    cache.stamps = {(*numbers)[3], (*numbers)[4], (*numbers)[5], (*numbers)[6], (*numbers)[7]};
    cache.listed_from_ns = (*numbers)[8];
    cache.trusted = (*numbers)[9] == 1;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        if (end == std::string_view::npos) {
            break; // an append cut short: its message is counted next time
        }
        const std::string_view line = text.substr(0, end);
        text.remove_prefix(end + 1);
        std::uint64_t octets = 0;
        if (line.size() < 2 || line.front() != '+' ||
            std::from_chars(line.data() + 1, line.data() + line.size(), octets).ptr !=
                line.data() + line.size()) {
            return std::nullopt;
        }
        cache.recorded += Usage{1, octets};
        ++cache.recorded_lines;
    }
    return cache;
}

std::string format_maildir_cache(const Usage& counted, std::int64_t counted_at, const MaildirStamps& stamps,
                                 bool trusted, std::int64_t listed_from_ns)
{
    return fmt::format("pigeon-quota 2\n{} {} {} {} {} {} {} {} {} {}\n", counted.messages, counted.octets,
                       counted_at, stamps.cur_mtime, stamps.cur_inode, stamps.index_inode, stamps.index_mtime,
                       stamps.index_size, listed_from_ns, trusted ? 1 : 0);
}

// Writes a cache file by renaming a complete temporary file over it. No fsync: a cache lost in
// a crash is counted again.
void replace_file(const std::string& path, std::string_view content)
{
    static std::atomic<std::uint64_t> sequence{0};
    const std::string temporary = fmt::format("{}.tmp.{}.{}", path, ::getpid(), ++sequence);
    UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) {
        return;
    }
    if (!storage::write_all(fd.get(), content) || ::close(fd.release()) != 0 ||
        ::rename(temporary.c_str(), path.c_str()) != 0) {
        ::unlink(temporary.c_str());
    }
}

// flock() on the maildir root: held while counting and while appending, across processes.
class RootLock {
public:
    explicit RootLock(const std::string& root)
        : m_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC))
    {
        while (m_fd.valid() && ::flock(m_fd.get(), LOCK_EX) != 0) {
            if (errno != EINTR) {
                m_fd.reset();
            }
        }
    }
    [[nodiscard]] bool held() const noexcept { return m_fd.valid(); }

private:
    UniqueFd m_fd; // closing it releases the lock
};

bool cache_vouches(const std::optional<MaildirCache>& cache, const MaildirStamps& stamps, std::int64_t now,
                   Freshness freshness, const UsageCacheOptions& options)
{
    if (!cache || !cache->trusted || cache->stamps != stamps ||
        cache->recorded_lines > options.max_recorded_deliveries) {
        return false;
    }
    const std::int64_t age = now - cache->counted_at;
    if (age < -60 || age >= options.max_age.count()) { // (a clock set back a lot: count again)
        return false;
    }
    return freshness == Freshness::cached || age < options.refusal_recount_after.count();
}

Usage total(const MaildirCache& cache)
{
    Usage usage = cache.counted;
    usage += cache.recorded;
    return usage;
}

std::int64_t now_seconds() noexcept
{
    return now_ns() / 1'000'000'000;
}

// --- mbox --------------------------------------------------------------------------------------

// Counts From_ lines as mbox_parser reads them: "From " at the start of a line that follows a
// blank line ("" or "\r"), or at the start of the file. Fed in pieces of any size.
class FromLineCounter {
public:
    // The state at the start of a file.
    FromLineCounter() = default;
    // The state at an offset inside a file, from the octets just before it (up to three;
    // `reaches_file_start` when they are the first octets of the file).
    FromLineCounter(std::string_view before, bool reaches_file_start) : m_line_blank(false), m_matching(false)
    {
        if (!before.ends_with('\n')) {
            return; // in the middle of a line
        }
        before.remove_suffix(1);
        m_line_blank = true;
        m_matching = before.ends_with('\n') || before.ends_with("\n\r") ||
                     (reaches_file_start && (before.empty() || before == "\r"));
    }

    void feed(std::string_view bytes)
    {
        static constexpr std::string_view from = "From ";
        for (const char c : bytes) {
            if (c == '\n') {
                m_matching = m_line_blank;
                m_line_blank = true;
                m_line_octets = 0;
                continue;
            }
            if (m_matching) {
                if (c != from[m_line_octets]) {
                    m_matching = false;
                } else if (m_line_octets + 1 == from.size()) {
                    ++m_count;
                    m_matching = false;
                }
            }
            m_line_blank = m_line_blank && c == '\r';
            ++m_line_octets;
        }
    }
    [[nodiscard]] std::uint64_t count() const noexcept { return m_count; }

private:
    bool m_line_blank = true; // the current line holds nothing but CRs so far
    bool m_matching = true;   // the current line may still turn out to be a From_ line
    std::size_t m_line_octets = 0;
    std::uint64_t m_count = 0;
};

Result<std::uint64_t> count_from_lines(int fd, std::uint64_t from, std::uint64_t to)
{
    std::array<char, 3> before{};
    std::size_t before_octets = 0;
    if (from > 0) {
        const std::uint64_t start = from >= 3 ? from - 3 : 0;
        const ssize_t got =
            ::pread(fd, before.data(), static_cast<std::size_t>(from - start), static_cast<off_t>(start));
        if (got < 0) {
            return fail(last_errno());
        }
        before_octets = static_cast<std::size_t>(got);
    }
    FromLineCounter counter =
        from == 0 ? FromLineCounter()
                  : FromLineCounter(std::string_view(before.data(), before_octets), from <= before.size());
    std::vector<char> buffer(read_chunk_octets);
    std::uint64_t offset = from;
    while (offset < to) {
        const auto wanted = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), to - offset));
        const ssize_t got = ::pread(fd, buffer.data(), wanted, static_cast<off_t>(offset));
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(last_errno());
        }
        if (got == 0) {
            break; // shorter than it was a moment ago: counted again next time
        }
        counter.feed(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
        offset += static_cast<std::uint64_t>(got);
    }
    return counter.count();
}

struct MboxCache {
    std::uint64_t messages = 0;
    std::uint64_t size = 0;
    std::int64_t device = 0;
    std::int64_t inode = 0;
    std::int64_t mtime = 0;
};

std::optional<MboxCache> parse_mbox_cache(std::string_view text)
{
    const std::size_t first = text.find('\n');
    if (first == std::string_view::npos || text.substr(0, first) != "pigeon-mbox-quota 1") {
        return std::nullopt;
    }
    text.remove_prefix(first + 1);
    if (!text.ends_with('\n')) {
        return std::nullopt;
    }
    const auto numbers = parse_numbers<5>(text.substr(0, text.size() - 1));
    if (!numbers || (*numbers)[0] < 0 || (*numbers)[1] < 0) {
        return std::nullopt;
    }
    return MboxCache{static_cast<std::uint64_t>((*numbers)[0]), static_cast<std::uint64_t>((*numbers)[1]),
                     (*numbers)[2], (*numbers)[3], (*numbers)[4]};
}

std::string mbox_cache_path(const storage::MboxPaths& paths)
{
    constexpr std::string_view index_suffix = "pigeon-index";
    if (std::string_view(paths.index).ends_with(index_suffix)) {
        return paths.index.substr(0, paths.index.size() - index_suffix.size()) + "pigeon-quota";
    }
    return paths.index + ".pigeon-quota";
}

// The message count of Pigeon's mbox index, if its stamp describes the file as it is.
std::optional<std::uint64_t> indexed_messages(const std::string& index_path, const struct stat& st)
{
    auto text = storage::read_small_file(index_path, storage::mbox::max_index_octets);
    if (!text) {
        return std::nullopt;
    }
    const auto index = storage::mbox::parse_index(*text);
    if (!index || index->stamp.size != static_cast<std::uint64_t>(st.st_size) ||
        index->stamp.inode != static_cast<std::uint64_t>(st.st_ino) ||
        index->stamp.device != static_cast<std::uint64_t>(st.st_dev) ||
        index->stamp.mtime_ns != mtime_ns(st)) {
        return std::nullopt;
    }
    return index->entries.size();
}

} // namespace

// --- MaildirUsage ------------------------------------------------------------------------------

MaildirUsage::MaildirUsage(std::string path_template, UsageCacheOptions options)
    : m_path_template(std::move(path_template)), m_options(options)
{
}

Result<Usage> MaildirUsage::usage(std::string_view user, Freshness freshness)
{
    auto root = storage::expand_path_template(m_path_template, user);
    if (!root) {
        return fail(root.error());
    }
    return usage_of(*root, freshness);
}

void MaildirUsage::delivered(std::string_view user, std::uint64_t octets, std::int64_t committed_ns)
{
    if (auto root = storage::expand_path_template(m_path_template, user)) {
        delivered_to(*root, octets, committed_ns);
    }
}

std::string MaildirUsage::location(std::string_view user) const
{
    auto root = storage::expand_path_template(m_path_template, user);
    return root ? *root : std::string();
}

Result<Usage> MaildirUsage::usage_of(const std::string& root, Freshness freshness) const
{
    struct stat st {};
    if (::stat(root.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return Usage{}; // created by the first delivery
        }
        return fail(last_errno());
    }
    const std::string cache_path = root + "/" + maildir_usage_file;
    const auto read_cache = [&]() -> std::optional<MaildirCache> {
        auto text = storage::read_small_file(cache_path, max_usage_file_octets);
        return text ? parse_maildir_cache(*text) : std::nullopt;
    };
    auto stamps = maildir_stamps(root);
    if (!stamps) {
        return fail(stamps.error());
    }
    if (const auto cache = read_cache(); cache_vouches(cache, *stamps, now_seconds(), freshness, m_options)) {
        return total(*cache);
    }

    // Count under the lock, unless another process counted while we waited for it (a count
    // replaces the file, so its inode changes).
    const auto cache_inode = [&cache_path]() -> std::uint64_t {
        struct stat cache_st {};
        return ::stat(cache_path.c_str(), &cache_st) == 0 ? static_cast<std::uint64_t>(cache_st.st_ino) : 0;
    };
    const std::uint64_t inode_before = cache_inode();
    RootLock lock(root);
    if (!lock.held()) {
        return fail(last_errno());
    }
    stamps = maildir_stamps(root); // before listing: a change from now on makes the stamps differ
    if (!stamps) {
        return fail(stamps.error());
    }
    if (const std::uint64_t inode_now = cache_inode(); inode_now != 0 && inode_now != inode_before) {
        if (const auto cache = read_cache();
            cache_vouches(cache, *stamps, now_seconds(), Freshness::cached, m_options)) {
            return total(*cache);
        }
    }
    const std::int64_t listed_from = now_ns();
    auto counted = count(root);
    if (!counted) {
        return fail(counted.error());
    }
    const std::int64_t now = now_ns();
    const bool trusted =
        now - stamps->cur_mtime >= mtime_settle_ns && now - stamps->index_mtime >= mtime_settle_ns;
    replace_file(cache_path,
                 format_maildir_cache(*counted, now / 1'000'000'000, *stamps, trusted, listed_from));
    return *counted;
}

void MaildirUsage::delivered_to(const std::string& root, std::uint64_t octets, std::int64_t committed_ns)
{
    RootLock lock(root);
    if (!lock.held()) {
        return;
    }
    // Only onto a count that exists: without one the next check counts (this message included).
    const std::string cache_path = root + "/" + maildir_usage_file;
    UniqueFd fd(::open(cache_path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) {
        return;
    }
    // A count that began listing after the commit (another delivery's check, between this
    // message's commit and now) has the message already; one that began before it, or during
    // it, may not, and is added to (an unreadable cache is counted again anyway).
    if (const auto text = storage::read_small_file(cache_path, max_usage_file_octets)) {
        if (const auto cache = parse_maildir_cache(*text); cache && cache->listed_from_ns >= committed_ns) {
            return;
        }
    }
    (void)storage::write_all(fd.get(), fmt::format("+{}\n", octets));
}

Result<Usage> MaildirUsage::count(const std::string& root)
{
    // A message being moved from new/ to cur/ by a mail reader can be seen in both, so it is
    // counted once. The base names of the smaller folder (by directory size: usually the one a
    // reader empties, POP3 users' cur/ or IMAP users' new/) are kept to check the other against;
    // the larger one, 100,000 names perhaps, is only streamed.
    std::array<std::string, 2> folders{root + "/new", root + "/cur"};
    std::array<std::int64_t, 2> sizes{};
    for (std::size_t i = 0; i < 2; ++i) {
        struct stat st {};
        sizes[i] = ::stat(folders[i].c_str(), &st) == 0 ? static_cast<std::int64_t>(st.st_size) : 0;
    }
    if (sizes[1] < sizes[0]) {
        std::swap(folders[0], folders[1]);
    }
    Usage usage;
    std::unordered_set<std::string> first_folder;
    for (std::size_t i = 0; i < 2; ++i) {
        UniqueFd dir_fd(::open(folders[i].c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir_fd.valid()) {
            if (errno == ENOENT) {
                continue;
            }
            return fail(last_errno());
        }
        const int listing_fd = ::dup(dir_fd.get());
        DIR* dir = listing_fd >= 0 ? ::fdopendir(listing_fd) : nullptr;
        if (dir == nullptr) {
            if (listing_fd >= 0) {
                ::close(listing_fd);
            }
            return fail(last_errno());
        }
        errno = 0;
        while (const dirent* item = ::readdir(dir)) {
            const std::string_view name = item->d_name;
            if (!storage::maildir::is_message_file_name(name)) {
                continue;
            }
            std::optional<std::uint64_t> octets = storage::maildir::disk_size_field(name);
            if (!octets || (item->d_type != DT_REG && item->d_type != DT_UNKNOWN)) {
                struct stat st {};
                if (::fstatat(dir_fd.get(), item->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                    !S_ISREG(st.st_mode)) {
                    continue; // gone since the listing, or not a message
                }
                octets = octets.value_or(static_cast<std::uint64_t>(st.st_size));
            }
            const std::string_view base = storage::maildir::base_name(name);
            if (i == 0) {
                if (!first_folder.emplace(base).second) {
                    continue;
                }
            } else if (!first_folder.empty() && first_folder.contains(std::string(base))) {
                continue;
            }
            usage += Usage{1, *octets};
            errno = 0;
        }
        const int listing_error = errno;
        ::closedir(dir);
        if (listing_error != 0) {
            return fail(std::error_code(listing_error, std::system_category()));
        }
    }
    return usage;
}

// --- MboxUsage ---------------------------------------------------------------------------------

MboxUsage::MboxUsage(std::shared_ptr<const storage::MboxStore> store) : m_store(std::move(store)) {}

Result<Usage> MboxUsage::usage(std::string_view user, Freshness /*freshness*/)
{
    auto paths = m_store->paths(user);
    if (!paths) {
        return fail(paths.error());
    }
    UniqueFd fd(::open(paths->mbox.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st {};
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
        if (errno == ENOENT) {
            return Usage{};
        }
        return fail(last_errno());
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const std::string cache_path = mbox_cache_path(*paths);
    std::optional<MboxCache> cache;
    if (auto text = storage::read_small_file(cache_path, max_usage_file_octets)) {
        cache = parse_mbox_cache(*text);
    }
    const bool same_file = cache && cache->device == static_cast<std::int64_t>(st.st_dev) &&
                           cache->inode == static_cast<std::int64_t>(st.st_ino);
    if (same_file && cache->size == size && cache->mtime == mtime_ns(st)) {
        return Usage{cache->messages, size};
    }
    std::uint64_t messages = 0;
    if (same_file && cache->size < size) {
        // It grew: an MTA appended. Only the new tail is read.
        auto added = count_from_lines(fd.get(), cache->size, size);
        if (!added) {
            return fail(added.error());
        }
        messages = cache->messages + *added;
    } else if (const auto indexed = indexed_messages(paths->index, st)) {
        messages = *indexed;
    } else {
        auto counted = count_from_lines(fd.get(), 0, size);
        if (!counted) {
            return fail(counted.error());
        }
        messages = *counted;
    }
    replace_file(cache_path, fmt::format("pigeon-mbox-quota 1\n{} {} {} {} {}\n", messages, size,
                                         static_cast<std::int64_t>(st.st_dev),
                                         static_cast<std::int64_t>(st.st_ino), mtime_ns(st)));
    return Usage{messages, size};
}

void MboxUsage::delivered(std::string_view /*user*/, std::uint64_t /*octets*/, std::int64_t /*committed_ns*/)
{
    // Nothing to record: the next check reads the appended tail.
}

std::string MboxUsage::location(std::string_view user) const
{
    auto paths = m_store->paths(user);
    return paths ? paths->mbox : std::string();
}

Result<std::uint64_t> MboxUsage::count_messages(const std::string& mbox_path)
{
    UniqueFd fd(::open(mbox_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st {};
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
        return fail(last_errno());
    }
    return count_from_lines(fd.get(), 0, static_cast<std::uint64_t>(st.st_size));
}

// --- MemoryUsage -------------------------------------------------------------------------------

Result<Usage> MemoryUsage::usage(std::string_view user, Freshness /*freshness*/)
{
    Usage usage;
    for (const auto& message : m_store.messages(std::string(user))) {
        usage += Usage{1, message.content.size()};
    }
    return usage;
}

std::string MemoryUsage::location(std::string_view user) const
{
    return fmt::format("memory:{}", user);
}

} // namespace pigeon::delivery
