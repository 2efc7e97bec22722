#include "auth/passwd_file/passwd_file_passdb.hpp"

#include "core/strings.hpp"
#include "storage/fs_util.hpp"

#include <sys/stat.h>

namespace pigeon::auth {
namespace {

constexpr std::size_t max_line_octets = 64 * 1024;
constexpr std::size_t max_file_octets = 64 * 1024 * 1024;

std::string_view next_field(std::string_view& line)
{
    const std::size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    line = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    return field;
}

} // namespace

PasswdFilePassDb::PasswdFilePassDb(PasswdFileOptions options) : m_options(std::move(options)) {}

PasswdFilePassDb::Parsed PasswdFilePassDb::parse(std::string_view text, std::string_view default_scheme)
{
    Parsed parsed;
    std::size_t number = 0;
    while (!text.empty()) {
        ++number;
        const std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        const std::size_t first = line.find_first_not_of(" \t");
        if (first == std::string_view::npos || line[first] == '#') {
            continue;
        }
        if (line.size() > max_line_octets || has_control_characters(line.substr(0, line.find('\t')))) {
            parsed.skipped_lines.push_back(number);
            continue;
        }
        UserRecord record;
        record.name = std::string(next_field(line));
        std::string password(next_field(line));
        const std::string_view uid = next_field(line);
        const std::string_view gid = next_field(line);
        (void)next_field(line); // gecos
        record.home = std::string(next_field(line));
        (void)next_field(line); // shell
        const std::string_view extra = line;
        if (record.name.empty() || record.name.find(' ') != std::string::npos) {
            parsed.skipped_lines.push_back(number);
            continue;
        }
        if (!password.empty() && !password.starts_with('{')) {
            password = "{" + std::string(default_scheme) + "}" + password;
        }
        record.password = SecretString(std::move(password));
        if (!uid.empty()) {
            record.uid = parse_u32(uid);
        }
        if (!gid.empty()) {
            record.gid = parse_u32(gid);
        }
        if ((!uid.empty() && !record.uid) || (!gid.empty() && !record.gid)) {
            parsed.skipped_lines.push_back(number);
            continue;
        }
        std::string_view rest = extra;
        while (!rest.empty()) {
            const std::size_t space = rest.find(' ');
            std::string_view item = rest.substr(0, space);
            rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
            if (item.empty()) {
                continue;
            }
            if (item.starts_with("userdb_")) {
                item.remove_prefix(7);
            }
            const std::size_t equals = item.find('=');
            record.extra_fields.emplace_back(
                std::string(item.substr(0, equals)),
                equals == std::string_view::npos ? std::string() : std::string(item.substr(equals + 1)));
        }
        // Dovecot takes the first line for a user; so do we.
        std::string key = record.name;
        parsed.users.try_emplace(std::move(key), std::move(record));
    }
    return parsed;
}

void PasswdFilePassDb::reload_if_changed()
{
    const auto now = std::chrono::steady_clock::now();
    if (m_loaded && now - m_last_check < m_options.recheck_interval) {
        return;
    }
    m_last_check = now;
    struct stat st {};
    if (::stat(m_options.path.c_str(), &st) != 0) {
        m_last_error = storage::last_errno();
        return;
    }
    const FileStamp stamp{static_cast<std::uint64_t>(st.st_ino), static_cast<std::int64_t>(st.st_size),
                          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
    if (m_loaded && stamp == m_stamp) {
        return;
    }
    auto text = storage::read_small_file(m_options.path, max_file_octets);
    if (!text) {
        m_last_error = text.error();
        return;
    }
    m_data = std::make_shared<const Parsed>(parse(*text, m_options.default_scheme));
    wipe(*text);
    m_stamp = stamp;
    m_loaded = true;
    m_last_error.clear();
}

Result<std::optional<UserRecord>> PasswdFilePassDb::lookup(std::string_view user)
{
    std::shared_ptr<const Parsed> data;
    {
        const std::lock_guard guard(m_mutex);
        reload_if_changed();
        data = m_data;
    }
    if (!data) {
        return fail(errc::auth_temporary_failure); // never read: nothing to answer with
    }
    const auto found = data->users.find(user);
    if (found == data->users.end()) {
        return std::optional<UserRecord>{};
    }
    const UserRecord& record = found->second;
    return std::optional<UserRecord>{record.copy()};
}

PasswdFileStatus PasswdFilePassDb::status()
{
    const std::lock_guard guard(m_mutex);
    reload_if_changed();
    PasswdFileStatus status;
    if (m_data) {
        status.users = m_data->users.size();
        status.skipped_lines = m_data->skipped_lines;
    }
    status.last_error = m_last_error;
    return status;
}

} // namespace pigeon::auth
