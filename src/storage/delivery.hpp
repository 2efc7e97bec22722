// The Delivery interface (shared/DESIGN.md §4): stores one message durably for a user. The
// message is written in pieces (LMTP DATA, a pipe from the MTA) so a large one never sits in
// memory whole; commit() returns only once the message is on disk (data and directory entry
// fsynced) and visible to the next POP3 session. Destroying an uncommitted PendingDelivery
// removes every trace of it. A full disk or an I/O error is a temporary failure
// (errc::delivery_temporary_failure), never a partial message.
#pragma once

#include "core/result.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace pigeon::storage {

class PendingDelivery {
public:
    PendingDelivery() = default;
    PendingDelivery(const PendingDelivery&) = delete;
    PendingDelivery& operator=(const PendingDelivery&) = delete;
    virtual ~PendingDelivery() = default;

    // Appends message bytes as received (LF or CRLF line ends).
    [[nodiscard]] virtual Result<void> write(std::string_view bytes) = 0;
    // Makes the message durable; returns the unique-id POP3 will list for it.
    [[nodiscard]] virtual Result<std::string> commit() = 0;
};

class Delivery {
public:
    Delivery() = default;
    Delivery(const Delivery&) = delete;
    Delivery& operator=(const Delivery&) = delete;
    virtual ~Delivery() = default;

    [[nodiscard]] virtual Result<std::unique_ptr<PendingDelivery>> begin(std::string_view user) = 0;
};

// Convenience: delivers a whole message held in memory.
[[nodiscard]] Result<std::string> deliver_message(Delivery& delivery, std::string_view user,
                                                  std::string_view message);

} // namespace pigeon::storage
