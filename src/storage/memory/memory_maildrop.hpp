// In-memory maildrops, for tests and fuzzing: the reference behaviour every real backend's
// conformance suite is compared with. Thread-compatible, not thread-safe.
#pragma once

#include "storage/delivery.hpp"
#include "storage/maildrop.hpp"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace pigeon::storage {

struct StoredMessage {
    std::string unique_id;
    std::string content; // as stored: LF or CRLF line ends
};

class MemoryMaildropStore final : public MaildropStore, public Delivery {
public:
    MemoryMaildropStore();
    MemoryMaildropStore(const MemoryMaildropStore&) = delete;
    MemoryMaildropStore& operator=(const MemoryMaildropStore&) = delete;
    MemoryMaildropStore(MemoryMaildropStore&&) = delete;
    MemoryMaildropStore& operator=(MemoryMaildropStore&&) = delete;
    ~MemoryMaildropStore() override;

    void add_message(const std::string& user, StoredMessage message);
    [[nodiscard]] std::vector<StoredMessage> messages(const std::string& user) const;

    // Fault injection for tests: the next open or commit fails with this error.
    void fail_next_open(std::error_code error) { m_state->fail_open = error; }
    void fail_next_commit(std::error_code error) { m_state->fail_commit = error; }

    [[nodiscard]] Result<std::unique_ptr<Maildrop>> open(std::string_view user) override;
    [[nodiscard]] Result<std::unique_ptr<PendingDelivery>> begin(std::string_view user) override;

    struct State {
        std::map<std::string, std::vector<StoredMessage>, std::less<>> maildrops;
        std::set<std::string, std::less<>> locked;
        std::error_code fail_open;
        std::error_code fail_commit;
        std::uint64_t next_delivery = 1;
    };

private:
    std::shared_ptr<State> m_state;
};

} // namespace pigeon::storage
