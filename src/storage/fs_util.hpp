// Durable file-system operations shared by the storage backends. Every function reports errors
// as std::error_code (errno values from the system category); none throws.
#pragma once

#include "core/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/stat.h>

namespace pigeon::storage {

// fsync() of a directory, so a rename, link or unlink inside it survives a crash.
[[nodiscard]] Result<void> fsync_directory(const std::string& path);

// Writes `content` to `path` atomically: a temporary file beside it, fsync, rename over `path`,
// fsync of the directory. A crash leaves either the old file or the new one, never a mixture.
[[nodiscard]] Result<void> write_file_atomically(const std::string& path, std::string_view content);

// Reads a whole (small) file, such as an index; errc from errno on failure.
[[nodiscard]] Result<std::string> read_small_file(const std::string& path, std::size_t max_octets);

// Writes all of `data` to `fd`, retrying on EINTR and short writes.
[[nodiscard]] Result<void> write_all(int fd, std::string_view data);

[[nodiscard]] std::error_code last_errno() noexcept;

// Maps a write error to what a deliverer must report: a full disk, a quota or an I/O error is
// temporary (the MTA retries); the original errno stays available for the log.
[[nodiscard]] bool is_temporary_io_error(std::error_code error) noexcept;

// A file descriptor that closes itself.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) noexcept : m_fd(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : m_fd(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept
    {
        reset(other.release());
        return *this;
    }
    ~UniqueFd() { reset(); }

    [[nodiscard]] int get() const noexcept { return m_fd; }
    [[nodiscard]] bool valid() const noexcept { return m_fd >= 0; }
    int release() noexcept
    {
        const int fd = m_fd;
        m_fd = -1;
        return fd;
    }
    void reset(int fd = -1) noexcept;

private:
    int m_fd = -1;
};

// A file's modification time, and the clock's time now, in nanoseconds since the epoch (for
// comparing directory change stamps).
[[nodiscard]] std::int64_t mtime_ns(const struct stat& st) noexcept;
[[nodiscard]] std::int64_t now_ns() noexcept;

} // namespace pigeon::storage
