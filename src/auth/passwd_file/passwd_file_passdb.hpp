// A user database in Dovecot's passwd-file format, so an operator moving from Dovecot points
// Pigeon at the same file and every user logs in:
//
//   user[@domain]:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields
//
// Trailing fields may be left out; "#" starts a comment line; blank lines are ignored;
// extra_fields are space-separated "key=value" or bare "key" (Dovecot's "userdb_" prefix is
// dropped, as Dovecot does when it uses the file as a userdb too). A password without "{SCHEME}"
// is read with the configured default scheme (Dovecot's default for passwd-file: CRYPT).
//
// The file is read again when it changes (inode, size or modification time), checked at most
// once per recheck_interval (a second by default); a file that cannot be read keeps the last good copy in
// use. Hostile content is bounded: lines over 64 KiB and files over 64 MiB are refused line by line or whole,
// and every skipped line is reported with its number. Thread-safe.
#pragma once

#include "auth/passdb.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pigeon::auth {

struct PasswdFileOptions {
    std::string path;
    std::string default_scheme = "CRYPT"; // for passwords without "{SCHEME}"
    // How often at most the file's inode, size and mtime are compared with the copy in memory.
    std::chrono::milliseconds recheck_interval{1000};
};

struct PasswdFileStatus {
    std::size_t users = 0;
    std::vector<std::size_t> skipped_lines; // 1-based numbers of lines that could not be read
    std::error_code last_error;             // the last failed (re)load, if any
};

class PasswdFilePassDb final : public PassDb {
public:
    explicit PasswdFilePassDb(PasswdFileOptions options);

    [[nodiscard]] Result<std::optional<UserRecord>> lookup(std::string_view user) override;
    [[nodiscard]] PasswdFileStatus status();

    // Parses the text of a passwd-file (exposed for tests and fuzzing).
    struct Parsed {
        std::map<std::string, UserRecord, std::less<>> users;
        std::vector<std::size_t> skipped_lines;
    };
    [[nodiscard]] static Parsed parse(std::string_view text, std::string_view default_scheme);

private:
    struct FileStamp {
        std::uint64_t inode = 0;
        std::int64_t size = -1;
        std::int64_t mtime_ns = 0;
        bool operator==(const FileStamp&) const = default;
    };
    void reload_if_changed();

    PasswdFileOptions m_options;
    std::mutex m_mutex;
    std::shared_ptr<const Parsed> m_data;
    FileStamp m_stamp;
    std::chrono::steady_clock::time_point m_last_check{};
    std::error_code m_last_error;
    bool m_loaded = false;
};

} // namespace pigeon::auth
