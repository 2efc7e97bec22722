#include "client/sink_support.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fmt/format.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pigeon::client::detail {

std::string errno_text(const std::string& what)
{
    return fmt::format("{}: {}", what, std::strerror(errno));
}

std::string unique_base()
{
    static std::atomic<std::uint64_t> counter{0};
    // One draw from the system's randomness per process (a random_device per message costs
    // more than writing the message).
    static const std::uint32_t random = [] {
        std::uint32_t value = 0;
        if (::getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
            value = static_cast<std::uint32_t>(::getpid()) * 2654435761U;
        }
        return value;
    }();
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return fmt::format("{}.M{}P{}Q{}R{:08x}", now.tv_sec, now.tv_nsec / 1000, ::getpid(), ++counter, random);
}

SinkResult write_fd(int fd, std::string_view bytes, const std::string& path)
{
    if (auto done = storage::write_all(fd, bytes); !done) {
        return tl::unexpected(fmt::format("{}: {}", path, done.error().message()));
    }
    return {};
}

bool plain_name(std::string_view name)
{
    return !name.empty() && name.front() != '.' && name.find('/') == std::string_view::npos;
}

SinkResult sync_files(const std::vector<std::pair<int, std::string>>& files)
{
    if (files.size() > 4) {
        if (::syncfs(files.front().first) != 0) {
            return tl::unexpected(errno_text(files.front().second));
        }
        return {};
    }
    for (const auto& [fd, path] : files) {
        if (::fsync(fd) != 0) {
            return tl::unexpected(errno_text(path));
        }
    }
    return {};
}

SinkResult ensure_directory(const std::string& path)
{
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) {
        return tl::unexpected(fmt::format("{}: {}", path, ec.message()));
    }
    (void)::chmod(path.c_str(), 0700);
    return {};
}

} // namespace pigeon::client::detail
