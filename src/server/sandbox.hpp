// pigeond's confinement after start-up ([sandbox] in the configuration; docs/security.md).
//
// Landlock (files): from the moment confine_files() returns, the calling thread and every thread
// it creates afterwards can reach only the paths sandbox_paths() names: the directories holding
// the maildrops (read and write), the user database, the configuration, certificates and keys
// (read, their directories, so a renewed certificate or a rewritten user file is still readable
// on reload), the log file's directory, the LMTP sockets' directories, and the system files that
// the C library, OpenSSL and time zones read. Applied in main() before the server creates its
// threads, since Landlock binds only the calling thread and its future children.
//
// seccomp (system calls): confine_system_calls() loads a filter on every thread of the process
// (TSYNC) allowing the calls pigeond makes once it serves; any other call fails with EPERM, and
// those only an attacker would make (execve, execveat, ptrace outside sanitizer builds,
// process_vm_*) kill the process. Applied after the listeners are bound and privileges dropped.
#pragma once

#include "config/config.hpp"

#include <tl/expected.hpp>

#include <string>
#include <vector>

namespace pigeon::server {

struct SandboxPaths {
    std::vector<std::string> read;  // directories or files: read
    std::vector<std::string> write; // directories: read, create, write, rename, remove
};

// What the configuration makes pigeond reach after start-up. An error when a maildrop template
// has no fixed directory to confine writes to (such as "%h/Maildir") and sandbox.write_paths
// does not name one.
[[nodiscard]] tl::expected<SandboxPaths, std::string> sandbox_paths(const config::Config& config);

// Applies the Landlock ruleset to this thread and its future children. A write directory that
// does not exist yet is created (mode 0750), as the first delivery would. Returns a note for the
// log when the kernel has no Landlock (nothing confined), empty otherwise.
[[nodiscard]] tl::expected<std::string, std::string> confine_files(const SandboxPaths& paths);

// Loads the seccomp filter on every thread of the process.
[[nodiscard]] tl::expected<void, std::string> confine_system_calls();

} // namespace pigeon::server
