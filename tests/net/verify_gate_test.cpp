// VerifyGate: one address's password checks wait their turn; other addresses do not.
#include "net/verify_gate.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <vector>

namespace pigeon::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Runs `enter` in a coroutine and records its answer.
void spawn_enter(asio::io_context& io, VerifyGate& gate, const std::string& address,
                 Clock::time_point deadline, std::optional<bool>& answer)
{
    asio::co_spawn(
        io,
        [&gate, &address, deadline, &answer]() -> asio::awaitable<void> {
            answer = co_await gate.enter(address, deadline);
        },
        asio::detached);
}

TEST(VerifyGate, AnAddressWaitsForItsTurnWhileOthersGoAtOnce)
{
    asio::io_context io;
    VerifyGate gate(1);
    const std::string attacker = "192.0.2.66";
    const std::string user = "198.51.100.7";
    const auto later = Clock::now() + 60s;
    std::optional<bool> first;
    std::optional<bool> second;
    std::optional<bool> third;
    std::optional<bool> other;
    spawn_enter(io, gate, attacker, later, first);
    spawn_enter(io, gate, attacker, later, second);
    spawn_enter(io, gate, attacker, later, third);
    spawn_enter(io, gate, user, later, other);
    io.poll();
    EXPECT_EQ(first, std::optional<bool>(true));
    EXPECT_FALSE(second.has_value());
    EXPECT_FALSE(third.has_value());
    EXPECT_EQ(other, std::optional<bool>(true)); // not behind the attacker's queue
    EXPECT_EQ(gate.running(), 2U);
    EXPECT_EQ(gate.waiting(), 2U);

    gate.leave(attacker); // the first check ends: the second, and only it, goes
    io.poll();
    EXPECT_EQ(second, std::optional<bool>(true));
    EXPECT_FALSE(third.has_value());
    gate.leave(attacker);
    io.poll();
    EXPECT_EQ(third, std::optional<bool>(true));
    gate.leave(attacker);
    gate.leave(user);
    EXPECT_EQ(gate.running(), 0U);
    EXPECT_EQ(gate.waiting(), 0U);
}

TEST(VerifyGate, AWaiterWhoseDeadlineComesFirstIsRefusedAndLeavesNoTrace)
{
    asio::io_context io;
    VerifyGate gate(1);
    const std::string address = "192.0.2.66";
    std::optional<bool> first;
    std::optional<bool> late;
    spawn_enter(io, gate, address, Clock::now() + 60s, first);
    spawn_enter(io, gate, address, Clock::now() + 20ms, late);
    io.run_for(2s); // returns once the second has given up (the first holds its turn, no timer)
    EXPECT_EQ(first, std::optional<bool>(true));
    EXPECT_EQ(late, std::optional<bool>(false));
    EXPECT_EQ(gate.waiting(), 0U);
    gate.leave(address);
    EXPECT_EQ(gate.running(), 0U);
}

TEST(VerifyGate, ATurnGivenToAWaiterThatIsGoneIsHandedOn)
{
    VerifyGate gate(1);
    const std::string address = "192.0.2.66";
    std::optional<bool> next;
    asio::io_context keeper;
    spawn_enter(keeper, gate, address, Clock::now() + 60s, next); // takes the turn at once
    keeper.poll();
    ASSERT_EQ(next, std::optional<bool>(true));
    {
        // A waiter on a loop that is destroyed before it runs again (its connection gone).
        auto doomed = std::make_unique<asio::io_context>();
        std::optional<bool> never;
        spawn_enter(*doomed, gate, address, Clock::now() + 60s, never);
        doomed->poll();
        EXPECT_EQ(gate.waiting(), 1U);
        gate.leave(address); // handed to the doomed waiter...
        doomed.reset();      // ...whose frame is destroyed: the turn must come back
        EXPECT_FALSE(never.has_value());
    }
    EXPECT_EQ(gate.running(), 0U);
    EXPECT_EQ(gate.waiting(), 0U);
    std::optional<bool> after;
    spawn_enter(keeper, gate, address, Clock::now() + 60s, after);
    keeper.restart(); // it ran out of work after the first poll
    keeper.poll();
    EXPECT_EQ(after, std::optional<bool>(true));
    gate.leave(address);
}

TEST(VerifyGate, AWiderShareLetsThatManyGoAtOnce)
{
    asio::io_context io;
    VerifyGate gate(3);
    const std::string address = "192.0.2.66";
    std::vector<std::optional<bool>> answers(5);
    for (auto& answer : answers) {
        spawn_enter(io, gate, address, Clock::now() + 60s, answer);
    }
    io.poll();
    EXPECT_EQ(std::count(answers.begin(), answers.end(), std::optional<bool>(true)), 3);
    gate.set_per_address(5); // a reload widening the share admits the waiting at once
    io.poll();
    EXPECT_EQ(std::count(answers.begin(), answers.end(), std::optional<bool>(true)), 5);
    for (int i = 0; i < 5; ++i) {
        gate.leave(address);
    }
    EXPECT_EQ(gate.running(), 0U);
}

} // namespace
} // namespace pigeon::net
