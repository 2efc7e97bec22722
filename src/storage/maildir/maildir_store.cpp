#include "storage/maildir/maildir_store.hpp"

#include "core/crash_point.hpp"
#include "core/strings.hpp"
#include "protocol/dot_stuffer.hpp"
#include "storage/fs_util.hpp"
#include "storage/maildir/dovecot_uidlist.hpp"
#include "storage/maildir/maildir_name.hpp"
#include "storage/maildrop_lock.hpp"
#include "storage/path_template.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <optional>
#include <sys/stat.h>
#include <tuple>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace pigeon::storage {
namespace {

using maildir::base_name;

constexpr std::size_t read_chunk_octets = std::size_t{64} * 1024;
// A directory whose mtime is this recent may still change within the same timestamp tick, so
// the index does not vouch for it (Dovecot uses the same rule).
constexpr std::int64_t mtime_settle_ns = 2'000'000'000;
// Bound on the index and on dovecot-uidlist: 100,000 messages take about 10 MB.
constexpr std::size_t max_index_octets = std::size_t{256} * 1024 * 1024;

enum class Folder : std::uint8_t {
    new_dir = 0,
    cur_dir = 1
};
constexpr std::array<const char*, 2> folder_names{"new", "cur"};

Result<void> make_directory(const std::string& path)
{
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        return fail(last_errno());
    }
    return {};
}

Result<void> ensure_maildir(const std::string& root)
{
    // The parent of a per-user maildir (/var/mail/example.org) may not exist yet either.
    const std::size_t slash = root.rfind('/');
    if (slash != std::string::npos && slash > 0) {
        (void)make_directory(root.substr(0, slash));
    }
    for (const std::string& path : {root, root + "/cur", root + "/new", root + "/tmp"}) {
        if (auto made = make_directory(path); !made) {
            return made;
        }
    }
    LockRegistry::prepare(root + "/" + maildir_lock_file);
    return {};
}

// One message of a snapshot: 24 bytes plus its name (and its unique-id, when that is not the
// base name) in the snapshot's arena, well under the 100 bytes per message the issue allows.
struct Entry {
    std::uint64_t octets = 0;
    std::uint32_t name_offset = 0;
    std::uint32_t uid_offset = 0;
    std::uint8_t name_length = 0; // NAME_MAX is 255
    std::uint8_t uid_length = 0;  // RFC 1939 §7: at most 70
    Folder folder = Folder::new_dir;
};

struct Snapshot {
    std::vector<Entry> entries;
    std::string arena;

    [[nodiscard]] std::string_view name(const Entry& entry) const
    {
        return std::string_view(arena).substr(entry.name_offset, entry.name_length);
    }
    [[nodiscard]] std::string_view unique_id(const Entry& entry) const
    {
        return std::string_view(arena).substr(entry.uid_offset, entry.uid_length);
    }
    void add(std::string_view file_name, Folder folder, std::uint64_t octets, std::string_view uid)
    {
        Entry entry;
        entry.octets = octets;
        entry.folder = folder;
        entry.name_offset = static_cast<std::uint32_t>(arena.size());
        entry.name_length = static_cast<std::uint8_t>(file_name.size());
        arena.append(file_name);
        if (uid == base_name(file_name)) {
            entry.uid_offset = entry.name_offset;
        } else {
            entry.uid_offset = static_cast<std::uint32_t>(arena.size());
            arena.append(uid);
        }
        entry.uid_length = static_cast<std::uint8_t>(uid.size());
        entries.push_back(entry);
    }
};

struct FolderStamp {
    std::int64_t mtime = 0;
    bool trusted = false;
};

// --- pigeon-index ------------------------------------------------------------------------------
// Text, one message per line, in POP3 order:
//   pigeon-maildir-index 1
//   new <mtime ns> <trusted 0|1>
//   cur <mtime ns> <trusted 0|1>
//   <octets> <n|c> <unique-id|-> <file name to the end of the line>
// "-" means the unique-id is the base name. A name holding a control character (a newline
// among them) is not a message file to any maildir reader (maildir::is_message_file_name), so
// it never reaches the index.

struct LoadedIndex {
    std::array<FolderStamp, 2> stamps{};
    Snapshot snapshot;
};

std::optional<LoadedIndex> parse_index(std::string_view text)
{
    LoadedIndex index;
    const auto next_line = [&]() {
        const std::size_t end = text.find('\n');
        if (end == std::string_view::npos) {
            text = {};
            return std::optional<std::string_view>{};
        }
        const std::string_view line = text.substr(0, end);
        text.remove_prefix(end + 1);
        return std::optional<std::string_view>{line};
    };
    const auto header = next_line();
    if (!header || *header != "pigeon-maildir-index 1") {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < 2; ++i) {
        const auto line = next_line();
        if (!line || !line->starts_with(folder_names[i])) {
            return std::nullopt;
        }
        std::string_view rest = line->substr(3);
        long long mtime = 0;
        int trusted = 0;
        if (rest.size() < 4 || rest.front() != ' ') {
            return std::nullopt;
        }
        rest.remove_prefix(1);
        auto parsed = std::from_chars(rest.data(), rest.data() + rest.size(), mtime);
        if (parsed.ec != std::errc{} || parsed.ptr == rest.data() + rest.size() || *parsed.ptr != ' ') {
            return std::nullopt;
        }
        parsed = std::from_chars(parsed.ptr + 1, rest.data() + rest.size(), trusted);
        if (parsed.ec != std::errc{}) {
            return std::nullopt;
        }
        index.stamps[i] = {mtime, trusted == 1};
    }
    while (auto line = next_line()) {
        std::string_view rest = *line;
        std::uint64_t octets = 0;
        const auto parsed = std::from_chars(rest.data(), rest.data() + rest.size(), octets);
        if (parsed.ec != std::errc{}) {
            return std::nullopt;
        }
        rest.remove_prefix(static_cast<std::size_t>(parsed.ptr - rest.data()));
        if (rest.size() < 5 || rest[0] != ' ' || (rest[1] != 'n' && rest[1] != 'c') || rest[2] != ' ') {
            return std::nullopt;
        }
        const Folder folder = rest[1] == 'n' ? Folder::new_dir : Folder::cur_dir;
        rest.remove_prefix(3);
        const std::size_t space = rest.find(' ');
        if (space == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string_view uid_field = rest.substr(0, space);
        const std::string_view name = rest.substr(space + 1);
        if (!maildir::is_message_file_name(name) || name.size() > 255) {
            return std::nullopt;
        }
        const std::string_view uid = uid_field == "-" ? base_name(name) : uid_field;
        if (!maildir::is_valid_unique_id(uid)) {
            return std::nullopt;
        }
        index.snapshot.add(name, folder, octets, uid);
    }
    if (!text.empty()) {
        return std::nullopt; // a last line without its newline: a torn write
    }
    return index;
}

std::string format_index(const std::array<FolderStamp, 2>& stamps, const Snapshot& snapshot)
{
    std::string out = "pigeon-maildir-index 1\n";
    for (std::size_t i = 0; i < 2; ++i) {
        fmt::format_to(std::back_inserter(out), "{} {} {}\n", folder_names[i], stamps[i].mtime,
                       stamps[i].trusted ? 1 : 0);
    }
    for (const auto& entry : snapshot.entries) {
        const std::string_view name = snapshot.name(entry);
        const std::string_view uid = snapshot.unique_id(entry);
        fmt::format_to(std::back_inserter(out), "{} {} {} {}\n", entry.octets,
                       entry.folder == Folder::new_dir ? 'n' : 'c', uid == base_name(name) ? "-" : uid, name);
    }
    return out;
}

// --- scanning ----------------------------------------------------------------------------------

Result<std::uint64_t> compute_wire_size(int dir_fd, const std::string& name)
{
    UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) {
        return fail(last_errno());
    }
    protocol::WireSizeCounter counter;
    std::array<char, read_chunk_octets> buffer{};
    for (;;) {
        const ssize_t count = ::read(fd.get(), buffer.data(), buffer.size());
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(last_errno());
        }
        if (count == 0) {
            return counter.finish();
        }
        counter.feed(std::string_view(buffer.data(), static_cast<std::size_t>(count)));
    }
}

struct Known {
    std::uint64_t octets = 0;
    std::string unique_id;
};

struct Found {
    std::string name;
    Folder folder = Folder::new_dir;
    std::uint64_t octets = 0;
    std::string unique_id;
    std::optional<std::uint32_t> dovecot_uid;
    std::optional<std::uint32_t> dovecot_order;
};

// The order in which Dovecot gives UIDs to files it has not seen: the delivery time the name
// starts with (seconds, numerically), then the microseconds after "M" (numerically), then the
// name; a reader that never ran Dovecot gets delivery order all the same.
bool delivered_before(std::string_view a, std::string_view b)
{
    const auto number_at = [](std::string_view s, std::size_t pos) {
        std::uint64_t value = 0;
        std::size_t digits = 0;
        while (pos + digits < s.size() && s[pos + digits] >= '0' && s[pos + digits] <= '9' && digits < 19) {
            value = value * 10 + static_cast<std::uint64_t>(s[pos + digits] - '0');
            ++digits;
        }
        return std::pair{value, digits};
    };
    // A key per name, compared as a tuple (so the order is a strict weak ordering even for names
    // that do not follow the convention: those sort after the ones that do).
    const auto key = [&](std::string_view s) {
        const auto [seconds, digits] = number_at(s, 0);
        const std::uint64_t micro =
            digits < s.size() && s.substr(digits).starts_with(".M") ? number_at(s, digits + 2).first : 0;
        return std::tuple{digits == 0, seconds, micro, s};
    };
    return key(a) < key(b);
}

Result<std::vector<Found>> scan_folders(const std::string& root, const std::array<int, 2>& dir_fds,
                                        const std::unordered_map<std::string, Known>& known)
{
    std::optional<maildir::Uidlist> uidlist;
    if (auto text = read_small_file(root + "/dovecot-uidlist", max_index_octets)) {
        if (auto parsed = maildir::parse_uidlist(*text)) {
            uidlist = std::move(*parsed);
        }
    }
    std::vector<Found> found;
    std::unordered_map<std::string, bool> seen_bases;
    for (std::size_t i = 0; i < 2; ++i) {
        const int dup = ::dup(dir_fds[i]);
        DIR* dir = dup >= 0 ? ::fdopendir(dup) : nullptr;
        if (dir == nullptr) {
            if (dup >= 0) {
                ::close(dup);
            }
            return fail(last_errno());
        }
        ::rewinddir(dir);
        while (const dirent* item = ::readdir(dir)) {
            const std::string_view name = item->d_name;
            if (!maildir::is_message_file_name(name)) {
                continue;
            }
            if (item->d_type != DT_REG) {
                struct stat st {};
                if (item->d_type != DT_UNKNOWN ||
                    ::fstatat(dir_fds[i], item->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                    !S_ISREG(st.st_mode)) {
                    continue;
                }
            }
            const std::string base(base_name(name));
            // A message being moved from new/ to cur/ by a mail reader can appear in both.
            if (!seen_bases.emplace(base, true).second) {
                continue;
            }
            Found message;
            message.name = std::string(name);
            message.folder = static_cast<Folder>(i);
            const auto known_entry = known.find(base);
            const maildir::UidlistEntry* dovecot = nullptr;
            if (uidlist) {
                const auto listed = uidlist->by_base_name.find(base);
                dovecot = listed == uidlist->by_base_name.end() ? nullptr : &listed->second;
            }
            // Sizes: ",W=" in the name, then Dovecot's "W" (both as Dovecot trusts them), then
            // Pigeon's index, and only then the file itself.
            if (const auto wire = maildir::wire_size_field(name)) {
                message.octets = *wire;
            } else if (dovecot != nullptr && dovecot->virtual_size) {
                message.octets = *dovecot->virtual_size;
            } else if (known_entry != known.end()) {
                message.octets = known_entry->second.octets;
            } else {
                auto size = compute_wire_size(dir_fds[i], message.name);
                if (!size) {
                    continue; // vanished while we scanned (deleted by another reader)
                }
                message.octets = *size;
            }
            // Unique-ids: what Pigeon already gave (stable forever), else Dovecot's, else one
            // derived from the base name alone (so it survives the loss of every index).
            if (known_entry != known.end()) {
                message.unique_id = known_entry->second.unique_id;
            } else if (dovecot != nullptr) {
                message.unique_id = uidlist->unique_id(*dovecot, base);
            } else {
                message.unique_id = maildir::unique_id_for_base_name(base);
            }
            if (dovecot != nullptr) {
                message.dovecot_uid = dovecot->uid;
                message.dovecot_order = dovecot->pop3_order;
            }
            found.push_back(std::move(message));
        }
        ::closedir(dir);
    }
    // Dovecot's POP3 order: messages with a recorded POP3 order ("O") first, by it; then the
    // rest by UID; the messages Dovecot never saw follow in delivery order.
    const auto rank = [](const Found& m) { return m.dovecot_order ? 0 : (m.dovecot_uid ? 1 : 2); };
    std::sort(found.begin(), found.end(), [&](const Found& a, const Found& b) {
        if (rank(a) != rank(b)) {
            return rank(a) < rank(b);
        }
        if (a.dovecot_order && *a.dovecot_order != *b.dovecot_order) {
            return *a.dovecot_order < *b.dovecot_order;
        }
        if (a.dovecot_uid && *a.dovecot_uid != *b.dovecot_uid) {
            return *a.dovecot_uid < *b.dovecot_uid;
        }
        return delivered_before(base_name(a.name), base_name(b.name));
    });
    return found;
}

// --- reading and the maildrop ------------------------------------------------------------------

class MaildirReader final : public MessageReader {
public:
    explicit MaildirReader(UniqueFd fd) : m_fd(std::move(fd)) {}

    [[nodiscard]] Result<std::size_t> read(std::span<char> buffer) override
    {
        for (;;) {
            const ssize_t count = ::read(m_fd.get(), buffer.data(), buffer.size());
            if (count >= 0) {
                return static_cast<std::size_t>(count);
            }
            if (errno != EINTR) {
                return fail(last_errno());
            }
        }
    }

private:
    UniqueFd m_fd;
};

class MaildirMaildrop final : public Maildrop {
public:
    // No directory stays open between calls: a logged-in session holds its socket and its lock
    // file, nothing more, so ten thousand idle sessions do not need forty thousand descriptors.
    MaildirMaildrop(std::string root, Snapshot snapshot, std::shared_ptr<MaildropLock> lock)
        : m_root(std::move(root)), m_snapshot(std::move(snapshot)), m_lock(std::move(lock))
    {
    }

    [[nodiscard]] std::uint32_t message_count() const noexcept override
    {
        return static_cast<std::uint32_t>(m_snapshot.entries.size());
    }
    [[nodiscard]] std::uint64_t message_octets(MessageIndex index) const noexcept override
    {
        return m_snapshot.entries[index.value].octets;
    }
    [[nodiscard]] std::string_view unique_id(MessageIndex index) const noexcept override
    {
        return m_snapshot.unique_id(m_snapshot.entries[index.value]);
    }

    [[nodiscard]] Result<std::unique_ptr<MessageReader>> open_message(MessageIndex index) override
    {
        if (index.value >= m_snapshot.entries.size()) {
            return fail(errc::no_such_message);
        }
        auto fd = open_file(index);
        if (!fd) {
            return fail(fd.error());
        }
        return std::make_unique<MaildirReader>(std::move(*fd));
    }

    [[nodiscard]] Result<void> commit(std::span<const MessageIndex> deletions) override
    {
        if (m_lock->revoked()) {
            return fail(errc::maildrop_in_use); // another login took this maildrop over
        }
        if (deletions.empty()) {
            return {}; // nothing changed: the index still vouches for both directories
        }
        std::array<UniqueFd, 2> dir_fds{open_folder(Folder::new_dir), open_folder(Folder::cur_dir)};
        bool all_removed = true;
        std::vector<bool> removed(m_snapshot.entries.size(), false);
        for (const MessageIndex index : deletions) {
            if (index.value >= m_snapshot.entries.size()) {
                continue;
            }
            auto location = locate(index);
            if (!location) {
                removed[index.value] = true; // already gone: another reader deleted it
                continue;
            }
            crash_point("maildir-commit", "unlink");
            if (::unlinkat(dir_fds[static_cast<std::size_t>(location->first)].get(), location->second.c_str(),
                           0) != 0 &&
                errno != ENOENT) {
                all_removed = false;
                continue;
            }
            removed[index.value] = true;
        }
        // The unlinks are durable only once the directories are.
        for (const auto& fd : dir_fds) {
            crash_point("maildir-commit", "dir-fsync");
            if (!fd.valid() || ::fsync(fd.get()) != 0) {
                all_removed = false;
            }
        }
        update_index(removed);
        if (!all_removed) {
            return fail(errc::commit_failed);
        }
        return {};
    }

    [[nodiscard]] std::string retrieval_record_path() const override
    {
        return m_root + "/" + maildir_retrieval_record_file;
    }

private:
    [[nodiscard]] UniqueFd open_folder(Folder folder) const
    {
        const std::string path = m_root + "/" + std::string(folder_names[static_cast<std::size_t>(folder)]);
        return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    }

    // Where the message's file is now: its name in the snapshot, or, if a mail reader renamed it
    // since (flags changed, or moved from new/ to cur/), the file with the same base name.
    std::optional<std::pair<Folder, std::string>> locate(MessageIndex index)
    {
        const Entry& entry = m_snapshot.entries[index.value];
        if (const auto moved = m_moved.find(index.value); moved != m_moved.end()) {
            return moved->second;
        }
        std::string name(m_snapshot.name(entry));
        struct stat st {};
        const std::string path =
            m_root + "/" + std::string(folder_names[static_cast<std::size_t>(entry.folder)]) + "/" + name;
        if (::lstat(path.c_str(), &st) == 0) {
            return std::pair{entry.folder, name};
        }
        const std::string_view base = base_name(name);
        for (std::size_t i = 0; i < 2; ++i) {
            UniqueFd folder = open_folder(static_cast<Folder>(i));
            DIR* dir = folder.valid() ? ::fdopendir(folder.get()) : nullptr;
            if (dir == nullptr) {
                continue;
            }
            (void)folder.release(); // closedir() closes it now
            while (const dirent* item = ::readdir(dir)) {
                if (base_name(item->d_name) == base) {
                    std::pair<Folder, std::string> found{static_cast<Folder>(i), std::string(item->d_name)};
                    ::closedir(dir);
                    m_moved[index.value] = found;
                    return found;
                }
            }
            ::closedir(dir);
        }
        return std::nullopt;
    }

    Result<UniqueFd> open_file(MessageIndex index)
    {
        // The common case first: the file is where the snapshot saw it (one open, no stat).
        if (!m_moved.contains(index.value)) {
            const Entry& entry = m_snapshot.entries[index.value];
            const std::string path = m_root + "/" + folder_names[static_cast<std::size_t>(entry.folder)] +
                                     "/" + std::string(m_snapshot.name(entry));
            UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
            if (fd.valid()) {
                return fd;
            }
        }
        auto location = locate(index);
        if (!location) {
            return fail(errc::message_unavailable);
        }
        const std::string path = m_root + "/" +
                                 std::string(folder_names[static_cast<std::size_t>(location->first)]) + "/" +
                                 location->second;
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd.valid()) {
            m_moved.erase(index.value);
            return fail(errc::message_unavailable);
        }
        return fd;
    }

    // The index loses the deleted messages and stops vouching for both directories, so the next
    // session rescans them (without reading any file it already knows).
    void update_index(const std::vector<bool>& removed)
    {
        Snapshot kept;
        for (std::size_t i = 0; i < m_snapshot.entries.size(); ++i) {
            if (!removed[i]) {
                const Entry& entry = m_snapshot.entries[i];
                kept.add(m_snapshot.name(entry), entry.folder, entry.octets, m_snapshot.unique_id(entry));
            }
        }
        (void)write_file_atomically(m_root + "/" + maildir_index_file, format_index({}, kept));
    }

    std::string m_root;
    Snapshot m_snapshot;
    std::shared_ptr<MaildropLock> m_lock;
    std::unordered_map<std::uint32_t, std::pair<Folder, std::string>> m_moved;
};

// --- delivery ----------------------------------------------------------------------------------

class MaildirPendingDelivery final : public PendingDelivery {
public:
    MaildirPendingDelivery(std::string root, std::string base, UniqueFd fd)
        : m_root(std::move(root)), m_base(std::move(base)), m_fd(std::move(fd))
    {
    }
    MaildirPendingDelivery(const MaildirPendingDelivery&) = delete;
    MaildirPendingDelivery& operator=(const MaildirPendingDelivery&) = delete;
    MaildirPendingDelivery(MaildirPendingDelivery&&) = delete;
    MaildirPendingDelivery& operator=(MaildirPendingDelivery&&) = delete;
    ~MaildirPendingDelivery() override
    {
        if (!m_committed) {
            m_fd.reset();
            ::unlink(tmp_path().c_str());
        }
    }

    [[nodiscard]] Result<void> write(std::string_view bytes) override
    {
        if (m_failed) {
            return fail(errc::delivery_temporary_failure);
        }
        crash_point("maildir-deliver", "write");
        if (auto written = write_all(m_fd.get(), bytes); !written) {
            m_failed = true;
            return fail(errc::delivery_temporary_failure);
        }
        m_disk_octets += bytes.size();
        m_counter.feed(bytes);
        return {};
    }

    [[nodiscard]] Result<std::string> commit() override
    {
        if (m_failed || m_committed) {
            return fail(errc::delivery_temporary_failure);
        }
        // maildir(5): the data is on disk before the name appears in new/; the name is on disk
        // before we report success.
        crash_point("maildir-deliver", "fsync");
        if (::fsync(m_fd.get()) != 0 || ::close(m_fd.release()) != 0) {
            m_failed = true;
            return fail(errc::delivery_temporary_failure);
        }
        const std::string final_base = fmt::format("{},S={},W={}", m_base, m_disk_octets, m_counter.finish());
        const std::string final_path = m_root + "/new/" + final_base;
        crash_point("maildir-deliver", "rename");
        if (::rename(tmp_path().c_str(), final_path.c_str()) != 0) {
            m_failed = true;
            return fail(errc::delivery_temporary_failure);
        }
        m_committed = true;
        crash_point("maildir-deliver", "dir-fsync");
        if (!fsync_directory(m_root + "/new")) {
            // The message may not survive a crash; say so, and let the MTA deliver again (a
            // duplicate is better than a loss). Remove our copy so a retry does not double it.
            ::unlink(final_path.c_str());
            return fail(errc::delivery_temporary_failure);
        }
        return maildir::unique_id_for_base_name(final_base);
    }

private:
    [[nodiscard]] std::string tmp_path() const { return m_root + "/tmp/" + m_base; }

    std::string m_root;
    std::string m_base;
    UniqueFd m_fd;
    std::uint64_t m_disk_octets = 0;
    protocol::WireSizeCounter m_counter;
    bool m_failed = false;
    bool m_committed = false;
};

} // namespace

MaildirStore::MaildirStore(MaildirOptions options) : m_options(std::move(options))
{
    if (m_options.host_name.empty()) {
        std::array<char, 256> host{};
        if (::gethostname(host.data(), host.size() - 1) == 0) {
            m_options.host_name = host.data();
        }
        if (m_options.host_name.empty()) {
            m_options.host_name = "localhost";
        }
    }
}

Result<std::unique_ptr<Maildrop>> MaildirStore::open(std::string_view user)
{
    auto root = expand_path_template(m_options.path_template, user);
    if (!root) {
        return fail(root.error());
    }
    return open_path(*root);
}

Result<std::unique_ptr<Maildrop>> MaildirStore::open_path(const std::string& root) const
{
    if (auto made = ensure_maildir(root); !made) {
        return fail(errc::maildrop_unavailable);
    }
    auto lock = LockRegistry::process().acquire(root + "/" + maildir_lock_file, m_options.takeover);
    if (!lock) {
        return fail(lock.error() == make_error_code(errc::maildrop_in_use)
                        ? lock.error()
                        : make_error_code(errc::maildrop_unavailable));
    }
    std::array<UniqueFd, 2> dir_fds;
    std::array<FolderStamp, 2> stamps{};
    for (std::size_t i = 0; i < 2; ++i) {
        dir_fds[i].reset(::open((root + "/" + folder_names[i]).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        struct stat st {};
        if (!dir_fds[i].valid() || ::fstat(dir_fds[i].get(), &st) != 0) {
            return fail(errc::maildrop_unavailable);
        }
        stamps[i].mtime = mtime_ns(st);
    }

    // Warm path: the index vouches for both directories as they are now.
    std::optional<LoadedIndex> index;
    if (auto text = read_small_file(root + "/" + maildir_index_file, max_index_octets)) {
        index = parse_index(*text);
    }
    if (index && index->stamps[0].trusted && index->stamps[1].trusted &&
        index->stamps[0].mtime == stamps[0].mtime && index->stamps[1].mtime == stamps[1].mtime) {
        return std::make_unique<MaildirMaildrop>(root, std::move(index->snapshot), std::move(*lock));
    }

    // Cold or stale: list both directories; sizes come from ",W=", the old index, or reading.
    std::unordered_map<std::string, Known> known;
    if (index) {
        for (const auto& entry : index->snapshot.entries) {
            known.emplace(std::string(base_name(index->snapshot.name(entry))),
                          Known{entry.octets, std::string(index->snapshot.unique_id(entry))});
        }
        index.reset();
    }
    auto found = scan_folders(root, {dir_fds[0].get(), dir_fds[1].get()}, known);
    if (!found) {
        return fail(errc::maildrop_unavailable);
    }
    known.clear();
    Snapshot snapshot;
    snapshot.entries.reserve(found->size());
    for (const auto& message : *found) {
        snapshot.add(message.name, message.folder, message.octets, message.unique_id);
    }
    const std::int64_t now = now_ns();
    for (auto& stamp : stamps) {
        stamp.trusted = now - stamp.mtime >= mtime_settle_ns;
    }
    // A failure to write the index costs speed next time, never correctness.
    (void)write_file_atomically(root + "/" + maildir_index_file, format_index(stamps, snapshot));
    return std::make_unique<MaildirMaildrop>(root, std::move(snapshot), std::move(*lock));
}

Result<std::unique_ptr<PendingDelivery>> MaildirStore::begin(std::string_view user)
{
    auto root = expand_path_template(m_options.path_template, user);
    if (!root) {
        return fail(root.error());
    }
    return begin_path(*root);
}

Result<std::unique_ptr<PendingDelivery>> MaildirStore::begin_path(const std::string& root)
{
    if (auto made = ensure_maildir(root); !made) {
        return fail(errc::delivery_temporary_failure);
    }
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now - seconds);
    const std::string base = maildir::new_base_name(
        static_cast<std::uint64_t>(seconds.count()), static_cast<std::uint32_t>(micros.count()),
        static_cast<std::uint64_t>(::getpid()), ++m_delivery_sequence, m_options.host_name);
    UniqueFd fd(::open((root + "/tmp/" + base).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        return fail(errc::delivery_temporary_failure);
    }
    return std::make_unique<MaildirPendingDelivery>(root, base, std::move(fd));
}

} // namespace pigeon::storage
