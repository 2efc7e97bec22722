// mbox maildrops (mbox(5), one file per user such as /var/mail/%u, as Postfix's local(8)
// delivers it), for POP3 sessions and for delivery.
//
// What it owns: reading an mbox into a snapshot (each message's offsets, exact POP3 size and
// unique-id), streaming a message, committing deletions by a crash-safe in-place rewrite
// (mbox_journal.hpp), and appending delivered messages. Beside the mbox (or in the directory
// `index_directory_template` names) it keeps its index (mbox_index.hpp), its POP3 session lock
// and its rewrite journal. It locks the mbox as Postfix and mutt do (mbox_lock.hpp) while it
// appends or rewrites. It knows nothing of POP3 commands or of users' credentials.
//
// How messages are stored, so that every delivered message reads back octet for octet:
//   - "From MAILER-DAEMON <asctime date>\n", the message with mboxrd quoting (^>*From  gains a
//     '>'), then a blank separator line. Reading removes the From_ line, the separator and one
//     level of quoting (mbox_parser.hpp), so "From " and ">From " lines survive.
//   - Octets are stored as they come: a CRLF message keeps its CRs and reads back the same. Only
//     the LF that ends each stored message's last line and the separator's LF are structure.
//   - A message without a final newline gets one (the next From_ line must start a line), and
//     the index records it (Entry::trimmed) so reading gives it back without. Should the index
//     be lost, such a message reads back with that LF (its POP3 size unchanged in the usual
//     case; its unique-id unchanged always); if only another program touched the mbox, a full
//     re-parse carries the mark over by unique-id.
//
// Unique-ids: the value of an X-UIDL field if valid (1-70 characters 0x21-0x7E) and not used by
// an earlier message; else the base64url SHA-256 (32 characters) of the From_ line and the
// header section (without the fields mail readers rewrite), with ".2", ".3"... for a repeat of
// the same digest. Once given they are kept in the index, so they stay stable across sessions;
// the derivation is deterministic, so even a lost index gives the same ones back (short of
// repeats whose earlier twin was deleted).
//
// Hostile input: the mbox is streamed through fixed buffers (lines of any length, any octets);
// octets before the first From_ line are leading garbage, never listed and never rewritten.
// An mbox that is a symbolic link, not a regular file, or has other hard links is refused.
#pragma once

#include "storage/delivery.hpp"
#include "storage/maildrop.hpp"
#include "storage/mbox/mbox_journal.hpp"

#include <chrono>
#include <string>

namespace pigeon::storage {

struct MboxOptions {
    // Dovecot-style template: %u user, %n local part, %d domain (see path_template.hpp).
    std::string path_template = "/var/mail/%u";
    // Where the index, the POP3 session lock and the rewrite journal live, one directory per
    // mbox (it must expand differently for each user). Empty: beside the mbox, as
    // ".<name>.pigeon-index", ".<name>.pigeon-pop3.lock", ".<name>.pigeon-journal".
    std::string index_directory_template;
    // Take "<mbox>.lock" as well as the fcntl lock (Debian's Postfix and mutt do). It needs write
    // access to the mbox's directory; without it every open and delivery fails.
    bool dotlock = true;
    // A new login of the same user takes over a session whose client vanished (in this process).
    bool takeover = false;
    // How long to keep trying for the mbox locks before giving up (Postfix's local(8) tries for
    // about 20 seconds by default).
    std::chrono::milliseconds lock_timeout{30'000};
    mbox::MboxTestHooks test_hooks;
};

// Where a user's mbox and Pigeon's files for it are.
struct MboxPaths {
    std::string mbox;
    std::string index_directory;
    std::string index;
    std::string session_lock;
    std::string journal;
    std::string append_mark;      // a large delivery in progress (see mbox_store.cpp)
    std::string retrieval_record; // EXPIRE's first retrievals (storage/retention.hpp)
};

class MboxStore final : public MaildropStore, public Delivery {
public:
    explicit MboxStore(MboxOptions options);

    [[nodiscard]] Result<std::unique_ptr<Maildrop>> open(std::string_view user) override;
    [[nodiscard]] Result<std::unique_ptr<PendingDelivery>> begin(std::string_view user) override;

    [[nodiscard]] Result<MboxPaths> paths(std::string_view user) const;

private:
    MboxOptions m_options;
};

} // namespace pigeon::storage
