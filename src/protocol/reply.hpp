// Client-side parsing of POP3 server replies: status lines ("+OK", "-ERR" with an optional
// RFC 2449 §8 response code), SASL continuations ("+ base64", RFC 5034 §4), the greeting's APOP
// timestamp (RFC 1939 §7), and the lines of STAT, LIST, UIDL and CAPA.
#pragma once

#include "core/message_listing.hpp"
#include "core/result.hpp"
#include "protocol/response.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pigeon::protocol {

struct Reply {
    enum class Kind {
        ok,
        err,
        continuation
    };
    Kind kind = Kind::ok;
    std::string code; // the response code as sent, e.g. "SYS/TEMP"; empty when there is none
    std::string text; // the rest of the line (for a continuation, the base64 challenge)

    [[nodiscard]] bool ok() const noexcept { return kind == Kind::ok; }
    // The known code this reply carries, matching hierarchically ("SYS/TEMP/DISK" is sys_temp).
    [[nodiscard]] ResponseCode known_code() const noexcept;
};

[[nodiscard]] Result<Reply> parse_reply(std::string_view line);

// RFC 1939 §7: the timestamp in the greeting, "<" ... ">" including the brackets; nothing if the
// greeting has none (then APOP is not possible).
[[nodiscard]] std::optional<std::string> apop_timestamp(std::string_view greeting_text);

struct MaildropStat {
    std::uint32_t messages = 0;
    std::uint64_t octets = 0;
};
// "+OK nn mm" (the text after "+OK ").
[[nodiscard]] Result<MaildropStat> parse_stat(std::string_view text);

struct ScanListing {
    MessageNumber message;
    std::uint64_t octets = 0;
};
// "n size", as in LIST's lines and LIST n's reply text.
[[nodiscard]] Result<ScanListing> parse_scan_listing(std::string_view line);

struct UniqueIdListing {
    MessageNumber message;
    std::string unique_id;
};
// "n unique-id", as in UIDL's lines and UIDL n's reply text.
[[nodiscard]] Result<UniqueIdListing> parse_unique_id_listing(std::string_view line);

// What a server advertises in its CAPA response (RFC 2449 §6).
struct Capabilities {
    bool top = false;
    bool uidl = false;
    bool user = false;
    bool resp_codes = false;
    bool auth_resp_code = false;
    bool pipelining = false;
    bool stls = false;
    bool utf8 = false;
    std::vector<std::string> sasl_mechanisms; // upper case
    std::optional<std::uint32_t> login_delay_seconds;
    std::optional<std::uint32_t> expire_days; // nothing: not advertised
    bool expire_never = false;
    std::string implementation;

    [[nodiscard]] bool has_mechanism(std::string_view name) const noexcept;
};

// Adds one line of a CAPA response to `caps`; unknown capabilities are ignored (RFC 2449 §6).
void add_capability_line(Capabilities& caps, std::string_view line);

} // namespace pigeon::protocol
