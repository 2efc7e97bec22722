#include "storage/maildrop_lock.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

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

// Found by scripts/tsan-load (a whole pigeond hung): when the session holding a lock ended while
// a new login of the same user was inside acquire(), acquire() held the last reference and
// destroyed it under its own mutex; ~MaildropLock calls release(), which took the mutex again.
// Two threads take the lock over from each other and drop theirs at once, in a child process so
// that a deadlock is a failed test, not a hung suite.
TEST(MaildropLock, ASessionEndingDuringATakeoverDoesNotDeadlock)
{
    const auto path = lock_path("race");
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        LockRegistry registry;
        std::atomic<unsigned> sink{0};
        auto churn = [&registry, &path, &sink](unsigned seed) {
            std::minstd_rand random(seed);
            for (int round = 0; round < 20'000; ++round) {
                auto lock = registry.acquire(path, true);
                if (!lock) {
                    ::_exit(2);
                }
                // Hold it a random few microseconds, so that its end falls now and then inside
                // the other thread's acquire() (without this the old code passed; with it, it
                // deadlocked in two runs of three).
                for (unsigned spin = random() % 4096; spin > 0; --spin) {
                    sink.fetch_add(1, std::memory_order_relaxed);
                }
            } // each lock ends here
        };
        std::thread other(churn, 1U);
        churn(2U);
        other.join();
        ::_exit(registry.held() == 0 ? 0 : 3);
    }
    int status = 0;
    pid_t done = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((done = ::waitpid(child, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (done == 0) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
        ADD_FAILURE() << "acquire() and a session's end deadlocked";
    } else {
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    }
    std::filesystem::remove(path);
}

std::string file_text(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_text(const std::string& path, const std::string& text)
{
    std::ofstream(path, std::ios::trunc) << text;
}

std::size_t open_descriptors()
{
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        ++count;
    }
    return count;
}

// The record this process writes, with one field replaced (0 boot id ... 5 host).
std::string altered_record(const std::string& record, std::size_t field, const std::string& value)
{
    std::istringstream in(record);
    std::string magic;
    std::string version;
    std::vector<std::string> words(6);
    in >> magic >> version;
    for (auto& word : words) {
        in >> word;
    }
    words.at(field) = value;
    std::string out = magic + " " + version;
    for (const auto& word : words) {
        out += " " + word;
    }
    return out + "\n";
}

// The record this process writes into `path` while it holds it (the lock is released again).
std::string own_record(const std::string& path)
{
    auto lock = LockRegistry::process().acquire(path, false);
    return lock ? file_text(path) : std::string{};
}

void age(const std::string& path, std::chrono::seconds by)
{
    const auto then = std::chrono::system_clock::now() - by;
    const std::array<timespec, 2> times{timespec{std::chrono::system_clock::to_time_t(then), 0},
                                        timespec{std::chrono::system_clock::to_time_t(then), 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times.data(), 0), 0);
}

TEST(MaildropLock, HeldLocksKeepNoDescriptorOpen)
{
    const std::size_t before = open_descriptors();
    std::vector<std::shared_ptr<MaildropLock>> held;
    for (int i = 0; i < 50; ++i) {
        auto lock = LockRegistry::process().acquire(lock_path(("fd" + std::to_string(i)).c_str()), false);
        ASSERT_TRUE(lock);
        held.push_back(std::move(*lock));
    }
    EXPECT_EQ(open_descriptors(), before);
    held.clear();
    for (int i = 0; i < 50; ++i) {
        std::filesystem::remove(lock_path(("fd" + std::to_string(i)).c_str()));
    }
}

TEST(MaildropLock, TheFileNamesTheHolderAndSaysFreeOnRelease)
{
    const auto path = lock_path("rec");
    auto held = LockRegistry::process().acquire(path, false);
    ASSERT_TRUE(held);
    const auto record = file_text(path);
    EXPECT_TRUE(record.starts_with("pigeon-lock 1 ")) << record;
    EXPECT_NE(record.find(" " + std::to_string(::getpid()) + " "), std::string::npos) << record;
    held->reset();
    // Not emptied: a file that keeps its block can take the next record on a full disk.
    EXPECT_EQ(file_text(path), "pigeon-lock free\n");
    auto again = LockRegistry::process().acquire(path, false);
    ASSERT_TRUE(again);
    again->reset();
    // An empty file (as older versions left it) is free too.
    std::filesystem::resize_file(path, 0);
    EXPECT_TRUE(LockRegistry::process().acquire(path, false));
    std::filesystem::remove(path);
}

TEST(MaildropLock, AProcessThatDiedHoldingTheLockLeavesItFree)
{
    const auto path = lock_path("dead");
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        LockRegistry other;
        auto lock = other.acquire(path, false);
        ::_exit(lock ? 0 : 1); // dies holding it, as kill -9 would leave it
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_NE(file_text(path), ""); // the dead child's record is still there
    auto lock = LockRegistry::process().acquire(path, false);
    EXPECT_TRUE(lock);
    lock->reset();
    std::filesystem::remove(path);
}

TEST(MaildropLock, AReusedPidWithAnotherStartTimeIsStale)
{
    const auto path = lock_path("reuse");
    const std::string record = own_record(path);
    ASSERT_FALSE(record.empty()); // released: the file is empty again
    // A live process (the parent of this test) named with this process's start time: a PID
    // reused by another program.
    write_text(path, altered_record(altered_record(record, 2, std::to_string(::getppid())), 3, "1"));
    EXPECT_TRUE(LockRegistry::process().acquire(path, false));
    // The same live process with its real start time holds the lock.
    std::istringstream stat(file_text("/proc/" + std::to_string(::getppid()) + "/stat"));
    std::string field;
    std::string start_time;
    std::string text = stat.str();
    std::istringstream after(text.substr(text.rfind(')') + 2));
    for (int i = 3; i <= 22 && after >> field; ++i) {
        start_time = field;
    }
    write_text(path, altered_record(altered_record(record, 2, std::to_string(::getppid())), 3, start_time));
    auto refused = LockRegistry::process().acquire(path, false);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), make_error_code(errc::maildrop_in_use));
    std::filesystem::remove(path);
}

TEST(MaildropLock, ARecordFromBeforeARebootIsStale)
{
    const auto path = lock_path("boot");
    const std::string record = own_record(path);
    ASSERT_FALSE(record.empty());
    write_text(path, altered_record(altered_record(record, 0, "00000000-0000-0000-0000-000000000000"), 2,
                                    std::to_string(::getppid())));
    EXPECT_TRUE(LockRegistry::process().acquire(path, false));
    std::filesystem::remove(path);
}

TEST(MaildropLock, AnotherHostsRecordHoldsWhileFreshAndIsStaleWhenNotRefreshed)
{
    const auto path = lock_path("host");
    const std::string record = own_record(path);
    ASSERT_FALSE(record.empty());
    write_text(path, altered_record(altered_record(record, 0, "11111111-2222-3333-4444-555555555555"), 5,
                                    "mail2.example.net"));
    auto refused = LockRegistry::process().acquire(path, false);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), make_error_code(errc::maildrop_in_use));
    age(path, LockRegistry::stale_after + std::chrono::seconds(5));
    EXPECT_TRUE(LockRegistry::process().acquire(path, false));
    std::filesystem::remove(path);
}

TEST(MaildropLock, RefreshKeepsHeldRecordsFresh)
{
    const auto path = lock_path("fresh");
    auto lock = LockRegistry::process().acquire(path, false);
    ASSERT_TRUE(lock);
    age(path, std::chrono::hours(1));
    EXPECT_GE(LockRegistry::process().refresh(), 1U);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_LT(std::chrono::system_clock::now() - std::chrono::system_clock::from_time_t(st.st_mtime),
              std::chrono::minutes(1));
    lock->reset();
    std::filesystem::remove(path);
}

TEST(MaildropLock, GarbageInTheLockFileIsNotAHolder)
{
    const auto path = lock_path("junk");
    for (const std::string& junk : {std::string("x"), std::string("pigeon-lock 1 a b c d e f"),
                                    std::string("pigeon-lock 1 a b -5 d 0 f\n"), std::string(600, 'A'),
                                    std::string("pigeon-lock 1 \0\0\n", 17)}) {
        write_text(path, junk);
        auto lock = LockRegistry::process().acquire(path, false);
        EXPECT_TRUE(lock) << junk;
    }
    std::filesystem::remove(path);
}

TEST(MaildropLock, ASymlinkIsNotFollowed)
{
    const auto path = lock_path("link");
    const auto target = lock_path("target");
    write_text(target, "precious");
    std::filesystem::create_symlink(target, path);
    EXPECT_FALSE(LockRegistry::process().acquire(path, false));
    EXPECT_EQ(file_text(target), "precious");
    std::filesystem::remove(path);
    std::filesystem::remove(target);
}

} // namespace
} // namespace pigeon::storage
