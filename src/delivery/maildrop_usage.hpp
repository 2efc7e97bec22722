// How much a maildrop holds (messages and octets on disk), for quota checks at delivery, without
// reading a large maildrop in full on every delivery.
//
// Maildir (MaildirUsage). A full count lists new/ and cur/ and sums the ",S=" size in each name
// (every message Pigeon or Dovecot delivers carries it; a name without one costs a stat()). For
// 100,000 messages that is 33-50 ms (measured on the 2-core development VM, release build, warm
// cache), too much for every delivery, so the result is kept in "pigeon-quota" in the maildir
// root (a check from it: 15-30 µs):
//
//   pigeon-quota 2
//   <messages> <octets> <counted at, unix seconds> <cur/ stamp> <pigeon-index stamp>
//       <listing began, unix ns> <trusted 0|1>
//   +<octets>                     one line appended per message delivered since the count
//
// A delivery appends one line (O_APPEND, a few dozen octets), unless a count that began listing
// after the message's commit replaced the file meanwhile (that count has the message already); a
// check reads the file and stat()s
// cur/ and pigeon-index. The figure is trusted while neither changed since the count: a POP3
// session that deletes messages rewrites pigeon-index (storage/maildir), and mail readers that
// file messages rename them into cur/. Deletions that touch neither (another program unlinking
// from new/) and messages added by other deliverers are noticed at the next count, which
// happens when the file holds 256 added lines, when it is an hour old, and before any delivery
// is refused on its figure (unless counted in the last minute): a stale figure may delay a
// refusal, never cause a wrong one for long. The counts and appends of all processes are
// serialised by flock() on the maildir root directory, which holds nothing else. Why not
// Dovecot's maildirsize: it counts every folder of a Maildir++ tree and Dovecot owns it; Pigeon
// would have to keep it exact for Dovecot, and it has no place for the stamps above.
//
// mbox (MboxUsage). The octets are the file's size (one stat()); the messages are counted once
// (from Pigeon's mbox index when its stamp matches, else by reading the file) and kept with the
// file's size, inode and mtime in "<index>.pigeon-quota" beside the index; an mbox that only grew
// has only its new tail read (the From_ lines after a blank line).
//
// Thread-safety: every tracker may be used from several threads at once.
#pragma once

#include "core/result.hpp"
#include "delivery/quota.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace pigeon::storage {
class MboxStore;
class MemoryMaildropStore;
} // namespace pigeon::storage

namespace pigeon::delivery {

// What a check may rely on.
enum class Freshness : std::uint8_t {
    cached,        // whatever the cache vouches for (the usual check)
    before_refusal // about to refuse on it: count again unless counted moments ago
};

class UsageTracker {
public:
    UsageTracker() = default;
    UsageTracker(const UsageTracker&) = delete;
    UsageTracker& operator=(const UsageTracker&) = delete;
    virtual ~UsageTracker() = default;

    // The maildrop's usage; an empty one for a maildrop not created yet.
    [[nodiscard]] virtual Result<Usage> usage(std::string_view user, Freshness freshness) = 0;
    // Records a message of `octets` (on disk) committed to the user's maildrop before
    // `committed_ns` (storage::now_ns() taken after the commit). A failure to record costs a
    // count later, never correctness, so nothing is returned.
    virtual void delivered(std::string_view user, std::uint64_t octets, std::int64_t committed_ns) = 0;
    // Where the maildrop is (a path), for log lines; empty if the user name cannot be one.
    [[nodiscard]] virtual std::string location(std::string_view user) const = 0;
};

struct UsageCacheOptions {
    // Count again after this many recorded deliveries, or when the count is this old.
    std::uint32_t max_recorded_deliveries = 256;
    std::chrono::seconds max_age{3600};
    // Before a refusal, a count younger than this is trusted (a full maildrop receiving many
    // messages is not listed in full for each).
    std::chrono::seconds refusal_recount_after{60};
};

class MaildirUsage final : public UsageTracker {
public:
    // `path_template` as storage::MaildirOptions::path_template.
    explicit MaildirUsage(std::string path_template, UsageCacheOptions options = {});

    [[nodiscard]] Result<Usage> usage(std::string_view user, Freshness freshness) override;
    void delivered(std::string_view user, std::uint64_t octets, std::int64_t committed_ns) override;
    [[nodiscard]] std::string location(std::string_view user) const override;

    // The same for a maildir given by its path (tests, tools).
    [[nodiscard]] Result<Usage> usage_of(const std::string& root, Freshness freshness) const;
    static void delivered_to(const std::string& root, std::uint64_t octets, std::int64_t committed_ns);
    // A full count, ignoring and not touching the cache (tests, tools).
    [[nodiscard]] static Result<Usage> count(const std::string& root);

private:
    std::string m_path_template;
    UsageCacheOptions m_options;
};

class MboxUsage final : public UsageTracker {
public:
    explicit MboxUsage(std::shared_ptr<const storage::MboxStore> store);

    [[nodiscard]] Result<Usage> usage(std::string_view user, Freshness freshness) override;
    void delivered(std::string_view user, std::uint64_t octets, std::int64_t committed_ns) override;
    [[nodiscard]] std::string location(std::string_view user) const override;

    // The messages of an mbox file by reading it whole (tests, tools).
    [[nodiscard]] static Result<std::uint64_t> count_messages(const std::string& mbox_path);

private:
    std::shared_ptr<const storage::MboxStore> m_store;
};

// For tests and fuzzing: sums what a MemoryMaildropStore holds. Not thread-safe (the store is not).
class MemoryUsage final : public UsageTracker {
public:
    explicit MemoryUsage(const storage::MemoryMaildropStore& store) : m_store(store) {}

    [[nodiscard]] Result<Usage> usage(std::string_view user, Freshness freshness) override;
    void delivered(std::string_view /*user*/, std::uint64_t /*octets*/,
                   std::int64_t /*committed_ns*/) override
    {
    }
    [[nodiscard]] std::string location(std::string_view user) const override;

private:
    const storage::MemoryMaildropStore& m_store;
};

// File names that belong to this module.
inline constexpr const char* maildir_usage_file = "pigeon-quota";

} // namespace pigeon::delivery
