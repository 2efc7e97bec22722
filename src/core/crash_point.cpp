#include "core/crash_point.hpp"

#ifdef PIGEON_CRASH_POINTS

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace pigeon {
namespace {

struct Plan {
    std::string prefix;       // points counted: names starting with this ("" = all)
    std::uint64_t target = 0; // 0: never crash
    int trace_fd = -1;
};

Plan read_plan()
{
    Plan plan;
    if (const char* at = std::getenv("PIGEON_CRASH_AT"); at != nullptr) {
        std::string_view text(at);
        if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
            plan.prefix = std::string(text.substr(0, colon));
            text.remove_prefix(colon + 1);
        }
        std::uint64_t n = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec == std::errc() && end == text.data() + text.size()) {
            plan.target = n;
        }
    }
    if (const char* trace = std::getenv("PIGEON_CRASH_TRACE"); trace != nullptr && *trace != '\0') {
        plan.trace_fd = ::open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    }
    return plan;
}

const Plan& plan()
{
    static const Plan value = read_plan();
    return value;
}

std::atomic<std::uint64_t>& passed()
{
    static std::atomic<std::uint64_t> count{0};
    return count;
}

void write_line(int fd, std::string_view area, std::string_view step)
{
    std::string line(area);
    if (!step.empty()) {
        line += '.';
        line += step;
    }
    line += '\n';
    (void)::write(fd, line.data(), line.size());
}

} // namespace

void crash_point(std::string_view area, std::string_view step) noexcept
{
    const Plan& current = plan();
    if (current.target == 0 && current.trace_fd < 0) {
        return;
    }
    if (!current.prefix.empty()) {
        std::string name(area);
        if (!step.empty()) {
            name += '.';
            name += step;
        }
        if (!std::string_view(name).starts_with(current.prefix)) {
            return;
        }
    }
    if (current.trace_fd >= 0) {
        write_line(current.trace_fd, area, step);
    }
    if (current.target != 0 && passed().fetch_add(1) + 1 == current.target) {
        write_line(STDERR_FILENO, "crash point reached: " + std::string(area), step);
        ::kill(::getpid(), SIGKILL);
    }
}

} // namespace pigeon

#else

namespace pigeon {
void crash_point(std::string_view /*area*/, std::string_view /*step*/) noexcept {}
} // namespace pigeon

#endif
