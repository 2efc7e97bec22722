#include "storage/retention.hpp"

#include "storage/fs_util.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <iterator>
#include <unordered_map>

namespace pigeon::storage {
namespace {

constexpr std::string_view record_header = "pigeon-retrieved 1\n";
constexpr std::int64_t seconds_per_day = 86'400;

bool is_printable_uid(std::string_view uid) noexcept
{
    // RFC 1939 §7: 1 to 70 characters in the range 0x21 to 0x7E.
    return !uid.empty() && uid.size() <= 70 &&
           std::all_of(uid.begin(), uid.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
}

// UIDL -> first retrieval. Unparsable lines are skipped; the first line for a UIDL wins.
std::unordered_map<std::string_view, std::int64_t> parse_record(std::string_view text, std::int64_t now)
{
    std::unordered_map<std::string_view, std::int64_t> out;
    if (!text.starts_with(record_header)) {
        return out;
    }
    text.remove_prefix(record_header.size());
    while (!text.empty()) {
        const auto end = text.find('\n');
        if (end == std::string_view::npos) {
            break; // a torn last line: not trusted
        }
        const std::string_view line = text.substr(0, end);
        text.remove_prefix(end + 1);
        const auto space = line.find(' ');
        if (space == std::string_view::npos) {
            continue;
        }
        std::int64_t when = 0;
        const auto [ptr, ec] = std::from_chars(line.data(), line.data() + space, when);
        const std::string_view uid = line.substr(space + 1);
        if (ec != std::errc{} || ptr != line.data() + space || when < 0 || !is_printable_uid(uid)) {
            continue;
        }
        out.emplace(uid, std::min(when, now));
    }
    return out;
}

} // namespace

RetentionPlan plan_retention(const MessageListing& listing, std::string_view record_text,
                             std::span<const MessageIndex> client_deletions,
                             std::span<const MessageIndex> retrieved, std::int64_t now,
                             std::uint32_t expire_days)
{
    const std::uint32_t count = listing.message_count();
    std::vector<bool> deleted(count, false);
    for (const MessageIndex index : client_deletions) {
        if (index.value < count) {
            deleted[index.value] = true;
        }
    }
    std::vector<std::int64_t> first(count, -1); // first retrieval, -1: never
    if (expire_days > 0) {
        const auto known = parse_record(record_text, now);
        for (std::uint32_t i = 0; i < count; ++i) {
            if (const auto found = known.find(listing.unique_id(MessageIndex{i})); found != known.end()) {
                first[i] = found->second;
            }
        }
    }
    for (const MessageIndex index : retrieved) {
        if (index.value < count && first[index.value] < 0) {
            first[index.value] = now;
        }
    }
    RetentionPlan plan;
    const std::int64_t age = std::int64_t{expire_days} * seconds_per_day;
    for (std::uint32_t i = 0; i < count; ++i) {
        if (!deleted[i] && first[i] >= 0 && now - first[i] >= age) {
            deleted[i] = true;
            ++plan.expired;
        }
        if (deleted[i]) {
            plan.deletions.push_back(MessageIndex{i});
        }
    }
    if (expire_days > 0) {
        plan.record = record_header;
        for (std::uint32_t i = 0; i < count; ++i) {
            if (!deleted[i] && first[i] >= 0) {
                fmt::format_to(std::back_inserter(plan.record), "{} {}\n", first[i],
                               listing.unique_id(MessageIndex{i}));
            }
        }
    }
    return plan;
}

Result<std::size_t> commit_with_retention(Maildrop& maildrop, std::span<const MessageIndex> client_deletions,
                                          std::span<const MessageIndex> retrieved, std::int64_t now,
                                          std::optional<std::uint32_t> policy)
{
    const std::string path = maildrop.retrieval_record_path();
    if (!policy || (*policy > 0 && path.empty())) {
        // No policy, or nowhere to remember retrievals: keep everything the client did not delete.
        auto committed = maildrop.commit(client_deletions);
        if (!committed) {
            return fail(committed.error());
        }
        return std::size_t{0};
    }
    const std::uint32_t expire_days = *policy;
    std::string old_record;
    if (expire_days > 0) {
        if (auto text = read_small_file(path, max_retrieval_record_octets)) {
            old_record = std::move(*text);
        }
    }
    auto plan = plan_retention(maildrop, old_record, client_deletions, retrieved, now, expire_days);
    auto committed = maildrop.commit(plan.deletions);
    if (!committed) {
        return fail(committed.error());
    }
    if (expire_days > 0 && plan.record != old_record) {
        (void)write_file_atomically(path, plan.record); // lost: mail is kept longer, nothing else
    }
    return plan.expired;
}

} // namespace pigeon::storage
