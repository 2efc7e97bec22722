#include "auth/throttle.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace pigeon::auth {

AuthThrottle::AuthThrottle(ThrottleOptions options) : m_options(options) {}

std::uint32_t AuthThrottle::current(Table& table, std::string_view key, Clock::time_point now) const
{
    const auto found = table.entries.find(std::string(key));
    if (found == table.entries.end()) {
        return 0;
    }
    if (now - found->second.last >= m_options.forget_after) {
        table.by_age.erase(found->second.age);
        table.entries.erase(found);
        return 0;
    }
    return found->second.count;
}

void AuthThrottle::add(Table& table, std::string_view key, Clock::time_point now)
{
    const std::uint32_t count = current(table, key, now);
    auto [entry, inserted] = table.entries.try_emplace(std::string(key));
    if (!inserted) {
        table.by_age.erase(entry->second.age);
    }
    table.by_age.push_front(entry->first);
    entry->second = Failures{count == UINT32_MAX ? count : count + 1, now, table.by_age.begin()};
    while (table.entries.size() > m_options.max_tracked) {
        table.entries.erase(table.by_age.back());
        table.by_age.pop_back();
    }
}

std::chrono::milliseconds AuthThrottle::delay_for(std::uint32_t failures) const
{
    if (failures <= m_options.free_failures) {
        return std::chrono::milliseconds{0};
    }
    const std::uint32_t doublings = std::min<std::uint32_t>(failures - m_options.free_failures - 1, 30);
    const auto delay = m_options.base_delay * (std::int64_t{1} << doublings);
    return std::min(delay, m_options.max_delay);
}

std::chrono::milliseconds AuthThrottle::failure_delay(std::string_view address, std::string_view user,
                                                      Clock::time_point now)
{
    const std::lock_guard guard(m_mutex);
    // The attempt being answered is a failure too: count it in.
    const std::uint32_t by_address = current(m_addresses, address, now) + 1;
    const std::uint32_t by_user = user.empty() ? 0 : current(m_users, user, now) + 1;
    return std::max(delay_for(by_address), delay_for(by_user));
}

std::chrono::milliseconds AuthThrottle::begin_attempt(std::string_view address, Clock::time_point now)
{
    const std::lock_guard guard(m_mutex);
    auto& attempts = m_attempts[std::string(address)];
    const std::uint32_t failed = current(m_addresses, address, now);
    ++attempts.in_flight;
    // An address without failures (beyond the free ones) is never slowed, however many logins it
    // runs at once: a webmail, a proxy or a NAT logs many users in from one address.
    if (delay_for(failed).count() == 0) {
        return std::chrono::milliseconds{0};
    }
    const auto delay = delay_for(failed + attempts.in_flight - 1);
    const Clock::time_point start = std::max(now, attempts.next_slot) + delay;
    attempts.next_slot = start;
    return std::chrono::ceil<std::chrono::milliseconds>(start - now);
}

std::chrono::milliseconds AuthThrottle::current_delay(std::string_view address, Clock::time_point now)
{
    const std::lock_guard guard(m_mutex);
    return delay_for(current(m_addresses, address, now));
}

void AuthThrottle::end_attempt(std::string_view address)
{
    const std::lock_guard guard(m_mutex);
    const auto found = m_attempts.find(std::string(address));
    if (found != m_attempts.end() && --found->second.in_flight == 0) {
        m_attempts.erase(found);
    }
}

std::size_t AuthThrottle::attempts_in_flight() const
{
    const std::lock_guard guard(m_mutex);
    std::size_t total = 0;
    for (const auto& [address, attempts] : m_attempts) {
        total += attempts.in_flight;
    }
    return total;
}

void AuthThrottle::set_options(const ThrottleOptions& options)
{
    const std::lock_guard guard(m_mutex);
    m_options = options;
}

void AuthThrottle::record_failure(std::string_view address, std::string_view user, Clock::time_point now)
{
    const std::lock_guard guard(m_mutex);
    add(m_addresses, address, now);
    if (!user.empty()) {
        add(m_users, user, now);
    }
}

void AuthThrottle::record_success(std::string_view user)
{
    const std::lock_guard guard(m_mutex);
    const auto found = m_users.entries.find(std::string(user));
    if (found != m_users.entries.end()) {
        m_users.by_age.erase(found->second.age);
        m_users.entries.erase(found);
    }
}

bool AuthThrottle::try_begin()
{
    const std::lock_guard guard(m_mutex);
    if (m_in_flight >= m_options.max_concurrent) {
        return false;
    }
    ++m_in_flight;
    return true;
}

void AuthThrottle::end()
{
    const std::lock_guard guard(m_mutex);
    if (m_in_flight > 0) {
        --m_in_flight;
    }
}

std::size_t AuthThrottle::tracked_addresses() const
{
    const std::lock_guard guard(m_mutex);
    return m_addresses.entries.size();
}

std::string log_escape(std::string_view text)
{
    if (text.empty()) {
        return "-";
    }
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte >= 0x7F || c == '\\' || c == '=') {
            out += fmt::format("\\x{:02x}", byte);
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string format_auth_failure(std::string_view user, std::string_view address, std::string_view mechanism,
                                std::string_view reason)
{
    return fmt::format("auth failed: user={} rip={} mech={} reason={}", log_escape(user), log_escape(address),
                       log_escape(mechanism), log_escape(reason));
}

} // namespace pigeon::auth
