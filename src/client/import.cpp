#include "client/import.hpp"

#include "client/fetch_state.hpp"
#include "core/strings.hpp"
#include "storage/fs_util.hpp"

#include <charconv>
#include <fmt/format.h>

namespace pigeon::client {
namespace {

constexpr std::size_t max_file_octets = std::size_t{256} * 1024 * 1024;

// Lines without their LF (and a CR before it).
std::vector<std::string_view> lines_of(std::string_view text)
{
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        lines.push_back(line);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    }
    return lines;
}

} // namespace

tl::expected<std::vector<std::string>, std::string>
parse_mpop_uidls(std::string_view text, std::string_view host, std::string_view user)
{
    std::vector<std::string> uids;
    std::vector<std::string> seen_lists;
    bool found = false;
    const auto lines = lines_of(text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string_view line = lines[i];
        if (line.empty() || line.starts_with('#')) {
            continue;
        }
        if (!line.starts_with(' ')) {
            return tl::unexpected(fmt::format("line {}: a unique-id outside any list", i + 1));
        }
        const auto words = split_words(line.substr(1));
        std::size_t count = 0;
        if (words.size() != 3 ||
            std::from_chars(words[0].data(), words[0].data() + words[0].size(), count).ec != std::errc() ||
            count > lines.size() - i - 1) {
            return tl::unexpected(fmt::format("line {}: not \" COUNT HOST USER\"", i + 1));
        }
        const bool ours = words[1] == host && words[2] == user;
        seen_lists.push_back(fmt::format("{}@{}", words[2], words[1]));
        for (std::size_t k = 1; k <= count; ++k) {
            const std::string_view uid = lines[i + k];
            if (!FetchState::valid_uid(uid)) {
                return tl::unexpected(fmt::format("line {}: not a unique-id", i + k + 1));
            }
            if (ours) {
                uids.emplace_back(uid);
            }
        }
        found = found || ours;
        i += count;
    }
    if (!found) {
        return tl::unexpected(
            fmt::format("no list for {} at {} (the file has: {})", user, host,
                        seen_lists.empty() ? "none" : fmt::format("{}", fmt::join(seen_lists, ", "))));
    }
    return uids;
}

tl::expected<std::vector<std::string>, std::string>
parse_fetchmail_ids(std::string_view text, std::string_view host, std::string_view user)
{
    const std::string account = fmt::format("{}@{}", user, host);
    std::vector<std::string> uids;
    const auto lines = lines_of(text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (lines[i].empty()) {
            continue;
        }
        const auto words = split_words(lines[i]);
        if (words.size() < 2 || words[0].find('@') == std::string_view::npos) {
            return tl::unexpected(fmt::format("line {}: not \"USER@HOST UID\"", i + 1));
        }
        if (words[0] != account) {
            continue;
        }
        if (!FetchState::valid_uid(words[1])) {
            return tl::unexpected(fmt::format("line {}: not a unique-id", i + 1));
        }
        uids.emplace_back(words[1]);
    }
    if (uids.empty()) {
        return tl::unexpected(fmt::format("no unique-ids for {}", account));
    }
    return uids;
}

tl::expected<std::vector<std::string>, std::string> read_foreign_uids(const std::string& kind,
                                                                      const std::string& path,
                                                                      std::string_view host,
                                                                      std::string_view user)
{
    auto text = storage::read_small_file(path, max_file_octets);
    if (!text) {
        return tl::unexpected(fmt::format("{}: {}", path, text.error().message()));
    }
    auto uids = kind == "mpop" ? parse_mpop_uidls(*text, host, user) : parse_fetchmail_ids(*text, host, user);
    if (!uids) {
        return tl::unexpected(fmt::format("{}: {}", path, uids.error()));
    }
    return uids;
}

} // namespace pigeon::client
