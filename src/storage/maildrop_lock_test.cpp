#include "storage/maildrop_lock.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

namespace pigeon::storage {
namespace {

std::string lock_path(const char* name)
{
    return (std::filesystem::temp_directory_path() /
            (std::string("pigeon-lock-") + std::to_string(::getpid()) + name))
        .string();
}

TEST(MaildropLock, SecondSessionIsRefusedUntilTheFirstEnds)
{
    const auto path = lock_path("a");
    auto first = LockRegistry::process().acquire(path, false);
    ASSERT_TRUE(first);
    auto second = LockRegistry::process().acquire(path, false);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), make_error_code(errc::maildrop_in_use));
    first->reset();
    EXPECT_TRUE(LockRegistry::process().acquire(path, false));
    std::filesystem::remove(path);
}

TEST(MaildropLock, TakeoverRevokesTheOldSessionAndKeepsTheLock)
{
    const auto path = lock_path("b");
    auto old_session = LockRegistry::process().acquire(path, false);
    ASSERT_TRUE(old_session);
    auto new_session = LockRegistry::process().acquire(path, true);
    ASSERT_TRUE(new_session);
    EXPECT_TRUE((*old_session)->revoked());
    EXPECT_FALSE((*new_session)->revoked());
    old_session->reset(); // the vanished client's session ends: the lock stays with the new one
    EXPECT_FALSE(LockRegistry::process().acquire(path, false));
    new_session->reset();
    EXPECT_TRUE(LockRegistry::process().acquire(path, false));
    std::filesystem::remove(path);
}

TEST(MaildropLock, OtherProcessesAreExcluded)
{
    const auto path = lock_path("c");
    auto held = LockRegistry::process().acquire(path, false);
    ASSERT_TRUE(held);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // A fresh registry in the child stands for another pigeond process.
        LockRegistry other;
        auto attempt = other.acquire(path, true); // takeover never crosses processes
        ::_exit(!attempt && attempt.error() == make_error_code(errc::maildrop_in_use) ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::filesystem::remove(path);
}

} // namespace
} // namespace pigeon::storage
