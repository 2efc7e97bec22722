// EXPIRE enforced (RFC 2449 §6.7). A server that advertises "EXPIRE n" may delete a message n
// days after a client first retrieved it; "EXPIRE 0" means retrieved messages are not left on the
// server at all. pigeond applies the policy when a session commits (QUIT): the client's DELEs,
// plus, with 0, every message it retrieved, or, with n > 0, every message first retrieved at
// least n days ago, by this session or an earlier one.
//
// The first-retrieval times live in a small record beside the maildrop's index
// (Maildrop::retrieval_record_path()), one "SECONDS UIDL" line per message. It is written after
// the deletions are durable, atomically, and is hostile input when read: lines that do not parse
// are dropped, times in the future count as now. A lost or damaged record only keeps mail longer;
// it never makes a message expire early.
//
// What it must not know: POP3 commands, sockets, clocks (the caller passes the time).
#pragma once

#include "core/message_listing.hpp"
#include "core/result.hpp"
#include "storage/maildrop.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pigeon::storage {

// The largest record read, in octets: far above 80 octets for each of a million messages.
inline constexpr std::size_t max_retrieval_record_octets = std::size_t{128} * 1024 * 1024;

struct RetentionPlan {
    std::vector<MessageIndex> deletions; // the client's, plus the expired, sorted, no duplicates
    std::size_t expired = 0;             // how many of them the policy added
    std::string record;                  // the new record: the messages kept that were retrieved
};

// Pure: what to delete and what to remember. `record_text` is the old record (empty if none),
// `now` and the record's times are seconds since the epoch.
[[nodiscard]] RetentionPlan plan_retention(const MessageListing& listing, std::string_view record_text,
                                           std::span<const MessageIndex> client_deletions,
                                           std::span<const MessageIndex> retrieved, std::int64_t now,
                                           std::uint32_t expire_days);

// Commits `client_deletions` and what the policy adds, then writes the record. Returns how many
// messages the policy added. Without a policy (nothing) it is a plain commit. A maildrop without
// a record path (memory) supports only expire_days == 0. The commit's error is returned as Maildrop::commit()
// gives it; a record that cannot be written is not an error (mail is kept longer, never lost).
[[nodiscard]] Result<std::size_t> commit_with_retention(Maildrop& maildrop,
                                                        std::span<const MessageIndex> client_deletions,
                                                        std::span<const MessageIndex> retrieved,
                                                        std::int64_t now,
                                                        std::optional<std::uint32_t> expire_days);

} // namespace pigeon::storage
