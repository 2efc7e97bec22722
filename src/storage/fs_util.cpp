#include "storage/fs_util.hpp"

#include "core/crash_point.hpp"

#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pigeon::storage {

std::error_code last_errno() noexcept
{
    return {errno, std::system_category()};
}

void UniqueFd::reset(int fd) noexcept
{
    if (m_fd >= 0) {
        ::close(m_fd);
    }
    m_fd = fd;
}

Result<void> fsync_directory(const std::string& path)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) {
        return fail(last_errno());
    }
    if (::fsync(fd.get()) != 0) {
        return fail(last_errno());
    }
    return {};
}

Result<void> write_all(int fd, std::string_view data)
{
    while (!data.empty()) {
        const ssize_t written = ::write(fd, data.data(), data.size());
        if (written < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(last_errno());
        }
        data.remove_prefix(static_cast<std::size_t>(written));
    }
    return {};
}

Result<void> write_file_atomically(const std::string& path, std::string_view content)
{
    const std::size_t slash = path.rfind('/');
    const std::string directory = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
    const std::string temporary = path + ".tmp." + std::to_string(::getpid());
    UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        return fail(last_errno());
    }
    crash_point("atomic-file", "write");
    auto written = write_all(fd.get(), content);
    crash_point("atomic-file", "fsync");
    if (written && ::fsync(fd.get()) != 0) {
        written = fail(last_errno());
    }
    fd.reset();
    crash_point("atomic-file", "rename");
    if (written && ::rename(temporary.c_str(), path.c_str()) != 0) {
        written = fail(last_errno());
    }
    if (!written) {
        ::unlink(temporary.c_str());
        return written;
    }
    crash_point("atomic-file", "dir-fsync");
    return fsync_directory(directory);
}

Result<std::string> read_small_file(const std::string& path, std::size_t max_octets)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        return fail(last_errno());
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return fail(last_errno());
    }
    if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) > max_octets) {
        return fail(std::make_error_code(std::errc::file_too_large));
    }
    std::string out(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t filled = 0;
    while (filled < out.size()) {
        const ssize_t count = ::read(fd.get(), out.data() + filled, out.size() - filled);
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(last_errno());
        }
        if (count == 0) {
            break; // the file shrank meanwhile
        }
        filled += static_cast<std::size_t>(count);
    }
    out.resize(filled);
    return out;
}

bool is_temporary_io_error(std::error_code error) noexcept
{
    if (error.category() != std::system_category()) {
        return false;
    }
    switch (error.value()) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EAGAIN:
    case EINTR:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EROFS: return true;
    default: return false;
    }
}

std::int64_t mtime_ns(const struct stat& st) noexcept
{
    return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

std::int64_t now_ns() noexcept
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace pigeon::storage
