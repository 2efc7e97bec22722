#include "net/verify_gate.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>

namespace pigeon::net {

asio::awaitable<bool> VerifyGate::enter(const std::string& address_ref,
                                        std::chrono::steady_clock::time_point deadline)
{
    // A copy before the first suspension: the caller's string may be gone when this resumes.
    const std::string address = address_ref; // NOLINT(performance-unnecessary-copy-initialization)
    std::shared_ptr<Waiter> waiter;
    {
        const std::lock_guard guard(m_mutex);
        auto& entry = m_addresses[address];
        if (entry.running < m_per_address && entry.waiting.empty()) {
            ++entry.running;
            co_return true;
        }
        waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
        waiter->timer.expires_at(deadline);
        entry.waiting.push_back(waiter);
    }
    // Leaves the queue whatever ends the wait: the deadline, or this coroutine destroyed (its
    // connection gone with the server). A turn given meanwhile is handed on, never lost.
    struct Withdraw {
        VerifyGate& gate;
        const std::string& address; // the frame's copy
        std::shared_ptr<Waiter>& waiter;
        bool keep_turn = false;
        Withdraw(VerifyGate& g, const std::string& a, std::shared_ptr<Waiter>& w)
            : gate(g), address(a), waiter(w)
        {
        }
        Withdraw(const Withdraw&) = delete;
        Withdraw& operator=(const Withdraw&) = delete;
        Withdraw(Withdraw&&) = delete;
        Withdraw& operator=(Withdraw&&) = delete;
        ~Withdraw()
        {
            const std::lock_guard guard(gate.m_mutex);
            const auto found = gate.m_addresses.find(address);
            if (found == gate.m_addresses.end()) {
                return;
            }
            if (waiter->admitted) {
                if (!keep_turn) {
                    --found->second.running;
                    gate.admit_next(found);
                }
                return;
            }
            auto& queue = found->second.waiting;
            queue.erase(std::remove(queue.begin(), queue.end(), waiter), queue.end());
            if (found->second.running == 0 && queue.empty()) {
                gate.m_addresses.erase(found);
            }
        }
    } withdraw(*this, address, waiter);
    const auto waited = co_await waiter->timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    (void)waited; // cancelled (admitted) or expired: the flag says which
    const std::lock_guard guard(m_mutex);
    withdraw.keep_turn = waiter->admitted;
    co_return waiter->admitted;
}

void VerifyGate::leave(const std::string& address)
{
    const std::lock_guard guard(m_mutex);
    const auto found = m_addresses.find(address);
    if (found == m_addresses.end() || found->second.running == 0) {
        return;
    }
    --found->second.running;
    admit_next(found);
}

void VerifyGate::admit_next(std::unordered_map<std::string, Address>::iterator found)
{
    auto& entry = found->second;
    while (entry.running < m_per_address && !entry.waiting.empty()) {
        auto next = std::move(entry.waiting.front());
        entry.waiting.pop_front();
        next->admitted = true;
        ++entry.running;
        // The timer belongs to the waiter's connection: woken on its own executor, by moving its
        // expiry to the past (which also wakes a wait not yet begun).
        asio::post(next->timer.get_executor(),
                   [next] { next->timer.expires_after(std::chrono::nanoseconds(0)); });
    }
    if (entry.running == 0 && entry.waiting.empty()) {
        m_addresses.erase(found);
    }
}

void VerifyGate::set_per_address(std::uint32_t per_address)
{
    const std::lock_guard guard(m_mutex);
    m_per_address = per_address == 0 ? 1 : per_address;
    for (auto it = m_addresses.begin(); it != m_addresses.end();) {
        auto current = it++;
        admit_next(current);
    }
}

std::size_t VerifyGate::running() const
{
    const std::lock_guard guard(m_mutex);
    std::size_t total = 0;
    for (const auto& [address, entry] : m_addresses) {
        total += entry.running;
    }
    return total;
}

std::size_t VerifyGate::waiting() const
{
    const std::lock_guard guard(m_mutex);
    std::size_t total = 0;
    for (const auto& [address, entry] : m_addresses) {
        total += entry.waiting.size();
    }
    return total;
}

} // namespace pigeon::net
