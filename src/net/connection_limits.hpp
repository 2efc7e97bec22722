// Connection limits (shared/DESIGN.md §6): a cap on all connections and one per remote address.
// A Slot holds one connection's place and gives it back when destroyed. Thread-safe: listeners
// on several event loops share one ConnectionLimits.
//
// A refused connection is answered after the refusal delay (limits.refusal_delay), so that a
// client reconnecting in a loop (a password sprayer with more connections than its address may
// have) opens a connection per delay instead of thousands a second. A Hold counts one refused
// connection waiting for its answer; at most a tenth of max_connections (at least 64) wait,
// beyond that a refusal is answered at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace pigeon::net {

class ConnectionLimits {
public:
    class Slot {
    public:
        Slot() = default;
        Slot(const Slot&) = delete;
        Slot& operator=(const Slot&) = delete;
        Slot(Slot&& other) noexcept : m_owner(other.m_owner), m_address(std::move(other.m_address))
        {
            other.m_owner = nullptr;
        }
        Slot& operator=(Slot&& other) noexcept;
        ~Slot() { release(); }

    private:
        friend class ConnectionLimits;
        Slot(ConnectionLimits* owner, std::string address) : m_owner(owner), m_address(std::move(address)) {}
        void release() noexcept;

        ConnectionLimits* m_owner = nullptr;
        std::string m_address;
    };

    // One refused connection waiting for its answer; gives its place back when destroyed.
    class Hold {
    public:
        Hold() = default;
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;
        Hold(Hold&& other) noexcept : m_owner(std::exchange(other.m_owner, nullptr)) {}
        Hold& operator=(Hold&& other) noexcept;
        ~Hold() { release(); }

    private:
        friend class ConnectionLimits;
        explicit Hold(ConnectionLimits* owner) : m_owner(owner) {}
        void release() noexcept;

        ConnectionLimits* m_owner = nullptr;
    };

    enum class Refusal {
        total,
        per_address
    };

    ConnectionLimits(std::uint32_t max_total, std::uint32_t max_per_address) noexcept
        : m_max_total(max_total), m_max_per_address(max_per_address)
    {
    }

    // A place for a new connection from `address`, or why there is none.
    [[nodiscard]] std::optional<Slot> try_acquire(const std::string& address, Refusal& why);
    void set_limits(std::uint32_t max_total, std::uint32_t max_per_address);

    // A place for a refused connection to wait refusal_delay() before its answer, or nothing
    // (answer at once): the delay is zero or the most refusals allowed to wait already do.
    [[nodiscard]] std::optional<Hold> try_hold();
    // max_held 0: a tenth of max_connections, at least 64.
    void set_refusal_delay(std::chrono::milliseconds delay, std::uint32_t max_held = 0);
    [[nodiscard]] std::chrono::milliseconds refusal_delay() const;

    [[nodiscard]] std::uint32_t total() const;
    [[nodiscard]] std::uint32_t from(const std::string& address) const;

private:
    void release(const std::string& address) noexcept;
    void end_hold() noexcept;
    [[nodiscard]] std::uint32_t max_held_locked() const;

    mutable std::mutex m_mutex;
    std::uint32_t m_max_total;
    std::uint32_t m_max_per_address;
    std::uint32_t m_total = 0;
    std::unordered_map<std::string, std::uint32_t> m_per_address;
    std::chrono::milliseconds m_refusal_delay{0};
    std::uint32_t m_max_held = 0; // 0: derived from m_max_total
    std::uint32_t m_held = 0;
};

} // namespace pigeon::net
