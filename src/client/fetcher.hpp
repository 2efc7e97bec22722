// The fetch engine: one run of one account (shared/DESIGN.md §2, src/client). It connects, secures
// the connection as the account demands, logs in with the strongest mechanism both sides have,
// lists unique-ids, downloads the messages it has not stored yet (pipelined when the server offers
// PIPELINING) into the account's sink, and deletes on the server what the keep policy says,
// in an order that can neither lose nor duplicate a message (sink.hpp, fetch_state.hpp):
// stored durably, then recorded, then DELE; deletions take effect only at QUIT.
//
// Blocking, one account at a time, every read and write bounded by the account's timeout. The
// protocol itself is protocol::ClientSession; this file is its driver.
#pragma once

#include "client/account.hpp"
#include "core/secret.hpp"
#include "tls/client_tls.hpp"

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pigeon::client {

// Worst first: the exit code of a run over several accounts is that of its worst outcome.
enum class Outcome {
    fetched,     // new messages stored
    nothing_new, // nothing to store (deletions may have happened)
    temporary,   // network, [IN-USE], [LOGIN-DELAY], [SYS/TEMP], a delivery that failed: retry later
    protocol,    // the server broke POP3, or [SYS/PERM]
    tls,         // the handshake failed or the certificate is not trusted; STLS not offered
    auth,        // the server refused the credentials ([AUTH]), or no usable mechanism
    config       // the account cannot work as configured (password command failed, bad path...)
};

[[nodiscard]] std::string_view outcome_name(Outcome outcome) noexcept;
// The documented exit code (docs/fetch.md): 0 fetched, 1 nothing new, 75 temporary, 76 protocol,
// 77 auth, 78 config, 79 TLS.
[[nodiscard]] int exit_code(Outcome outcome) noexcept;
// Which of two outcomes decides a run's exit code.
[[nodiscard]] Outcome worse(Outcome a, Outcome b) noexcept;

struct Progress {
    std::size_t messages_done = 0;
    std::size_t messages_total = 0;
    std::uint64_t octets_done = 0;
    std::uint64_t octets_total = 0;
};

struct FetchOptions {
    // --serverinfo: stop after the capabilities (and TLS), no login, no state.
    bool serverinfo_only = false;
    // --verbose: every line of the dialogue, credentials masked.
    std::function<void(std::string_view)> trace;
    std::function<void(const Progress&)> progress;
    // Asks the user for the password when the account has no password_command (a TTY prompt).
    std::function<std::optional<SecretString>(const Account&)> prompt_password;
    std::function<std::time_t()> clock = [] { return std::time(nullptr); };
    // Tests: called at every point between effects with its name; a test may _exit() there.
    // Called from the committing thread too (see fetcher.cpp), so it must be thread-safe.
    std::function<void(std::string_view)> fault_point;
    // Trust the certificate only to show it (--serverinfo --insecure).
    bool tls_no_verify = false;
    // Messages are committed in groups (one sync for many): at most this many, this many octets,
    // or this old, and always when no more are on the way.
    std::size_t batch_messages = 256;
    std::uint64_t batch_octets = std::uint64_t{32} * 1024 * 1024;
    std::chrono::milliseconds batch_age{2000};
};

struct ServerInfo {
    std::string address;
    std::string greeting;
    std::vector<std::string> capabilities_before_tls;
    std::vector<std::string> capabilities;
    std::optional<tls::TlsInfo> tls;
};

struct FetchReport {
    std::string account;
    Outcome outcome = Outcome::nothing_new;
    std::string error; // why, when the outcome is a failure
    std::vector<std::string> warnings;
    ServerInfo server;
    std::string mechanism;
    std::size_t on_server = 0;
    std::size_t new_messages = 0;
    std::size_t stored = 0;
    std::uint64_t stored_octets = 0;
    std::size_t deleted = 0;
    std::size_t skipped_too_big = 0;
    std::size_t failed = 0;
    std::size_t recovered = 0; // deliveries of a killed run found complete
    std::optional<std::chrono::seconds> login_delay;
    double seconds = 0;
};

[[nodiscard]] FetchReport fetch(const Account& account, const FetchOptions& options);

// The state file of an account (its state_file, or NAME.state in the default directory).
[[nodiscard]] std::string state_path(const Account& account);

} // namespace pigeon::client
