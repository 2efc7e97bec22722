#include "client/fetch_state.hpp"

#include "core/strings.hpp"
#include "storage/fs_util.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

namespace pigeon::client {
namespace {

constexpr std::string_view state_magic = "pigeon-fetch-state 1";
constexpr std::size_t max_state_octets = std::size_t{512} * 1024 * 1024;

std::optional<std::time_t> parse_time(std::string_view text)
{
    long long value = 0;
    const auto* end = text.data() + text.size();
    if (std::from_chars(text.data(), end, value).ptr != end || value < 0) {
        return std::nullopt;
    }
    return static_cast<std::time_t>(value);
}

} // namespace

bool FetchState::valid_uid(std::string_view uid) noexcept
{
    return !uid.empty() && uid.size() <= 512 &&
           std::all_of(uid.begin(), uid.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

FetchState::FetchState(FetchState&& other) noexcept
    : m_path(std::move(other.m_path)), m_journal_path(std::move(other.m_journal_path)),
      m_journal_fd(std::exchange(other.m_journal_fd, -1)), m_broken(other.m_broken),
      m_seen(std::move(other.m_seen)), m_pending(std::move(other.m_pending))
{
}

FetchState& FetchState::operator=(FetchState&& other) noexcept
{
    if (this != &other) {
        if (m_journal_fd >= 0) {
            ::close(m_journal_fd);
        }
        m_path = std::move(other.m_path);
        m_journal_path = std::move(other.m_journal_path);
        m_journal_fd = std::exchange(other.m_journal_fd, -1);
        m_broken = other.m_broken;
        m_seen = std::move(other.m_seen);
        m_pending = std::move(other.m_pending);
    }
    return *this;
}

FetchState::~FetchState()
{
    if (m_journal_fd >= 0) {
        ::close(m_journal_fd); // releases the flock
    }
}

tl::expected<FetchState, std::string> FetchState::open(const std::string& state_path)
{
    FetchState state;
    state.m_path = state_path;
    state.m_journal_path = state_path + ".journal";
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(state_path).parent_path(), ec);
    state.m_journal_fd =
        ::open(state.m_journal_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (state.m_journal_fd < 0) {
        return tl::unexpected(fmt::format("{}: {}", state.m_journal_path, std::strerror(errno)));
    }
    if (::flock(state.m_journal_fd, LOCK_EX | LOCK_NB) != 0) {
        return tl::unexpected(
            fmt::format("{}: another pigeon fetch of this account is running", state.m_journal_path));
    }
    // The snapshot.
    if (auto text = storage::read_small_file(state_path, max_state_octets); text) {
        std::string_view rest = *text;
        const auto first = rest.find('\n');
        if (first == std::string_view::npos || rest.substr(0, first) != state_magic) {
            return tl::unexpected(fmt::format("{}: not a pigeon fetch state file", state_path));
        }
        rest.remove_prefix(first + 1);
        std::size_t line_number = 1;
        while (!rest.empty()) {
            ++line_number;
            const auto end = rest.find('\n');
            if (end == std::string_view::npos) {
                return tl::unexpected(fmt::format("{}:{}: line cut short", state_path, line_number));
            }
            const auto fields = split_words(rest.substr(0, end));
            rest.remove_prefix(end + 1);
            const auto when = fields.size() == 2 ? parse_time(fields[1]) : std::nullopt;
            if (!when || !valid_uid(fields[0])) {
                return tl::unexpected(fmt::format("{}:{}: damaged line", state_path, line_number));
            }
            state.m_seen[std::string(fields[0])] = *when;
        }
    } else if (text.error() != std::errc::no_such_file_or_directory) {
        return tl::unexpected(fmt::format("{}: {}", state_path, text.error().message()));
    }
    // The journal, replayed over it.
    auto journal = storage::read_small_file(state.m_journal_path, max_state_octets);
    if (!journal) {
        return tl::unexpected(fmt::format("{}: {}", state.m_journal_path, journal.error().message()));
    }
    std::string_view rest = *journal;
    std::size_t line_number = 0;
    while (!rest.empty()) {
        ++line_number;
        const auto end = rest.find('\n');
        if (end == std::string_view::npos) {
            // The last append was cut short by a crash: it never took effect. Cut it off, so
            // the next append does not continue it.
            const auto keep = static_cast<off_t>(journal->size() - rest.size());
            if (::ftruncate(state.m_journal_fd, keep) != 0 || ::fdatasync(state.m_journal_fd) != 0) {
                return tl::unexpected(fmt::format("{}: {}", state.m_journal_path, std::strerror(errno)));
            }
            break;
        }
        const std::string_view line = rest.substr(0, end);
        rest.remove_prefix(end + 1);
        const auto fields = split_words(line);
        const auto damaged = [&] {
            return tl::unexpected(fmt::format("{}:{}: damaged line", state.m_journal_path, line_number));
        };
        if (fields.size() < 2 || !valid_uid(fields[1])) {
            return damaged();
        }
        const std::string uid(fields[1]);
        const auto drop_pending = [&state, &uid] {
            std::erase_if(state.m_pending, [&uid](const Pending& p) { return p.uid == uid; });
        };
        if (fields[0] == "+" && fields.size() == 3 && parse_time(fields[2])) {
            state.m_seen[uid] = *parse_time(fields[2]);
            drop_pending();
        } else if (fields[0] == "-" && fields.size() == 2) {
            state.m_seen.erase(uid);
        } else if (fields[0] == "?" && fields.size() >= 3) {
            drop_pending();
            const auto target_start = line.find(' ', 2 + uid.size()) + 1;
            state.m_pending.push_back({uid, std::string(line.substr(target_start))});
        } else if (fields[0] == "!" && fields.size() == 2) {
            drop_pending();
        } else {
            return damaged();
        }
    }
    return state;
}

std::optional<std::time_t> FetchState::first_download(const std::string& uid) const
{
    const auto found = m_seen.find(uid);
    return found != m_seen.end() ? std::optional(found->second) : std::nullopt;
}

tl::expected<void, std::string> FetchState::append(const std::string& line)
{
    if (m_broken) {
        return tl::unexpected(
            fmt::format("{}: an earlier write failed and could not be taken back", m_journal_path));
    }
    const off_t before = ::lseek(m_journal_fd, 0, SEEK_END);
    auto written = storage::write_all(m_journal_fd, line);
    if (written && ::fdatasync(m_journal_fd) == 0) {
        return {};
    }
    const std::string why = written ? std::string(std::strerror(errno)) : written.error().message();
    // A partial append (a full disk) is taken back, so that nothing half-written is followed by
    // the next line; should even that fail, no more appends are made in this run.
    if (before < 0 || ::ftruncate(m_journal_fd, before) != 0) {
        m_broken = true;
    }
    return tl::unexpected(fmt::format("{}: {}", m_journal_path, why));
}

tl::expected<void, std::string> FetchState::intend(const std::string& uid, const std::string& target)
{
    return intend(std::vector<Pending>{{uid, target}});
}

tl::expected<void, std::string> FetchState::intend(const std::vector<Pending>& deliveries)
{
    std::string lines;
    for (const auto& delivery : deliveries) {
        lines += fmt::format("? {} {}\n", delivery.uid, delivery.target);
    }
    if (auto done = append(lines); !done) {
        return done;
    }
    m_pending.insert(m_pending.end(), deliveries.begin(), deliveries.end());
    return {};
}

tl::expected<void, std::string> FetchState::record(const std::string& uid, std::time_t when)
{
    return record(std::vector<std::string>{uid}, when);
}

tl::expected<void, std::string> FetchState::record(const std::vector<std::string>& uids, std::time_t when)
{
    std::string lines;
    for (const auto& uid : uids) {
        lines += fmt::format("+ {} {}\n", uid, static_cast<long long>(when));
    }
    if (auto done = append(lines); !done) {
        return done;
    }
    for (const auto& uid : uids) {
        m_seen[uid] = when;
        std::erase_if(m_pending, [&uid](const Pending& p) { return p.uid == uid; });
    }
    return {};
}

tl::expected<void, std::string> FetchState::abandon(const std::string& uid)
{
    if (auto done = append(fmt::format("! {}\n", uid)); !done) {
        return done;
    }
    std::erase_if(m_pending, [&uid](const Pending& p) { return p.uid == uid; });
    return {};
}

tl::expected<void, std::string> FetchState::forget(const std::vector<std::string>& uids)
{
    std::string lines;
    for (const auto& uid : uids) {
        if (m_seen.contains(uid)) {
            lines += fmt::format("- {}\n", uid);
        }
    }
    if (lines.empty()) {
        return {};
    }
    if (auto done = append(lines); !done) {
        return done;
    }
    for (const auto& uid : uids) {
        m_seen.erase(uid);
    }
    return {};
}

tl::expected<std::size_t, std::string> FetchState::import(const std::vector<std::string>& uids,
                                                          std::time_t when)
{
    std::string lines;
    std::size_t added = 0;
    for (const auto& uid : uids) {
        if (valid_uid(uid) && !m_seen.contains(uid)) {
            lines += fmt::format("+ {} {}\n", uid, static_cast<long long>(when));
            ++added;
        }
    }
    if (lines.empty()) {
        return 0;
    }
    if (auto done = append(lines); !done) {
        return tl::unexpected(done.error());
    }
    for (const auto& uid : uids) {
        if (valid_uid(uid)) {
            m_seen.try_emplace(uid, when);
        }
    }
    return added;
}

tl::expected<void, std::string> FetchState::save()
{
    std::string text(state_magic);
    text += '\n';
    for (const auto& [uid, when] : m_seen) {
        text += fmt::format("{} {}\n", uid, static_cast<long long>(when));
    }
    if (auto written = storage::write_file_atomically(m_path, text); !written) {
        return tl::unexpected(fmt::format("{}: {}", m_path, written.error().message()));
    }
    // Pending deliveries stay in the journal until they are resolved: it is kept whole (replaying
    // it over the new snapshot changes nothing else).
    if (!m_pending.empty()) {
        return {};
    }
    if (::ftruncate(m_journal_fd, 0) != 0 || ::fdatasync(m_journal_fd) != 0) {
        return tl::unexpected(fmt::format("{}: {}", m_journal_path, std::strerror(errno)));
    }
    return {};
}

} // namespace pigeon::client
