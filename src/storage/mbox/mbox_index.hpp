// Pigeon's index of one mbox: where each message lies, its exact POP3 size and its unique-id, so
// a warm login reads one small file instead of the whole mailbox (shared/DESIGN.md §4).
//
// The index is only a cache of what the mbox says, with one exception: `trimmed` records that a
// message Pigeon delivered had no final newline (mbox cannot store that: the next From_ line
// must start a line, so delivery added one). Everything else is rebuilt from the mbox whenever
// the index is missing, damaged or stale. Its stamp identifies the state of the mbox it
// describes (size, mtime, inode, and hashes of the first and last KiB): an mbox that merely grew
// with that prefix intact (an MTA appended) only has its new tail parsed.
//
// It knows the mbox format through Parser; it knows nothing of POP3 sessions, locks or rewrites.
#pragma once

#include "core/result.hpp"
#include "storage/mbox/mbox_parser.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

struct stat;

namespace pigeon::storage::mbox {

struct Stamp {
    std::uint64_t size = 0; // octets of the mbox the index covers (a prefix of the file)
    std::int64_t mtime_ns = 0;
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::string head_hash; // [0, min(1 KiB, size))
    std::string tail_hash; // [max(0, size - 1 KiB), size)
};

struct Entry {
    std::uint64_t from_offset = 0;    // the From_ line
    std::uint64_t content_offset = 0; // after the From_ line
    std::uint64_t content_end = 0;    // what open_message() returns ends here (before the separator)
    std::uint64_t wire_octets = 0;    // protocol::wire_size of the unquoted content
    bool trimmed = false;             // delivered without a final newline: one LF after content_end
    std::string unique_id;

    // Where the stored octets of the message end (its added LF included).
    [[nodiscard]] std::uint64_t stored_end() const noexcept { return content_end + (trimmed ? 1 : 0); }
};

struct Index {
    Stamp stamp;
    std::vector<Entry> entries;
};

// The text of an index file (see mbox_index.cpp for the format).
[[nodiscard]] std::string format_index(const Index& index);
[[nodiscard]] std::optional<Index> parse_index(std::string_view text);
// The entry lines alone (the rewrite journal carries them) and their parser, which checks that
// the entries are ordered, do not overlap, fit in `covered_size` octets and have unique,
// valid unique-ids.
[[nodiscard]] std::string format_entries(std::span<const Entry> entries);
[[nodiscard]] std::optional<std::vector<Entry>> parse_entries(std::string_view text,
                                                              std::uint64_t covered_size);

// The stamp of the first `covered_size` octets of an open mbox.
[[nodiscard]] Result<Stamp> make_stamp(int fd, const struct stat& st, std::uint64_t covered_size);

// A unique-id for a newly found message: its X-UIDL if valid and not yet taken, else its digest,
// with ".2", ".3"... for repeats. Deterministic: the same mbox gives the same unique-ids.
[[nodiscard]] std::string assign_unique_id(const ParsedMessage& message,
                                           std::unordered_set<std::string>& used);

// Converts a parsed message to an entry; `trimmed` drops its final LF (see Entry).
[[nodiscard]] Entry make_entry(const ParsedMessage& message, bool trimmed, std::string unique_id);

struct SyncOptions {
    // Ignore the index and parse the whole mbox.
    bool force_full = false;
    // The message whose From_ line is at this offset was delivered without a final newline.
    std::optional<std::uint64_t> trimmed_message_at;
    // Fail if the index cannot be written (delivery needs it for `trimmed`); otherwise a failure
    // to write it costs speed next time, never correctness.
    bool index_required = false;
    std::size_t read_chunk_octets = std::size_t{64} * 1024;
};

// Brings the index at `index_path` up to date with the mbox open at `fd` (the caller holds the
// mbox lock) and returns it: the stored index if its stamp matches, else the stored index plus
// the parsed new tail, else a full parse. Unique-ids already given are kept.
[[nodiscard]] Result<Index> sync_index(int fd, const std::string& index_path, const SyncOptions& options);

// The octets an index file may have: 100,000 messages take about 10 MB.
inline constexpr std::size_t max_index_octets = std::size_t{256} * 1024 * 1024;

} // namespace pigeon::storage::mbox
