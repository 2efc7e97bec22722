// The worker pool for blocking work (shared/DESIGN.md §2, §5): password hashing, user database
// lookups, maildrop scans and commits (fsync) run here, never on an event loop thread. A
// coroutine awaits run(f): f runs on a pool thread and the coroutine resumes on its own
// executor with the result.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include <cstddef>
#include <type_traits>
#include <utility>

namespace pigeon::net {

class WorkerPool {
public:
    explicit WorkerPool(std::size_t threads) : m_pool(threads) {}
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;
    ~WorkerPool() { join(); }

    // F must not throw (the project's code returns errors as values). Not a coroutine itself:
    // the function is moved into co_spawn's frame, which keeps it until the work is done.
    // Callers pass a named function object: GCC 12 mishandles temporaries with destructors
    // inside a co_await expression (they may be destroyed twice).
    template <class F>
    [[nodiscard]] asio::awaitable<std::invoke_result_t<std::decay_t<F>&>> run(F&& function)
    {
        using R = std::invoke_result_t<std::decay_t<F>&>;
        return asio::co_spawn(
            m_pool.get_executor(),
            [fn = std::forward<F>(function)]() mutable -> asio::awaitable<R> { co_return fn(); },
            asio::use_awaitable);
    }

    void join() { m_pool.join(); }

private:
    asio::thread_pool m_pool;
};

} // namespace pigeon::net
