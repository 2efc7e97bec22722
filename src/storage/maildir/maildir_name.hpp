// Maildir file names (the maildir(5) convention, with Dovecot's and Courier's extensions):
//   <base>[:2,<flags>]
// where <base> is the unique part, stable for the life of the message (renames change only the
// flags after ":2,"), and may carry comma-separated fields: ",S=<octets on disk>" and
// ",W=<octets with CRLF line ends>" (Dovecot's virtual size, which is POP3's size).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pigeon::storage::maildir {

// The unique part of a file name: everything before the info separator ":".
[[nodiscard]] std::string_view base_name(std::string_view file_name) noexcept;

// The ",W=" field of the base name, if present and well-formed.
[[nodiscard]] std::optional<std::uint64_t> wire_size_field(std::string_view file_name) noexcept;
// The ",S=" field of the base name, if present and well-formed.
[[nodiscard]] std::optional<std::uint64_t> disk_size_field(std::string_view file_name) noexcept;

// Files a maildir reader must skip: hidden files (".", "..", ".nfs*", editors' droppings) and
// names no writer would produce (empty, or holding a control character).
[[nodiscard]] bool is_message_file_name(std::string_view file_name) noexcept;

// True if the base name can be a POP3 unique-id as it is (RFC 1939 §7: 1-70 characters in
// 0x21-0x7E).
[[nodiscard]] bool is_valid_unique_id(std::string_view text) noexcept;

// The unique-id of a message known only by its base name: the base name itself when it is a
// valid unique-id, else a digest of it (SHA-256, base64url, 32 characters) - deterministic, so it
// survives the loss of every index.
[[nodiscard]] std::string unique_id_for_base_name(std::string_view base);

// A new unique base name for a delivery: "<seconds>.M<microseconds>P<pid>Q<sequence>.<host>"
// (maildir(5)); "/" and ":" in the host name are written as "\057" and "\072".
[[nodiscard]] std::string new_base_name(std::uint64_t seconds, std::uint32_t microseconds, std::uint64_t pid,
                                        std::uint64_t sequence, std::string_view host);

} // namespace pigeon::storage::maildir
