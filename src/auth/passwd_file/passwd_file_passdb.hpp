// A user database in Dovecot's passwd-file format, so an operator moving from Dovecot points
// Pigeon at the same file and every user logs in:
//
//   user[@domain]:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields
//
// Trailing fields may be left out. Blank lines and lines starting with "#" are skipped. A
// password without "{SCHEME}" is read with the configured default scheme (Dovecot's default for
// passwd-file is CRYPT, a crypt(3) string). uid and gid are numbers or names (resolved when the
// file is read), and 0 (root) is refused, as Dovecot's userdb does. extra_fields are
// space-separated "key=value" or bare "key" items, kept verbatim: as in Dovecot, a "userdb_"
// prefix marks a userdb field (userdb_fields() strips it) and anything else is a passdb field
// ("nologin", "reason=..."). Dovecot's older layout, an empty eighth field followed by a mail
// location, becomes "userdb_mail=<location>" as Dovecot reads it. User names are matched exactly
// (Dovecot's passwd-file compares with strcmp; folding case is the server's job, like Dovecot's
// auth_username_format, not the database's). When a name appears twice, the first line wins.
//
// The file is read again when it changes (device, inode, size or modification time), checked at
// most once per recheck_interval (a second by default) on lookup. A file that cannot be read or
// is too large keeps the last good copy in use; the error is logged and kept for status().
// Hostile content is bounded: lines over 64 KiB are skipped, files over 64 MiB are refused whole,
// and every skipped line is recorded with its number and why (never its content, which holds a
// password hash).
//
// Thread-safe: one mutex guards the check and the re-read; lookups share the parsed file through
// a shared_ptr and copy the record outside the lock.
//
// This module knows nothing of POP3 or of how a record is verified (passdb.hpp's
// verify_credentials does that for every backend).
#pragma once

#include "auth/passdb.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace pigeon::auth {

// Dovecot's extra-field notation: items separated by spaces, each "key=value" or a bare "key"
// (value empty). Shared with the SQLite backend's `extra` column, so both read the same text.
using ExtraFields = std::vector<std::pair<std::string, std::string>>;
[[nodiscard]] ExtraFields parse_extra_fields(std::string_view text);
[[nodiscard]] std::string format_extra_fields(const ExtraFields& fields);
// The fields Dovecot hands to the userdb: those written "userdb_key=value", without the prefix.
[[nodiscard]] ExtraFields userdb_fields(const UserRecord& record);

struct PasswdFileOptions {
    std::string path;
    // For passwords without "{SCHEME}" (a Dovecot name, as in password_scheme.hpp). The
    // configuration validates it; an unknown name makes such users fail as a temporary error.
    std::string default_scheme = "CRYPT";
    // How often at most the file's stamp is compared with the copy in memory (Dovecot: once per
    // second). Tests set 0 to check at every lookup.
    std::chrono::milliseconds recheck_interval{1000};
    // Where problems go (an unreadable file, skipped lines); the server passes its logger. Called
    // outside the lock; the messages never contain a password or hash.
    std::function<void(std::string_view message)> log;
};

struct SkippedLine {
    std::size_t line_number = 0; // 1-based
    std::string_view reason;     // a fixed text ("invalid uid", "line too long", ...)
    bool operator==(const SkippedLine&) const = default;
};

struct PasswdFileStatus {
    bool loaded = false;                    // a copy of the file is in use
    std::size_t users = 0;                  // in that copy
    std::vector<SkippedLine> skipped_lines; // in that copy
    std::error_code last_error;             // the last failed check or read; cleared by a good read
    std::string last_error_message;
};

class PasswdFilePassDb final : public PassDb {
public:
    // Reads nothing yet: the first lookup (or reload()) reads the file.
    explicit PasswdFilePassDb(PasswdFileOptions options);

    // errc::auth_temporary_failure when the file has never been read successfully.
    [[nodiscard]] Result<std::optional<UserRecord>> lookup(std::string_view user) override;

    // Checks the file now, whatever the recheck interval (start-up, SIGHUP): the error if it could
    // not be read (the previous copy, if any, stays in use).
    [[nodiscard]] Result<void> reload();
    // The state of the copy in use and of the last check; reads nothing.
    [[nodiscard]] PasswdFileStatus status() const;

    // Parses the text of a passwd-file (exposed for tests and fuzzing).
    struct Parsed {
        std::map<std::string, UserRecord, std::less<>> users;
        std::vector<SkippedLine> skipped_lines;
    };
    [[nodiscard]] static Parsed parse(std::string_view text, std::string_view default_scheme);

private:
    struct FileStamp {
        std::uint64_t device = 0;
        std::uint64_t inode = 0;
        std::int64_t size = -1;
        std::int64_t mtime_ns = 0;
        bool operator==(const FileStamp&) const = default;
    };
    // Both run under m_mutex and append what should be logged to `messages`.
    Result<void> check(bool force, std::vector<std::string>& messages);
    Result<void> read_file(std::vector<std::string>& messages);
    void record_error(std::error_code error, std::string message, std::vector<std::string>& messages);
    void emit(const std::vector<std::string>& messages) const;

    const PasswdFileOptions m_options;
    mutable std::mutex m_mutex;
    std::shared_ptr<const Parsed> m_data; // null until the first good read
    FileStamp m_stamp;
    std::chrono::steady_clock::time_point m_last_check{};
    std::error_code m_last_error;
    std::string m_last_error_message;
};

} // namespace pigeon::auth
