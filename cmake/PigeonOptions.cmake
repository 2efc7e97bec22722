# Compiler options shared by every Pigeon target, through the interface target pigeon_options.
add_library(pigeon_options INTERFACE)
target_compile_options(pigeon_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                                -Wno-sign-conversion)
if(PIGEON_WERROR)
  target_compile_options(pigeon_options INTERFACE -Werror)
endif()
if(PIGEON_SANITIZE)
  target_compile_options(pigeon_options INTERFACE -fsanitize=address,undefined
                                                  -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(pigeon_options INTERFACE -fsanitize=address,undefined)
endif()
if(PIGEON_TSAN)
  # -O1 keeps the instrumented event loops fast enough to produce real interleavings under load
  # (ThreadSanitizer's own advice); frame pointers give whole stacks in its reports.
  target_compile_options(pigeon_options INTERFACE -fsanitize=thread -fno-omit-frame-pointer -O1)
  # GCC warns (-Wtsan) at every Asio handler completion: asio::detail::std_fenced_block ends in
  # std::atomic_thread_fence, which TSan does not model. Handlers handed between threads go through
  # the scheduler's mutex-guarded queue, which TSan does see, so the fence hides no race from it
  # (at worst it could cause a false report, and none has been seen); the 66 warnings are noise.
  target_compile_options(pigeon_options INTERFACE $<$<CXX_COMPILER_ID:GNU>:-Wno-tsan>)
  target_link_options(pigeon_options INTERFACE -fsanitize=thread)
endif()
if(PIGEON_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PIGEON_FUZZ needs clang (libFuzzer); use the 'fuzz' preset")
  endif()
  target_compile_options(pigeon_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                                                  -fno-omit-frame-pointer)
  target_link_options(pigeon_options INTERFACE -fsanitize=address,undefined)
endif()
