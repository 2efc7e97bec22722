// Fair share of the password checks between remote addresses: at most `per_address` checks of
// one address are running or queued on the worker pool at a time; its further attempts wait
// here, in order, on a timer of their own connection (no thread blocks). A burst of guesses from
// one address thus holds at most that many places in the pool's queue, and the logins of every
// other address get the rest of the pool at once, instead of waiting behind the whole burst (the
// throttle's penalties only start once the first guesses have failed, and a strong hash such as
// ARGON2ID takes long enough for an attacker to open all its connections first).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace pigeon::net {

class VerifyGate {
public:
    explicit VerifyGate(std::uint32_t per_address) : m_per_address(per_address == 0 ? 1 : per_address) {}

    // Waits for a turn of `address` until `deadline`; true when admitted (then leave() must
    // follow), false when the deadline came first.
    asio::awaitable<bool> enter(const std::string& address, std::chrono::steady_clock::time_point deadline);
    // Ends a turn: the next waiter of the address, if any, is admitted.
    void leave(const std::string& address);

    void set_per_address(std::uint32_t per_address);
    // Turns held and attempts waiting, over all addresses (for tests).
    [[nodiscard]] std::size_t running() const;
    [[nodiscard]] std::size_t waiting() const;

private:
    struct Waiter {
        explicit Waiter(const asio::any_io_executor& executor) : timer(executor) {}
        asio::steady_timer timer;
        bool admitted = false;
    };
    struct Address {
        std::uint32_t running = 0;
        std::deque<std::shared_ptr<Waiter>> waiting;
    };
    void admit_next(std::unordered_map<std::string, Address>::iterator found); // m_mutex held

    mutable std::mutex m_mutex;
    std::uint32_t m_per_address;
    std::unordered_map<std::string, Address> m_addresses; // only addresses with turns or waiters
};

} // namespace pigeon::net
