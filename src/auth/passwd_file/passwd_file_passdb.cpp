#include "auth/passwd_file/passwd_file_passdb.hpp"

#include "core/strings.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

namespace pigeon::auth {
namespace {

// A passwd-file line holds a name, a hash (an ARGON2ID or SCRAM string is under 200 octets) and
// a few short fields; 64 KiB leaves room for long extra fields and still bounds what one hostile
// line can make us keep.
constexpr std::size_t max_line_octets = std::size_t{64} * 1024;
// About 300,000 users at 200 octets a line; a bigger file is not a user list but an accident
// (or an attack on the server's memory), so it is refused whole and the last good copy stays.
constexpr std::size_t max_file_octets = std::size_t{64} * 1024 * 1024;
// getpwnam_r/getgrnam_r scratch space; sysconf's suggestion is often -1 on glibc.
constexpr std::size_t name_lookup_buffer_octets = std::size_t{16} * 1024;

constexpr std::string_view userdb_prefix = "userdb_";

std::string_view next_field(std::string_view& rest)
{
    const std::size_t colon = rest.find(':');
    const std::string_view field = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    return field;
}

bool has_control_characters_except_tab(std::string_view text) noexcept
{
    return std::ranges::any_of(text, [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return (byte < 0x20 && c != '\t') || byte == 0x7F;
    });
}

// A user name as Dovecot would ever look it up: no blanks or controls (auth_username_chars).
bool valid_user_name(std::string_view name) noexcept
{
    return !name.empty() && !has_control_characters(name) && name.find(' ') == std::string_view::npos;
}

// A uid/gid field: a number, or a name resolved as Dovecot's userdb_parse_uid() does. 0 (root)
// and unknown names are refused: a mail user must never run as root.
std::optional<std::uint32_t> parse_id(std::string_view field, bool group)
{
    if (const auto number = parse_u32(field)) {
        return *number == 0 ? std::nullopt : number;
    }
    const std::string name(field);
    std::vector<char> buffer(name_lookup_buffer_octets);
    std::optional<std::uint32_t> id;
    if (group) {
        struct group entry {};
        struct group* found = nullptr;
        if (::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == 0 &&
            found != nullptr) {
            id = static_cast<std::uint32_t>(found->gr_gid);
        }
    } else {
        struct passwd entry {};
        struct passwd* found = nullptr;
        if (::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == 0 &&
            found != nullptr) {
            id = static_cast<std::uint32_t>(found->pw_uid);
        }
    }
    return id == 0U ? std::nullopt : id;
}

// Dovecot's password_get_scheme(): "{SCHEME}" in front, or "$1$" (MD5-CRYPT, readable by
// crypt(3)); anything else is in the default scheme.
std::string with_scheme(std::string_view password, std::string_view default_scheme)
{
    if (password.empty()) {
        return {};
    }
    if (password.starts_with('{') && password.find('}') != std::string_view::npos) {
        return std::string(password);
    }
    if (password.starts_with("$1$")) {
        return "{CRYPT}" + std::string(password);
    }
    return "{" + std::string(default_scheme) + "}" + std::string(password);
}

struct LineVerdict {
    std::optional<UserRecord> record;
    std::string_view reason; // why the line was skipped, when there is no record
};

LineVerdict parse_line(std::string_view line, std::string_view default_scheme)
{
    if (line.size() > max_line_octets) {
        return {std::nullopt, "line too long"};
    }
    if (has_control_characters_except_tab(line)) {
        return {std::nullopt, "control characters"};
    }
    std::string_view rest = line;
    UserRecord record;
    const std::string_view name = next_field(rest);
    if (!valid_user_name(name)) {
        return {std::nullopt, "invalid user name"};
    }
    record.name = std::string(name);
    std::string password = with_scheme(next_field(rest), default_scheme);
    record.password = SecretString(std::move(password));
    if (const std::string_view uid = next_field(rest); !uid.empty()) {
        record.uid = parse_id(uid, false);
        if (!record.uid) {
            return {std::nullopt, "invalid uid"};
        }
    }
    if (const std::string_view gid = next_field(rest); !gid.empty()) {
        record.gid = parse_id(gid, true);
        if (!record.gid) {
            return {std::nullopt, "invalid gid"};
        }
    }
    static_cast<void>(next_field(rest)); // gecos: nothing reads it
    record.home = std::string(next_field(rest));
    static_cast<void>(next_field(rest)); // shell: POP3 users have no shell
    // What follows the seventh colon is one field that may itself contain colons
    // ("userdb_quota_rule=*:storage=1G"). An empty field followed by more is Dovecot's older
    // layout, where the rest was the mail location.
    if (rest.starts_with(':')) {
        if (rest.size() > 1) {
            record.extra_fields.emplace_back("userdb_mail", std::string(rest.substr(1)));
        }
    } else {
        record.extra_fields = parse_extra_fields(rest);
    }
    return {std::move(record), {}};
}

} // namespace

ExtraFields parse_extra_fields(std::string_view text)
{
    ExtraFields fields;
    while (!text.empty()) {
        const std::size_t space = text.find(' ');
        const std::string_view item = text.substr(0, space);
        text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
        if (item.empty()) {
            continue; // several spaces in a row, as Dovecot's p_strsplit_spaces() allows
        }
        const std::size_t equals = item.find('=');
        fields.emplace_back(std::string(item.substr(0, equals)), equals == std::string_view::npos
                                                                     ? std::string()
                                                                     : std::string(item.substr(equals + 1)));
    }
    return fields;
}

std::string format_extra_fields(const ExtraFields& fields)
{
    std::string text;
    for (const auto& [key, value] : fields) {
        if (!text.empty()) {
            text += ' ';
        }
        text += key;
        if (!value.empty()) {
            text += '=';
            text += value;
        }
    }
    return text;
}

ExtraFields userdb_fields(const UserRecord& record)
{
    ExtraFields fields;
    for (const auto& [key, value] : record.extra_fields) {
        if (key.starts_with(userdb_prefix) && key.size() > userdb_prefix.size()) {
            fields.emplace_back(key.substr(userdb_prefix.size()), value);
        }
    }
    return fields;
}

PasswdFilePassDb::PasswdFilePassDb(PasswdFileOptions options) : m_options(std::move(options)) {}

PasswdFilePassDb::Parsed PasswdFilePassDb::parse(std::string_view text, std::string_view default_scheme)
{
    Parsed parsed;
    std::size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        const std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (line.ends_with('\r')) {
            line.remove_suffix(1); // a file edited on Windows
        }
        const std::size_t first = line.find_first_not_of(" \t");
        if (first == std::string_view::npos || line[first] == '#') {
            continue;
        }
        LineVerdict verdict = parse_line(line, default_scheme);
        if (!verdict.record) {
            parsed.skipped_lines.push_back({line_number, verdict.reason});
            continue;
        }
        std::string key = verdict.record->name;
        if (!parsed.users.try_emplace(std::move(key), std::move(*verdict.record)).second) {
            // Dovecot keeps the first line of a user and complains about the others.
            parsed.skipped_lines.push_back({line_number, "user already defined"});
        }
    }
    return parsed;
}

void PasswdFilePassDb::record_error(std::error_code error, std::string message,
                                    std::vector<std::string>& messages)
{
    // Logged once per distinct problem, not at every recheck while it lasts.
    if (error != m_last_error || message != m_last_error_message) {
        messages.push_back(message + (m_data ? " (still using the last good copy)" : ""));
    }
    m_last_error = error;
    m_last_error_message = std::move(message);
}

Result<void> PasswdFilePassDb::read_file(std::vector<std::string>& messages)
{
    const std::string& path = m_options.path;
    // O_NONBLOCK: opening a FIFO put at the path would otherwise wait for a writer; for the
    // regular file this is meant to be, it changes nothing.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        const std::error_code error(errno, std::system_category());
        record_error(error, fmt::format("passwd-file {}: open failed: {}", path, error.message()), messages);
        return fail(error);
    }
    struct stat st {};
    std::string text;
    std::error_code error;
    if (::fstat(fd, &st) != 0) {
        error.assign(errno, std::system_category());
    } else if (!S_ISREG(st.st_mode)) {
        error = std::make_error_code(std::errc::invalid_argument); // a FIFO or a device would block
    } else if (static_cast<std::uint64_t>(st.st_size) > max_file_octets) {
        error = std::make_error_code(std::errc::file_too_large);
    } else {
        // Read until end of file (not just st_size: the file may grow meanwhile), within the bound.
        text.resize(static_cast<std::size_t>(st.st_size) + 1);
        std::size_t used = 0;
        for (;;) {
            if (used == text.size()) {
                if (text.size() > max_file_octets) {
                    error = std::make_error_code(std::errc::file_too_large);
                    break;
                }
                text.resize(std::min(text.size() * 2, max_file_octets + 1));
            }
            const ssize_t count = ::read(fd, text.data() + used, text.size() - used);
            if (count < 0 && errno == EINTR) {
                continue;
            }
            if (count < 0) {
                error.assign(errno, std::system_category());
                break;
            }
            if (count == 0) {
                break;
            }
            used += static_cast<std::size_t>(count);
        }
        text.resize(used);
    }
    ::close(fd);
    if (error) {
        wipe(text);
        record_error(error, fmt::format("passwd-file {}: not read: {}", path, error.message()), messages);
        return fail(error);
    }
    auto parsed = std::make_shared<const Parsed>(parse(text, m_options.default_scheme));
    wipe(text); // it holds every user's hash
    for (const SkippedLine& skipped : parsed->skipped_lines) {
        messages.push_back(
            fmt::format("passwd-file {}: line {} skipped: {}", path, skipped.line_number, skipped.reason));
    }
    m_data = std::move(parsed);
    m_stamp = FileStamp{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                        static_cast<std::int64_t>(st.st_size),
                        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
    m_last_error.clear();
    m_last_error_message.clear();
    return {};
}

Result<void> PasswdFilePassDb::check(bool force, std::vector<std::string>& messages)
{
    const auto now = std::chrono::steady_clock::now();
    if (!force && m_data && now - m_last_check < m_options.recheck_interval) {
        return {};
    }
    m_last_check = now;
    // A stat() per check is cheap; the file is opened and parsed only when its stamp moved. The
    // stamp kept is the one of the file actually read (fstat), so a replacement between the two
    // calls is seen at the next check.
    struct stat st {};
    if (::stat(m_options.path.c_str(), &st) != 0) {
        const std::error_code error(errno, std::system_category());
        record_error(error, fmt::format("passwd-file {}: stat failed: {}", m_options.path, error.message()),
                     messages);
        return fail(error);
    }
    const FileStamp stamp{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                          static_cast<std::int64_t>(st.st_size),
                          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
    if (m_data && stamp == m_stamp && !m_last_error) {
        return {};
    }
    return read_file(messages);
}

void PasswdFilePassDb::emit(const std::vector<std::string>& messages) const
{
    if (m_options.log) {
        for (const std::string& message : messages) {
            m_options.log(message);
        }
    }
}

Result<std::optional<UserRecord>> PasswdFilePassDb::lookup(std::string_view user)
{
    std::shared_ptr<const Parsed> data;
    std::vector<std::string> messages;
    {
        const std::lock_guard guard(m_mutex);
        static_cast<void>(check(false, messages)); // a failed check keeps the last good copy
        data = m_data;
    }
    emit(messages);
    if (!data) {
        return fail(errc::auth_temporary_failure); // never read: nothing to answer with
    }
    const auto found = data->users.find(user);
    if (found == data->users.end()) {
        return std::optional<UserRecord>{};
    }
    return std::optional<UserRecord>{found->second.copy()};
}

Result<void> PasswdFilePassDb::reload()
{
    std::vector<std::string> messages;
    Result<void> result;
    {
        const std::lock_guard guard(m_mutex);
        result = check(true, messages);
    }
    emit(messages);
    return result;
}

PasswdFileStatus PasswdFilePassDb::status() const
{
    const std::lock_guard guard(m_mutex);
    PasswdFileStatus status;
    if (m_data) {
        status.loaded = true;
        status.users = m_data->users.size();
        status.skipped_lines = m_data->skipped_lines;
    }
    status.last_error = m_last_error;
    status.last_error_message = m_last_error_message;
    return status;
}

} // namespace pigeon::auth
