// Connection limits (shared/DESIGN.md §6): a cap on all connections and one per remote address.
// A Slot holds one connection's place and gives it back when destroyed. Thread-safe: listeners
// on several event loops share one ConnectionLimits.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

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

    [[nodiscard]] std::uint32_t total() const;
    [[nodiscard]] std::uint32_t from(const std::string& address) const;

private:
    void release(const std::string& address) noexcept;

    mutable std::mutex m_mutex;
    std::uint32_t m_max_total;
    std::uint32_t m_max_per_address;
    std::uint32_t m_total = 0;
    std::unordered_map<std::string, std::uint32_t> m_per_address;
};

} // namespace pigeon::net
