// The storage interfaces (shared/DESIGN.md §4). A MaildropStore opens a user's maildrop as a
// locked snapshot (RFC 1939 §8: one session per maildrop); the Maildrop lists its messages
// through MessageListing, streams them, and commits deletions. It knows no POP3 command; the one
// piece of the protocol it uses is protocol::WireSizeCounter, because a message's size in a
// snapshot must be the octets RETR will send.
//
// Backends: memory/ (the reference for tests), maildir/, mbox/, all held to one conformance
// suite (conformance_test.cpp).
#pragma once

#include "core/message_listing.hpp"
#include "core/result.hpp"

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace pigeon::storage {

// Reads one message's stored bytes from the start, in pieces.
class MessageReader {
public:
    MessageReader() = default;
    MessageReader(const MessageReader&) = delete;
    MessageReader& operator=(const MessageReader&) = delete;
    virtual ~MessageReader() = default;

    // Fills up to buffer.size() bytes; 0 means the end of the message.
    [[nodiscard]] virtual Result<std::size_t> read(std::span<char> buffer) = 0;
};

// A user's maildrop, locked and frozen at the moment it was opened. Deliveries that arrive
// later are seen by the next session, never by this one. Destroying it releases the lock and
// commits nothing.
class Maildrop : public MessageListing {
public:
    [[nodiscard]] virtual Result<std::unique_ptr<MessageReader>> open_message(MessageIndex index) = 0;
    // Removes the given messages durably; the others stay untouched whatever happens.
    [[nodiscard]] virtual Result<void> commit(std::span<const MessageIndex> deletions) = 0;
    // Where the record of first retrievals for EXPIRE lives (storage/retention.hpp), beside the
    // index; empty when the backend keeps none.
    [[nodiscard]] virtual std::string retrieval_record_path() const { return {}; }
};

class MaildropStore {
public:
    MaildropStore() = default;
    MaildropStore(const MaildropStore&) = delete;
    MaildropStore& operator=(const MaildropStore&) = delete;
    virtual ~MaildropStore() = default;

    // errc::maildrop_in_use while another session holds the user's maildrop.
    [[nodiscard]] virtual Result<std::unique_ptr<Maildrop>> open(std::string_view user) = 0;
};

} // namespace pigeon::storage
