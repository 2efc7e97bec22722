#include "storage/mbox/mbox_index.hpp"

#include "core/strings.hpp"
#include "storage/fs_util.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <climits>
#include <sys/stat.h>
#include <unordered_map>

namespace pigeon::storage::mbox {
namespace {

// --- the index file ----------------------------------------------------------------------------
// Text, one message per line, in mbox (and POP3) order:
//   pigeon-mbox-index 1
//   stamp <covered size> <mtime ns> <device> <inode> <head hash> <tail hash>
//   <from offset> <content offset> <content end> <wire octets> <t|-> <unique-id>
//   ...
//   end <entry count> <first 16 octets of the SHA-256 of everything above, in hex>
// The last line catches a torn or damaged file; write_file_atomically makes torn ones unlikely.

constexpr std::string_view index_header = "pigeon-mbox-index 1\n";
constexpr std::uint64_t stamp_window_octets = 1024;

std::int64_t mtime_ns(const struct stat& st) noexcept
{
    return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

std::string checksum(std::string_view text)
{
    Sha256 hash;
    hash.update(text);
    return to_hex(hash.finish(), 16);
}

// Splits off the next line (without its LF); nullopt if no complete line is left.
std::optional<std::string_view> next_line(std::string_view& text)
{
    const std::size_t end = text.find('\n');
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    return line;
}

std::vector<std::string_view> split_spaces(std::string_view line)
{
    std::vector<std::string_view> fields;
    std::size_t pos = 0;
    while (pos <= line.size()) {
        const std::size_t space = line.find(' ', pos);
        const std::size_t end = space == std::string_view::npos ? line.size() : space;
        fields.push_back(line.substr(pos, end - pos));
        pos = end + 1;
    }
    return fields;
}

bool is_hex32(std::string_view text) noexcept
{
    return text.size() == 32 && std::all_of(text.begin(), text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

Result<bool> bytes_at(int fd, std::uint64_t offset, std::string_view expected)
{
    std::array<char, 16> buffer{};
    if (expected.size() > buffer.size()) {
        return false;
    }
    auto count = pread_full(fd, buffer.data(), expected.size(), offset);
    if (!count) {
        return fail(count.error());
    }
    return *count == expected.size() && std::string_view(buffer.data(), *count) == expected;
}

Result<std::vector<ParsedMessage>> parse_range(int fd, std::uint64_t begin, std::uint64_t end,
                                               std::size_t chunk_octets)
{
    std::vector<ParsedMessage> parsed;
    Parser parser(begin);
    std::vector<char> buffer(std::max<std::size_t>(chunk_octets, 16));
    std::uint64_t offset = begin;
    while (offset < end) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - offset));
        auto count = pread_full(fd, buffer.data(), want, offset);
        if (!count) {
            return fail(count.error());
        }
        if (*count == 0) {
            break; // shorter than fstat said: parse what is there
        }
        parser.feed(std::string_view(buffer.data(), *count), parsed);
        offset += *count;
    }
    parser.finish(parsed);
    return parsed;
}

void apply_trim(Entry& entry, const ParsedMessage& message)
{
    if (!entry.trimmed && message.ends_with_lf) {
        entry.trimmed = true;
        entry.content_end = message.content_end - 1;
        entry.wire_octets = message.wire_octets_without_final_lf;
    }
}

} // namespace

std::string format_entries(std::span<const Entry> entries)
{
    std::string out;
    out.reserve(entries.size() * 80);
    for (const Entry& entry : entries) {
        fmt::format_to(std::back_inserter(out), "{} {} {} {} {} {}\n", entry.from_offset,
                       entry.content_offset, entry.content_end, entry.wire_octets, entry.trimmed ? 't' : '-',
                       entry.unique_id);
    }
    return out;
}

std::optional<std::vector<Entry>> parse_entries(std::string_view text, std::uint64_t covered_size)
{
    std::vector<Entry> entries;
    std::unordered_set<std::string_view> seen;
    std::uint64_t previous_end = 0;
    while (!text.empty()) {
        const auto line = next_line(text);
        if (!line) {
            return std::nullopt;
        }
        const auto fields = split_spaces(*line);
        if (fields.size() != 6 || (fields[4] != "t" && fields[4] != "-")) {
            return std::nullopt;
        }
        Entry entry;
        const auto from = parse_u64(fields[0]);
        const auto content = parse_u64(fields[1]);
        const auto end = parse_u64(fields[2]);
        const auto octets = parse_u64(fields[3]);
        if (!from || !content || !end || !octets || !is_valid_unique_id(fields[5])) {
            return std::nullopt;
        }
        entry.from_offset = *from;
        entry.content_offset = *content;
        entry.content_end = *end;
        entry.wire_octets = *octets;
        entry.trimmed = fields[4] == "t";
        entry.unique_id = std::string(fields[5]);
        // Ordered and disjoint, inside the covered prefix: a damaged index must not send a
        // reader or a rewrite outside the messages.
        if ((!entries.empty() && entry.from_offset < previous_end) ||
            entry.content_offset < entry.from_offset + from_prefix.size() ||
            entry.content_end < entry.content_offset || entry.stored_end() > covered_size) {
            return std::nullopt;
        }
        previous_end = entry.stored_end();
        entries.push_back(std::move(entry));
    }
    for (const Entry& entry : entries) {
        if (!seen.insert(entry.unique_id).second) {
            return std::nullopt;
        }
    }
    return entries;
}

std::string format_index(const Index& index)
{
    std::string out(index_header);
    fmt::format_to(std::back_inserter(out), "stamp {} {} {} {} {} {}\n", index.stamp.size,
                   index.stamp.mtime_ns, index.stamp.device, index.stamp.inode, index.stamp.head_hash,
                   index.stamp.tail_hash);
    out += format_entries(index.entries);
    const std::string sum = checksum(out);
    fmt::format_to(std::back_inserter(out), "end {} {}\n", index.entries.size(), sum);
    return out;
}

std::optional<Index> parse_index(std::string_view text)
{
    const std::string_view whole = text;
    if (!text.starts_with(index_header)) {
        return std::nullopt;
    }
    text.remove_prefix(index_header.size());
    const auto stamp_line = next_line(text);
    if (!stamp_line) {
        return std::nullopt;
    }
    const auto fields = split_spaces(*stamp_line);
    if (fields.size() != 7 || fields[0] != "stamp" || !is_hex32(fields[5]) || !is_hex32(fields[6])) {
        return std::nullopt;
    }
    Index index;
    const auto size = parse_u64(fields[1]);
    const auto device = parse_u64(fields[3]);
    const auto inode = parse_u64(fields[4]);
    std::int64_t mtime = 0;
    const bool negative = fields[2].starts_with('-');
    const auto magnitude = parse_u64(negative ? fields[2].substr(1) : fields[2]);
    if (!size || !device || !inode || !magnitude || *magnitude > static_cast<std::uint64_t>(INT64_MAX)) {
        return std::nullopt;
    }
    mtime = static_cast<std::int64_t>(*magnitude) * (negative ? -1 : 1);
    index.stamp = Stamp{*size, mtime, *device, *inode, std::string(fields[5]), std::string(fields[6])};
    // The end line is the last line; everything before it is covered by its checksum.
    if (text.size() < 2 || text.back() != '\n') {
        return std::nullopt;
    }
    const std::size_t end_line_start = text.rfind('\n', text.size() - 2);
    const std::size_t entries_length = end_line_start == std::string_view::npos ? 0 : end_line_start + 1;
    const std::string_view entries_text = text.substr(0, entries_length);
    std::string_view end_text = text.substr(entries_length);
    const auto end_line = next_line(end_text);
    if (!end_line) {
        return std::nullopt;
    }
    const auto end_fields = split_spaces(*end_line);
    const auto count = end_fields.size() == 3 ? parse_u64(end_fields[1]) : std::nullopt;
    if (end_fields.size() != 3 || end_fields[0] != "end" || !count ||
        end_fields[2] != checksum(whole.substr(0, whole.size() - end_line->size() - 1))) {
        return std::nullopt;
    }
    auto entries = parse_entries(entries_text, index.stamp.size);
    if (!entries || entries->size() != *count) {
        return std::nullopt;
    }
    index.entries = std::move(*entries);
    return index;
}

Result<Stamp> make_stamp(int fd, const struct stat& st, std::uint64_t covered_size)
{
    Stamp stamp;
    stamp.size = covered_size;
    stamp.mtime_ns = mtime_ns(st);
    stamp.device = static_cast<std::uint64_t>(st.st_dev);
    stamp.inode = static_cast<std::uint64_t>(st.st_ino);
    auto head = hash_file_range(fd, 0, std::min(covered_size, stamp_window_octets));
    if (!head) {
        return fail(head.error());
    }
    auto tail = hash_file_range(fd, covered_size - std::min(covered_size, stamp_window_octets), covered_size);
    if (!tail) {
        return fail(tail.error());
    }
    stamp.head_hash = std::move(*head);
    stamp.tail_hash = std::move(*tail);
    return stamp;
}

std::string assign_unique_id(const ParsedMessage& message, std::unordered_set<std::string>& used)
{
    if (!message.x_uidl.empty() && !used.contains(message.x_uidl)) {
        used.insert(message.x_uidl);
        return message.x_uidl;
    }
    // "." is not in the base64url alphabet, so a suffixed digest never equals another digest.
    std::string candidate = message.digest;
    for (std::uint64_t repeat = 2; used.contains(candidate); ++repeat) {
        candidate = fmt::format("{}.{}", message.digest, repeat);
    }
    used.insert(candidate);
    return candidate;
}

Entry make_entry(const ParsedMessage& message, bool trimmed, std::string unique_id)
{
    Entry entry;
    entry.from_offset = message.from_offset;
    entry.content_offset = message.content_offset;
    entry.content_end = message.content_end;
    entry.wire_octets = message.wire_octets;
    entry.unique_id = std::move(unique_id);
    if (trimmed) {
        apply_trim(entry, message);
    }
    return entry;
}

Result<Index> sync_index(int fd, const std::string& index_path, const SyncOptions& options)
{
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return fail(last_errno());
    }
    const auto file_size = static_cast<std::uint64_t>(st.st_size);

    std::optional<Index> old;
    if (auto text = read_small_file(index_path, max_index_octets)) {
        old = parse_index(*text);
    }
    const bool same_file = old && !options.force_full &&
                           old->stamp.inode == static_cast<std::uint64_t>(st.st_ino) &&
                           old->stamp.device == static_cast<std::uint64_t>(st.st_dev);
    bool prefix_intact = false;
    if (same_file && file_size >= old->stamp.size) {
        auto stamp = make_stamp(fd, st, old->stamp.size);
        if (!stamp) {
            return fail(stamp.error());
        }
        prefix_intact = stamp->head_hash == old->stamp.head_hash && stamp->tail_hash == old->stamp.tail_hash;
        if (prefix_intact && file_size == old->stamp.size && stamp->mtime_ns == old->stamp.mtime_ns &&
            !options.trimmed_message_at) {
            return std::move(*old); // warm path: nothing changed
        }
    }

    std::vector<Entry> entries;
    std::unordered_set<std::string> used;
    std::vector<ParsedMessage> parsed;
    std::size_t first_new = 0;
    std::optional<Entry> reparsed_last; // the old last entry, parsed again with the new tail

    if (prefix_intact && file_size > old->stamp.size && !old->entries.empty()) {
        // An append (the MTA's, or ours): parse only from the end of what the index covers.
        entries = std::move(old->entries);
        const std::uint64_t covered = old->stamp.size;
        std::uint64_t start = covered;
        auto separated = covered >= 2 ? bytes_at(fd, covered - 2, "\n\n") : Result<bool>(false);
        auto from_line = bytes_at(fd, covered, from_prefix);
        if (!separated || !from_line) {
            return fail(!separated ? separated.error() : from_line.error());
        }
        if (!*separated || !*from_line || entries.back().stored_end() + 1 != covered) {
            // The old last message did not end at a separator (it may have grown): parse it
            // again from its From_ line.
            auto still_there = bytes_at(fd, entries.back().from_offset, from_prefix);
            if (!still_there) {
                return fail(still_there.error());
            }
            if (*still_there) {
                reparsed_last = std::move(entries.back());
                entries.pop_back();
                start = reparsed_last->from_offset;
            } else {
                entries.clear(); // not the file we knew after all: parse it all
                start = 0;
            }
        }
        for (const Entry& entry : entries) {
            used.insert(entry.unique_id);
        }
        first_new = entries.size();
        auto found = parse_range(fd, start, file_size, options.read_chunk_octets);
        if (!found) {
            return fail(found.error());
        }
        parsed = std::move(*found);
    } else {
        auto found = parse_range(fd, 0, file_size, options.read_chunk_octets);
        if (!found) {
            return fail(found.error());
        }
        parsed = std::move(*found);
    }

    // Unique-ids and trims of the new entries.
    std::unordered_map<std::string_view, const Entry*> old_by_uid;
    if (old && first_new == 0 && !reparsed_last) {
        for (const Entry& entry : old->entries) {
            old_by_uid.emplace(entry.unique_id, &entry);
        }
    }
    for (std::size_t i = 0; i < parsed.size(); ++i) {
        const ParsedMessage& message = parsed[i];
        Entry entry;
        if (i == 0 && reparsed_last && message.from_offset == reparsed_last->from_offset) {
            // Same From_ line, same message: it keeps its unique-id, and its trim if its stored
            // octets did not change.
            used.insert(reparsed_last->unique_id);
            entry = make_entry(message,
                               reparsed_last->trimmed && message.content_end == reparsed_last->stored_end(),
                               reparsed_last->unique_id);
        } else {
            std::string uid = assign_unique_id(message, used);
            bool trimmed = false;
            // A full parse after another program changed the mbox: a message Pigeon delivered
            // without a final newline keeps that property if it is still stored as it was.
            if (const auto known = old_by_uid.find(uid); known != old_by_uid.end()) {
                const Entry& before = *known->second;
                trimmed = before.trimmed && message.content_end - message.content_offset ==
                                                before.stored_end() - before.content_offset;
            }
            entry = make_entry(message, trimmed, std::move(uid));
        }
        if (options.trimmed_message_at && message.from_offset == *options.trimmed_message_at) {
            apply_trim(entry, message);
        }
        entries.push_back(std::move(entry));
    }

    Index index;
    auto stamp = make_stamp(fd, st, file_size);
    if (!stamp) {
        return fail(stamp.error());
    }
    index.stamp = std::move(*stamp);
    index.entries = std::move(entries);
    if (auto written = write_file_atomically(index_path, format_index(index));
        !written && options.index_required) {
        return fail(written.error());
    }
    return index;
}

} // namespace pigeon::storage::mbox
