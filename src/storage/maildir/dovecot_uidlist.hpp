// Reads Dovecot's dovecot-uidlist (the IMAP UID of each maildir file), so a maildrop that Dovecot
// served keeps the POP3 unique-ids Dovecot gave: with Dovecot 2.3's default pop3_uidl_format
// "%08Xu%08Xv", the UID and the UIDVALIDITY as eight upper-case hex digits each, or the "P"
// field when Dovecot recorded one (a migrated UIDL). Pigeon only reads this file; Dovecot owns it.
//
// Format (version 3):   3 V<uidvalidity> N<next uid> G<guid> ...
//                       <uid> [<key><value> ...] :<base name>
// Format (version 1):   1 <uidvalidity> <next uid>
//                       <uid> <base name>
#pragma once

#include "core/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pigeon::storage::maildir {

struct UidlistEntry {
    std::uint32_t uid = 0;
    std::optional<std::string> pop3_uidl;      // "P": the UIDL verbatim; empty means the base name
    std::optional<std::uint32_t> pop3_order;   // "O": POP3 message order after a migration
    std::optional<std::uint64_t> virtual_size; // "W": octets with CRLF line ends
};

struct Uidlist {
    std::uint32_t uidvalidity = 0;
    std::unordered_map<std::string, UidlistEntry> by_base_name;

    // The unique-id Dovecot's POP3 gives this entry: "P" if recorded (a bare "P" stands for the
    // base name), else "%08Xu%08Xv", which Dovecot prints in lower case (its %X is printf's %x).
    [[nodiscard]] std::string unique_id(const UidlistEntry& entry, std::string_view base) const;
};

// errc::maildrop_damaged if the header cannot be read; bad record lines are skipped.
[[nodiscard]] Result<Uidlist> parse_uidlist(std::string_view text);

} // namespace pigeon::storage::maildir
