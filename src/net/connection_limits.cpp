#include "net/connection_limits.hpp"

#include <algorithm>

namespace pigeon::net {

ConnectionLimits::Slot& ConnectionLimits::Slot::operator=(Slot&& other) noexcept
{
    if (this != &other) {
        release();
        m_owner = other.m_owner;
        m_address = std::move(other.m_address);
        other.m_owner = nullptr;
    }
    return *this;
}

void ConnectionLimits::Slot::release() noexcept
{
    if (m_owner != nullptr) {
        m_owner->release(m_address);
        m_owner = nullptr;
    }
}

ConnectionLimits::Hold& ConnectionLimits::Hold::operator=(Hold&& other) noexcept
{
    if (this != &other) {
        release();
        m_owner = std::exchange(other.m_owner, nullptr);
    }
    return *this;
}

void ConnectionLimits::Hold::release() noexcept
{
    if (m_owner != nullptr) {
        m_owner->end_hold();
        m_owner = nullptr;
    }
}

std::optional<ConnectionLimits::Slot> ConnectionLimits::try_acquire(const std::string& address, Refusal& why)
{
    const std::lock_guard guard(m_mutex);
    if (m_total >= m_max_total) {
        why = Refusal::total;
        return std::nullopt;
    }
    auto& count = m_per_address[address];
    if (count >= m_max_per_address) {
        if (count == 0) {
            m_per_address.erase(address);
        }
        why = Refusal::per_address;
        return std::nullopt;
    }
    ++count;
    ++m_total;
    return Slot(this, address);
}

void ConnectionLimits::set_limits(std::uint32_t max_total, std::uint32_t max_per_address)
{
    const std::lock_guard guard(m_mutex);
    m_max_total = max_total;
    m_max_per_address = max_per_address;
}

std::optional<ConnectionLimits::Hold> ConnectionLimits::try_hold()
{
    const std::lock_guard guard(m_mutex);
    if (m_refusal_delay.count() <= 0 || m_held >= max_held_locked()) {
        return std::nullopt;
    }
    ++m_held;
    return Hold(this);
}

void ConnectionLimits::set_refusal_delay(std::chrono::milliseconds delay, std::uint32_t max_held)
{
    const std::lock_guard guard(m_mutex);
    m_refusal_delay = delay;
    m_max_held = max_held;
}

std::chrono::milliseconds ConnectionLimits::refusal_delay() const
{
    const std::lock_guard guard(m_mutex);
    return m_refusal_delay;
}

std::uint32_t ConnectionLimits::max_held_locked() const
{
    static constexpr std::uint32_t at_least = 64;
    return m_max_held != 0 ? m_max_held : std::max(at_least, m_max_total / 10);
}

std::uint32_t ConnectionLimits::total() const
{
    const std::lock_guard guard(m_mutex);
    return m_total;
}

std::uint32_t ConnectionLimits::from(const std::string& address) const
{
    const std::lock_guard guard(m_mutex);
    const auto found = m_per_address.find(address);
    return found == m_per_address.end() ? 0 : found->second;
}

void ConnectionLimits::release(const std::string& address) noexcept
{
    const std::lock_guard guard(m_mutex);
    --m_total;
    const auto found = m_per_address.find(address);
    if (found != m_per_address.end() && --found->second == 0) {
        m_per_address.erase(found);
    }
}

void ConnectionLimits::end_hold() noexcept
{
    const std::lock_guard guard(m_mutex);
    --m_held;
}

} // namespace pigeon::net
