// Maildir maildrops (maildir(5), laid out as Dovecot and Courier do: cur/ new/ tmp/ under a
// per-user path such as /var/mail/%d/%n), for POP3 sessions and for delivery.
//
// What it owns: reading new/ and cur/ into a snapshot (unique-id and exact POP3 size of every
// message), streaming a message, committing deletions, and delivering durably through tmp/.
// Beside the maildir it keeps "pigeon-index" (sizes, unique-ids, the directories' mtimes) so a
// warm login costs two stat() calls and one read, and "pigeon-pop3.lock" for RFC 1939 §8's
// exclusive access. It reads Dovecot's dovecot-uidlist to keep Dovecot's unique-ids, and never
// writes Dovecot's files. It knows nothing of POP3 commands or of users' credentials.
#pragma once

#include "storage/delivery.hpp"
#include "storage/maildrop.hpp"

#include <atomic>
#include <string>

namespace pigeon::storage {

struct MaildirOptions {
    // Dovecot-style template: %u user, %n local part, %d domain (see path_template.hpp).
    std::string path_template = "/var/mail/%d/%n";
    // A new login of the same user takes over a session whose client vanished (in this process).
    bool takeover = false;
    // Host name in delivered file names; empty: gethostname().
    std::string host_name;
};

class MaildirStore final : public MaildropStore, public Delivery {
public:
    explicit MaildirStore(MaildirOptions options);

    [[nodiscard]] Result<std::unique_ptr<Maildrop>> open(std::string_view user) override;
    [[nodiscard]] Result<std::unique_ptr<PendingDelivery>> begin(std::string_view user) override;

    // The same for a maildir given by its path (tools, benchmarks).
    [[nodiscard]] Result<std::unique_ptr<Maildrop>> open_path(const std::string& root) const;
    [[nodiscard]] Result<std::unique_ptr<PendingDelivery>> begin_path(const std::string& root);

private:
    MaildirOptions m_options;
    std::atomic<std::uint64_t> m_delivery_sequence{0};
};

// File names inside a maildir root that belong to Pigeon.
inline constexpr const char* maildir_index_file = "pigeon-index";
inline constexpr const char* maildir_lock_file = "pigeon-pop3.lock";
inline constexpr const char* maildir_retrieval_record_file = "pigeon-retrieved";

} // namespace pigeon::storage
