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
if(PIGEON_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PIGEON_FUZZ needs clang (libFuzzer); use the 'fuzz' preset")
  endif()
  target_compile_options(pigeon_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                                                  -fno-omit-frame-pointer)
  target_link_options(pigeon_options INTERFACE -fsanitize=address,undefined)
endif()
