// Maildir file names and Dovecot's dovecot-uidlist, both written by other programs: hostile input
// to the storage layer. Nothing may crash, and every unique-id produced must be a valid one.
#include "storage/maildir/dovecot_uidlist.hpp"
#include "storage/maildir/maildir_name.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace pigeon::storage::maildir;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (auto list = parse_uidlist(input)) {
        for (const auto& [base, entry] : list->by_base_name) {
            const std::string uid = list->unique_id(entry, base);
            if (!entry.pop3_uidl && uid.size() != 16) {
                std::abort();
            }
        }
    }
    const std::string_view name = input.substr(0, input.find('\n'));
    (void)wire_size_field(name);
    (void)disk_size_field(name);
    if (is_message_file_name(name) && !is_valid_unique_id(unique_id_for_base_name(base_name(name)))) {
        std::abort();
    }
    return 0;
}
