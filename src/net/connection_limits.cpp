#include "net/connection_limits.hpp"

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

} // namespace pigeon::net
