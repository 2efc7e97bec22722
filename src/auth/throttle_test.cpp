#include "auth/throttle.hpp"

#include <gtest/gtest.h>

#include <regex>

namespace pigeon::auth {
namespace {

using namespace std::chrono_literals;
using Clock = AuthThrottle::Clock;

TEST(AuthThrottle, DelayGrowsPerFailureAndIsCapped)
{
    AuthThrottle throttle(ThrottleOptions{250ms, 4000ms, 900s, 1000, 8, 1});
    const auto now = Clock::time_point{} + 1h;
    EXPECT_EQ(throttle.failure_delay("192.0.2.1", "alice", now), 0ms); // the first typo is free
    throttle.record_failure("192.0.2.1", "alice", now);
    EXPECT_EQ(throttle.failure_delay("192.0.2.1", "alice", now), 250ms);
    throttle.record_failure("192.0.2.1", "alice", now);
    EXPECT_EQ(throttle.failure_delay("192.0.2.1", "alice", now), 500ms);
    for (int i = 0; i < 20; ++i) {
        throttle.record_failure("192.0.2.1", "alice", now);
    }
    EXPECT_EQ(throttle.failure_delay("192.0.2.1", "alice", now), 4000ms);
}

TEST(AuthThrottle, PerAddressAndPerUser)
{
    AuthThrottle throttle(ThrottleOptions{100ms, 10'000ms, 900s, 1000, 8, 0});
    const auto now = Clock::time_point{} + 1h;
    // One address guessing many users is slowed by its address...
    for (int i = 0; i < 5; ++i) {
        throttle.record_failure("198.51.100.7", "user" + std::to_string(i), now);
    }
    EXPECT_EQ(throttle.failure_delay("198.51.100.7", "fresh", now), 3200ms);
    // ...many addresses guessing one user are slowed by the user...
    for (int i = 0; i < 5; ++i) {
        throttle.record_failure("203.0.113." + std::to_string(i), "bob", now);
    }
    EXPECT_EQ(throttle.failure_delay("203.0.113.99", "bob", now), 3200ms);
    // ...and nobody else is slowed at all.
    EXPECT_EQ(throttle.failure_delay("192.0.2.50", "carol", now), 100ms);
}

TEST(AuthThrottle, TheWaitCountsOnlyPastFailuresOfThatAddress)
{
    AuthThrottle throttle(ThrottleOptions{250ms, 4000ms, 900s, 1000, 8, 1});
    const auto now = Clock::time_point{} + 1h;
    // One attempt at a time (begun and ended), as one connection's guesses come.
    const auto wait = [&throttle](std::string_view address, Clock::time_point at) {
        const auto delay = throttle.begin_attempt(address, at);
        throttle.end_attempt(address);
        return delay;
    };
    EXPECT_EQ(wait("192.0.2.1", now), 0ms);
    throttle.record_failure("192.0.2.1", "alice", now);
    EXPECT_EQ(wait("192.0.2.1", now), 0ms); // one free failure
    throttle.record_failure("192.0.2.1", "bob", now);
    EXPECT_EQ(wait("192.0.2.1", now), 250ms);
    throttle.record_failure("192.0.2.1", "carol", now);
    EXPECT_EQ(wait("192.0.2.1", now), 500ms);
    // Another address pays nothing, and the wait is forgotten with the failures.
    EXPECT_EQ(wait("192.0.2.2", now), 0ms);
    EXPECT_EQ(wait("192.0.2.1", now + 901s), 0ms);
}

TEST(AuthThrottle, ConcurrentAttemptsOfAFailingAddressAreSpacedNotReleasedTogether)
{
    AuthThrottle throttle(ThrottleOptions{250ms, 4000ms, 900s, 1000, 8, 1});
    const auto now = Clock::time_point{} + 1h;
    // A clean address is never slowed, however many logins it runs at once (a webmail, a NAT).
    for (int i = 0; i < 100; ++i) {
        EXPECT_EQ(throttle.begin_attempt("192.0.2.1", now), 0ms);
    }
    EXPECT_EQ(throttle.attempts_in_flight(), 100U);
    for (int i = 0; i < 100; ++i) {
        throttle.end_attempt("192.0.2.1");
    }
    for (int i = 0; i < 3; ++i) {
        throttle.record_failure("192.0.2.1", "alice", now);
    }
    EXPECT_EQ(throttle.attempts_in_flight(), 0U);
    // Now failing: ten attempts at once wait one after another, each a full delay after the
    // one before, instead of all at the capped delay.
    std::chrono::milliseconds previous{0};
    for (int i = 0; i < 10; ++i) {
        const auto wait = throttle.begin_attempt("192.0.2.1", now);
        EXPECT_GE(wait - previous, 500ms) << "attempt " << i;
        previous = wait;
    }
    EXPECT_GE(previous, 10 * 500ms);
    // Another address is not affected.
    EXPECT_EQ(throttle.begin_attempt("192.0.2.2", now), 0ms);
    throttle.end_attempt("192.0.2.2");
    for (int i = 0; i < 10; ++i) {
        throttle.end_attempt("192.0.2.1");
    }
    EXPECT_EQ(throttle.attempts_in_flight(), 0U);
    throttle.end_attempt("192.0.2.9"); // an unmatched end is harmless
}

TEST(AuthThrottle, NewOptionsApplyToTheNextDelay)
{
    AuthThrottle throttle(ThrottleOptions{250ms, 4000ms, 900s, 1000, 8, 0});
    const auto now = Clock::time_point{} + 1h;
    throttle.record_failure("192.0.2.1", "alice", now);
    EXPECT_EQ(throttle.begin_attempt("192.0.2.1", now), 250ms);
    throttle.end_attempt("192.0.2.1");
    throttle.set_options(ThrottleOptions{100ms, 4000ms, 900s, 1000, 8, 0});
    EXPECT_EQ(throttle.begin_attempt("192.0.2.1", now), 100ms); // the failure itself is kept
    throttle.end_attempt("192.0.2.1");
}

TEST(AuthThrottle, FailuresAreForgottenAndSuccessClearsTheUser)
{
    AuthThrottle throttle(ThrottleOptions{100ms, 10'000ms, 60s, 1000, 8, 0});
    const auto start = Clock::time_point{} + 1h;
    for (int i = 0; i < 4; ++i) {
        throttle.record_failure("192.0.2.1", "alice", start);
    }
    EXPECT_EQ(throttle.failure_delay("192.0.2.1", "alice", start + 59s), 1600ms);
    EXPECT_EQ(throttle.failure_delay("192.0.2.1", "alice", start + 61s), 100ms);
    throttle.record_failure("192.0.2.2", "dave", start);
    throttle.record_failure("192.0.2.2", "dave", start);
    throttle.record_success("dave");
    EXPECT_EQ(throttle.failure_delay("192.0.2.3", "dave", start), 100ms);
}

TEST(AuthThrottle, MemoryIsBounded)
{
    AuthThrottle throttle(ThrottleOptions{100ms, 10'000ms, 900s, 50, 8, 0});
    const auto now = Clock::time_point{} + 1h;
    for (int i = 0; i < 10'000; ++i) {
        throttle.record_failure("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), "u", now);
    }
    EXPECT_EQ(throttle.tracked_addresses(), 50U);
}

TEST(AuthThrottle, ConcurrencyCap)
{
    AuthThrottle throttle(ThrottleOptions{100ms, 1000ms, 900s, 10, 2, 0});
    EXPECT_TRUE(throttle.try_begin());
    EXPECT_TRUE(throttle.try_begin());
    EXPECT_FALSE(throttle.try_begin());
    throttle.end();
    EXPECT_TRUE(throttle.try_begin());
}

TEST(AuthFailureLog, OneRegexMatchesEveryLineAndHostileTextIsEscaped)
{
    const std::regex fail2ban(R"(^auth failed: user=\S+ rip=\S+ mech=\S+ reason=\S+$)");
    const auto plain = format_auth_failure("alice", "192.0.2.1", "PLAIN", "password_mismatch");
    EXPECT_EQ(plain, "auth failed: user=alice rip=192.0.2.1 mech=PLAIN reason=password_mismatch");
    const auto hostile = format_auth_failure("x rip=10.0.0.1\n", "2001:db8::1", "USER", "unknown_user");
    EXPECT_TRUE(std::regex_match(hostile, fail2ban)) << hostile;
    EXPECT_EQ(hostile.find("rip=10.0.0.1"), std::string::npos); // the user cannot forge an address
    EXPECT_TRUE(std::regex_match(format_auth_failure("", "192.0.2.1", "APOP", "x"), fail2ban));
}

} // namespace
} // namespace pigeon::auth
