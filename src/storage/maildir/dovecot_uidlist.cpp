#include "storage/maildir/dovecot_uidlist.hpp"

#include "core/strings.hpp"
#include "storage/maildir/maildir_name.hpp"

#include <fmt/format.h>

namespace pigeon::storage::maildir {
namespace {

std::string_view next_line(std::string_view& text)
{
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    return line;
}

std::string_view next_word(std::string_view& line)
{
    while (!line.empty() && line.front() == ' ') {
        line.remove_prefix(1);
    }
    const std::size_t end = line.find(' ');
    std::string_view word = line.substr(0, end);
    line = end == std::string_view::npos ? std::string_view{} : line.substr(end + 1);
    return word;
}

} // namespace

std::string Uidlist::unique_id(const UidlistEntry& entry, std::string_view base) const
{
    if (entry.pop3_uidl) {
        return entry.pop3_uidl->empty() ? std::string(base) : *entry.pop3_uidl;
    }
    return fmt::format("{:08x}{:08x}", entry.uid, uidvalidity);
}

Result<Uidlist> parse_uidlist(std::string_view text)
{
    Uidlist list;
    std::string_view header = next_line(text);
    const std::string_view version = next_word(header);
    if (version == "1") {
        const auto validity = parse_u32(next_word(header));
        if (!validity) {
            return fail(errc::maildrop_damaged);
        }
        list.uidvalidity = *validity;
    } else if (version == "3") {
        while (!header.empty()) {
            const std::string_view field = next_word(header);
            if (field.starts_with('V')) {
                const auto validity = parse_u32(field.substr(1));
                if (!validity) {
                    return fail(errc::maildrop_damaged);
                }
                list.uidvalidity = *validity;
            }
        }
        if (list.uidvalidity == 0) {
            return fail(errc::maildrop_damaged);
        }
    } else {
        return fail(errc::maildrop_damaged);
    }

    while (!text.empty()) {
        std::string_view line = next_line(text);
        const auto uid = parse_u32(next_word(line));
        if (!uid || *uid == 0) {
            continue;
        }
        UidlistEntry entry;
        entry.uid = *uid;
        std::string_view name;
        if (version == "1") {
            name = next_word(line);
        } else {
            // Extension fields until the ":" that starts the file name (which may hold spaces).
            for (;;) {
                while (!line.empty() && line.front() == ' ') {
                    line.remove_prefix(1);
                }
                if (line.empty()) {
                    break;
                }
                if (line.front() == ':') {
                    name = line.substr(1);
                    break;
                }
                const std::string_view field = next_word(line);
                const std::string_view value = field.substr(1);
                if (field.starts_with('P') && (value.empty() || is_valid_unique_id(value))) {
                    entry.pop3_uidl = std::string(value);
                } else if (field.starts_with('O')) {
                    entry.pop3_order = parse_u32(value);
                } else if (field.starts_with('W')) {
                    entry.virtual_size = parse_u64(value);
                }
            }
        }
        name = base_name(name);
        if (!name.empty()) {
            list.by_base_name.insert_or_assign(std::string(name), std::move(entry));
        }
    }
    return list;
}

} // namespace pigeon::storage::maildir
