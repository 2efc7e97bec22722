// Moving from another client without downloading anything twice: the unique-ids mpop and
// fetchmail have recorded for an account, read from their files, for FetchState::import().
//
//   mpop's uidls_file (~/.mpop_uidls): "#" comment lines; a line starting with a space opens a
//   list, " COUNT HOST USER"; the COUNT unique-ids follow, one per line.
//   fetchmail's .fetchids: "USER@HOST UID" per line (later fields, if any, ignored).
//
// Both are hostile input like any file: lines are bounded, unique-ids checked.
#pragma once

#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

namespace pigeon::client {

[[nodiscard]] tl::expected<std::vector<std::string>, std::string>
parse_mpop_uidls(std::string_view text, std::string_view host, std::string_view user);

[[nodiscard]] tl::expected<std::vector<std::string>, std::string>
parse_fetchmail_ids(std::string_view text, std::string_view host, std::string_view user);

// Reads `path` (at most 256 MB) and parses it as `kind` ("mpop" or "fetchmail").
[[nodiscard]] tl::expected<std::vector<std::string>, std::string> read_foreign_uids(const std::string& kind,
                                                                                    const std::string& path,
                                                                                    std::string_view host,
                                                                                    std::string_view user);

} // namespace pigeon::client
