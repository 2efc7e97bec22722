// Per-user quota (shared/DESIGN.md §4, issue 7): the limits a delivery must respect, read from the
// user database in Dovecot's notation so that a user database moved from Dovecot keeps its
// quotas, and the one rule that decides whether a message still fits.
//
// Where limits come from. A user record's extra fields (auth::UserRecord::extra_fields) may hold
// Dovecot quota rules under the keys quota_rule, quota_rule2, quota_rule3, ... (each also with
// the "userdb_" prefix a passwd-file gives userdb fields):
//
//   userdb_quota_rule=*:storage=1G  userdb_quota_rule2=*:messages=1000
//
// A rule is "<mailbox mask>:<limit>[:<limit>...]", a limit "storage=N" (KiB unless a unit
// follows), "bytes=N" (octets unless a unit follows) or "messages=N", units B, k, M, G, T
// (powers of 1024, either case), as Dovecot's quota plugin reads them (quota-util.c). 0 means
// unlimited. The masks "*" and "?" set the default rule; a mask matching INBOX (the only mailbox
// Pigeon delivers to) adds to it ("INBOX:storage=+100M", or "-", or "N%" of the default), and
// "<mask>:ignore" lifts the limits of what it matches. Rules for other mailboxes (Trash, SPAM)
// do not concern a POP3 maildrop and are skipped. Anything else is an error for that user (the
// delivery is deferred and the reason logged), never a crash and never "unlimited".
//
// Server defaults ([quota] default_storage and default_messages) are the default rule of a user
// whose record does not set it; a rule that names only storage keeps the default message limit,
// and the other way round.
//
// This module knows nothing of storage, sessions or replies: quota_for() reads a record,
// fits() compares numbers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

namespace pigeon::auth {
struct UserRecord;
} // namespace pigeon::auth

namespace pigeon::delivery {

struct Quota {
    std::optional<std::uint64_t> bytes;    // octets stored; nothing: unlimited
    std::optional<std::uint64_t> messages; // nothing: unlimited

    [[nodiscard]] bool unlimited() const noexcept { return !bytes && !messages; }
    bool operator==(const Quota&) const = default;
};

struct QuotaPolicy {
    Quota defaults; // for users whose record sets no default rule (or sets only one limit)
    // Dovecot's quota_grace (default 10%): a user still under the storage limit may go over it
    // by this much with one last message, so a large message is not refused for a few octets.
    std::uint32_t grace_percent = 10;
    std::optional<std::uint64_t> grace_octets; // instead of grace_percent, when set
    // Dovecot's quota_full_tempfail: a full maildrop defers mail (452 4.2.2 / EX_TEMPFAIL)
    // instead of refusing it (552 5.2.2 / EX_NOPERM).
    bool full_tempfail = false;
};

// The octets of a maildrop, or those a message adds to it.
struct Usage {
    std::uint64_t messages = 0;
    std::uint64_t octets = 0;

    Usage& operator+=(const Usage& other) noexcept
    {
        messages += other.messages;
        octets += other.octets;
        return *this;
    }
    bool operator==(const Usage&) const = default;
};

// One size in Dovecot's notation: digits, then an optional unit B, k, M, G or T (either case,
// powers of 1024); `default_multiplier` applies without a unit (1024 for "storage=").
[[nodiscard]] tl::expected<std::uint64_t, std::string> parse_quota_size(std::string_view text,
                                                                        std::uint64_t default_multiplier = 1);

// The limits in a record's extra fields on top of the policy's defaults; the text says which
// field is wrong and why ("quota_rule2: unknown unit \"X\"").
[[nodiscard]] tl::expected<Quota, std::string>
quota_from_fields(const std::vector<std::pair<std::string, std::string>>& extra_fields,
                  const Quota& defaults);
[[nodiscard]] tl::expected<Quota, std::string> quota_for(const auth::UserRecord& record,
                                                         const QuotaPolicy& policy);

// How far past the storage limit one last message may go (Dovecot's quota_grace).
[[nodiscard]] std::uint64_t grace_octets(const Quota& quota, const QuotaPolicy& policy) noexcept;

// Whether a message of `octets` may join a maildrop holding `usage`, as Dovecot's quota plugin
// decides for a delivery (quota_transaction_is_over with quota_grace): a message limit admits
// one more message while the count is under it; a storage limit admits a message while the
// maildrop is under the limit and the message ends at most `grace` octets past it. `octets` 0
// (a size not yet known) asks only whether the maildrop is under its limits.
[[nodiscard]] bool fits(const Quota& quota, const Usage& usage, std::uint64_t octets,
                        std::uint64_t grace) noexcept;

} // namespace pigeon::delivery
