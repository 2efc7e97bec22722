// Crash points: named places in the storage code where a fault-injection test can make the
// process die as a power cut or `kill -9` would (SIGKILL: nothing flushed, no destructor run), to
// prove that a crash anywhere in a commit, a delivery or an index write loses and doubles nothing.
//
// Armed only with the CMake option PIGEON_CRASH_POINTS (on in the dev and asan-ubsan presets, off
// in release builds, where crash_point() is an empty function and the environment is never read).
// Driven by the environment, read once per process:
//   PIGEON_CRASH_AT=N        die at the N-th crash point passed (1-based, any name)
//   PIGEON_CRASH_AT=PREFIX:N die at the N-th pass of a point whose name starts with PREFIX
//   PIGEON_CRASH_TRACE=FILE  append the name of every point passed, one per line (to count them)
#pragma once

#include <string_view>

namespace pigeon {

void crash_point(std::string_view area, std::string_view step = {}) noexcept;

} // namespace pigeon
