// The live connections of one kind (POP3 sessions, LMTP sessions), so that a shutdown can end
// them. Entries are weak: a connection removes itself when it ends. T needs abort(), called
// from any thread, which ends the connection on its own event loop.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace pigeon::net {

template <class T>
class Registry {
public:
    void add(const std::shared_ptr<T>& connection)
    {
        const std::lock_guard guard(m_mutex);
        m_connections.emplace(connection.get(), connection);
    }
    void remove(const T* connection)
    {
        const std::lock_guard guard(m_mutex);
        m_connections.erase(connection);
    }
    // Asks every live connection to end; returns how many there were.
    std::size_t abort_all()
    {
        std::vector<std::shared_ptr<T>> live;
        {
            const std::lock_guard guard(m_mutex);
            for (const auto& [key, weak] : m_connections) {
                if (auto connection = weak.lock()) {
                    live.push_back(std::move(connection));
                }
            }
        }
        for (const auto& connection : live) {
            connection->abort();
        }
        return live.size();
    }
    [[nodiscard]] std::size_t size() const
    {
        const std::lock_guard guard(m_mutex);
        return m_connections.size();
    }

private:
    mutable std::mutex m_mutex;
    std::unordered_map<const T*, std::weak_ptr<T>> m_connections;
};

} // namespace pigeon::net
