// Brute-force defence (shared/DESIGN.md §5): failed logins cost the attacker, not the server.
// AuthThrottle keeps, per remote address and per user name, the recent failures and answers how
// long the next attempt must wait before it is answered: base_delay doubled per failure, capped
// at max_delay, forgotten after forget_after without failures. The server waits on a timer (no
// thread sleeps), so a burst of wrong passwords from one address costs timers, not hashing, and
// the other users' logins are not slowed. It also caps the authentications in flight.
//
// Sans-I/O like the protocol: the caller passes the time; nothing here reads a clock. Memory is
// bounded: at most max_tracked entries per table, the least recently failing forgotten first.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pigeon::auth {

struct ThrottleOptions {
    std::chrono::milliseconds base_delay{250};
    std::chrono::milliseconds max_delay{15'000};
    std::chrono::seconds forget_after{900};
    std::size_t max_tracked = 100'000;  // per table (addresses, users)
    std::uint32_t max_concurrent = 128; // authentications being verified at once
    std::uint32_t free_failures = 1;    // a first typo costs nothing
};

class AuthThrottle {
public:
    using Clock = std::chrono::steady_clock;

    explicit AuthThrottle(ThrottleOptions options = {});

    // How long to hold the answer to an attempt from `address` for `user` (a failed one: the
    // delay is applied to the -ERR, so a success is never slowed by an attacker's failures).
    [[nodiscard]] std::chrono::milliseconds failure_delay(std::string_view address, std::string_view user,
                                                          Clock::time_point now);
    // An attempt from `address` starts: how long it must wait before it is verified (Dovecot's
    // auth penalty: a burst of guesses from one address waits on timers instead of making the
    // server hash; attempts from other addresses are not slowed). An address
    // that has not failed (beyond free_failures) never waits here, however many attempts it has in
    // flight (net::VerifyGate still shares the pool fairly between addresses). Once it has, its
    // attempts in flight count as failures until they end, and they
    // are spaced by its delay: fifty guesses sent at once on fifty connections wait one after
    // another, as fifty sent in sequence would, instead of all hashing when one shared penalty
    // runs out. Every call must be paired with end_attempt().
    [[nodiscard]] std::chrono::milliseconds begin_attempt(std::string_view address, Clock::time_point now);
    void end_attempt(std::string_view address);
    // The address's delay as its failures stand now: an attempt that waited its turn (VerifyGate)
    // while the attempts before it failed waits the rest of this before it is verified, so a
    // burst that began before any failure does not all get hashed.
    [[nodiscard]] std::chrono::milliseconds current_delay(std::string_view address, Clock::time_point now);
    // Attempts begun and not yet ended, over all addresses (for tests).
    [[nodiscard]] std::size_t attempts_in_flight() const;

    // Replaces the delays and limits (SIGHUP); the failures counted so far are kept.
    void set_options(const ThrottleOptions& options);

    void record_failure(std::string_view address, std::string_view user, Clock::time_point now);
    // A success forgets the user's failures (not the address's: one address may try many users).
    void record_success(std::string_view user);

    // Concurrency cap: false when max_concurrent verifications are already running; the caller
    // answers -ERR [SYS/TEMP] instead of queueing without bound.
    [[nodiscard]] bool try_begin();
    void end();

    [[nodiscard]] std::size_t tracked_addresses() const;

private:
    struct Failures {
        std::uint32_t count = 0;
        Clock::time_point last{};
        std::list<std::string>::iterator age;
    };
    struct Table {
        std::unordered_map<std::string, Failures> entries;
        std::list<std::string> by_age; // most recent failure first
    };

    [[nodiscard]] std::uint32_t current(Table& table, std::string_view key, Clock::time_point now) const;
    void add(Table& table, std::string_view key, Clock::time_point now);
    [[nodiscard]] std::chrono::milliseconds delay_for(std::uint32_t failures) const;

    struct Attempts {
        std::uint32_t in_flight = 0;
        Clock::time_point next_slot{}; // when the next attempt of this address may be verified
    };

    ThrottleOptions m_options;
    mutable std::mutex m_mutex;
    // Only addresses with attempts in flight: bounded by the connections, not by the attackers.
    std::unordered_map<std::string, Attempts> m_attempts;
    Table m_addresses;
    Table m_users;
    std::uint32_t m_in_flight = 0;
};

// The log line for a failed authentication, for fail2ban and people:
//   auth failed: user=<user> rip=<address> mech=<mechanism> reason=<reason>
// Peer-controlled text is escaped (no spaces, controls or non-ASCII reach the log raw), so one
// regular expression matches every line; the password or SASL payload never appears.
// One field of a log line: "-" when empty; spaces, '=', '\\', controls and non-ASCII bytes as \xHH.
[[nodiscard]] std::string log_escape(std::string_view text);

[[nodiscard]] std::string format_auth_failure(std::string_view user, std::string_view address,
                                              std::string_view mechanism, std::string_view reason);

} // namespace pigeon::auth
