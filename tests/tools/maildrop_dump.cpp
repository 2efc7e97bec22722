// pigeon_maildrop_dump MAILDIR: prints the POP3 listing Pigeon gives for a maildir, one line per
// message in message-number order: "<number> <unique-id> <octets>". Used by the Dovecot interop
// test to compare Pigeon's UIDL and LIST with Dovecot's on the same maildir.
#include "storage/maildir/maildir_store.hpp"

#include <cstdio>

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s MAILDIR\n", argv[0]);
        return 2;
    }
    pigeon::storage::MaildirStore store(pigeon::storage::MaildirOptions{});
    auto maildrop = store.open_path(argv[1]);
    if (!maildrop) {
        std::fprintf(stderr, "%s: %s\n", argv[1], maildrop.error().message().c_str());
        return 1;
    }
    for (std::uint32_t i = 0; i < (*maildrop)->message_count(); ++i) {
        const pigeon::MessageIndex index{i};
        const auto uid = (*maildrop)->unique_id(index);
        std::printf("%u %.*s %llu\n", i + 1, static_cast<int>(uid.size()), uid.data(),
                    static_cast<unsigned long long>((*maildrop)->message_octets(index)));
    }
    return 0;
}
