// Crash-safe in-place rewrites of an mbox (deleting messages), through a journal.
//
// A rewrite replaces the region [region_start, old_size) of the mbox (from the first deleted
// message to the end) with the kept messages of that region, moved down. Before the mbox is
// touched, the complete new content of the region and the new index are written to the journal
// and fsynced, with a checksum in a trailer written last. Then the region is rewritten in place
// (same inode, owner and mode), fsynced, truncated, fsynced; the index is written; the journal
// is removed. Whoever opens or delivers to the mbox next replays a complete journal first (under
// the mbox lock); an incomplete one means the mbox was never touched, and it is discarded. So a
// crash at any point leaves either every deletion or none, and every kept message exactly once.
// The price: a commit needs free space for the kept part of the region (without it the commit
// fails and nothing changes) and writes that part twice.
//
// Journal layout (text header and trailer around raw octets):
//   pigeon-mbox-journal 1 <device> <inode> <region start> <old size> <kept octets> <index octets>
//       <index covers> <hash of the old [region start + kept octets, old size)>\n
//   <kept octets: the new content of the region>
//   <index octets: the index entries of the rewritten mbox, as in the index file>
//   pigeon-mbox-journal-end <SHA-256 of everything before this line, hex>\n
//
// Replay must also survive mail appended after a crash by a program that does not know the
// journal (Postfix removes a dotlock it thinks stale). The file's size and the recorded hash of
// the old octets just past the new end tell where the crash happened: still there, the mbox was
// not yet truncated, and any newly appended tail is first folded into a new journal so it is
// moved down with the rest; gone, the rewrite had completed (that is checked octet by octet) and
// whatever follows it is new mail, left in place. A journal that fits neither case, or names
// another file, is set aside ("<journal>.set-aside") and the mbox left alone.
#pragma once

#include "core/result.hpp"
#include "storage/mbox/mbox_index.hpp"
#include "storage/mbox/mbox_lock.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pigeon::storage::mbox {

// For tests only: crash simulation and small copies.
struct MboxTestHooks {
    // Called before every I/O step of a rewrite or a replay, with the step's name; a test makes
    // the process _exit() at the N-th call to leave the mbox as a crash there would.
    std::function<void(std::string_view step)> before_io_step;
    // Copy buffer for rewrites in octets; 0 means 64 KiB. Small values mean more steps.
    std::size_t copy_chunk_octets = 0;
};

struct RewriteContext {
    int mbox_fd = -1;
    std::string journal_path;
    std::string index_path;
    const MboxTestHooks* hooks = nullptr;
    MboxLock* lock = nullptr; // refreshed during long copies
};

struct RewritePlan {
    std::uint64_t region_start = 0;
    std::uint64_t old_size = 0;
    // Byte ranges [begin, end) of the old mbox that stay, in order, inside [region_start, old_size).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> kept;
    // The index of the rewritten mbox.
    std::vector<Entry> entries;
};

// The plan for deleting the entries flagged in `deleted` (parallel to index.entries), which
// covers the whole mbox; nullopt if nothing is flagged.
[[nodiscard]] std::optional<RewritePlan> plan_deletions(const Index& index, const std::vector<bool>& deleted);

// Writes the journal of `plan` and applies it. The caller holds the mbox lock and has replayed
// any earlier journal.
[[nodiscard]] Result<void> rewrite(const RewriteContext& context, const RewritePlan& plan);

enum class ReplayOutcome : std::uint8_t {
    none,      // no journal
    discarded, // incomplete: the mbox had not been touched
    applied,   // complete: the rewrite is finished now
    set_aside  // complete but not for this mbox as it is now; kept for the administrator
};

// Replays a journal left by a rewrite that did not finish. The caller holds the mbox lock.
[[nodiscard]] Result<ReplayOutcome> replay_journal(const RewriteContext& context);

} // namespace pigeon::storage::mbox
