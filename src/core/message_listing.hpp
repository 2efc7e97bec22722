// The read-only view of a maildrop snapshot that the POP3 state machine needs: how many messages,
// each one's unique-id and exact size. It lives in core so that protocol/ (which must not know
// storage) and storage/ (which must not know POP3) can both use it.
//
// Index spaces (shared/DESIGN.md §8): a message *number* is 1-based and appears on the wire; a
// message *index* is 0-based and addresses memory. They are distinct types so one is never
// passed where the other is meant.
#pragma once

#include <compare>
#include <cstdint>
#include <string_view>

namespace pigeon {

struct MessageIndex;

struct MessageNumber {
    std::uint32_t value = 0; // 1-based, as in "RETR 1"

    [[nodiscard]] constexpr MessageIndex to_index() const noexcept;
    constexpr auto operator<=>(const MessageNumber&) const = default;
};

struct MessageIndex {
    std::uint32_t value = 0; // 0-based

    [[nodiscard]] constexpr MessageNumber to_number() const noexcept { return {value + 1}; }
    constexpr auto operator<=>(const MessageIndex&) const = default;
};

constexpr MessageIndex MessageNumber::to_index() const noexcept
{
    return {value - 1};
}

class MessageListing {
public:
    MessageListing() = default;
    MessageListing(const MessageListing&) = delete;
    MessageListing& operator=(const MessageListing&) = delete;
    virtual ~MessageListing() = default;

    [[nodiscard]] virtual std::uint32_t message_count() const noexcept = 0;
    // Octets as transmitted: CRLF line ends, before dot-stuffing (RFC 1939 §5 LIST).
    [[nodiscard]] virtual std::uint64_t message_octets(MessageIndex index) const noexcept = 0;
    // RFC 1939 §7: 1-70 characters in 0x21-0x7E, unique within the maildrop, stable forever.
    [[nodiscard]] virtual std::string_view unique_id(MessageIndex index) const noexcept = 0;
};

} // namespace pigeon
