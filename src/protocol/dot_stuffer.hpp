// The streaming dot-stuffer: turns stored message bytes into the body of a POP3 multi-line
// response (RFC 1939 §3), chunk by chunk, through a bounded buffer.
//
// What it accepts: LF or CRLF line ends (mixed), bare CR (kept as a data byte), 8-bit bytes,
// NULs, lines of any length, and a last line without a line end (completed with CRLF). What it
// produces: every line ended by CRLF, a "." doubled at the start of every line, and, from
// finish(), the terminating ".CRLF".
//
// WireSizeCounter runs the same line logic without producing output: the octet count it gives is
// the message as the client receives it once the dot-stuffing is removed (CRLF line ends), which
// is what LIST and STAT report (RFC 1939 §5) and what Dovecot stores as ",W=" in Maildir names.
// Because both walk the same code, LIST always equals what RETR sends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pigeon::protocol {

// The line logic shared by stuffing and counting. Output is a policy type with append(ptr, len)
// and push('c'); see DotStuffer and WireSizeCounter.
class MessageLineWalker {
public:
    // body_line_limit: for TOP, the number of body lines to pass after the header (RFC 1939 §7);
    // nothing for a whole message.
    explicit MessageLineWalker(std::optional<std::uint32_t> body_line_limit = std::nullopt) noexcept
        : m_body_line_limit(body_line_limit)
    {
    }

    template <class Output>
    void walk(std::string_view in, Output& out);

    // Completes an unterminated last line with CRLF.
    template <class Output>
    void finish(Output& out);

    // True once a TOP limit is reached: the caller may stop reading the message.
    [[nodiscard]] bool complete() const noexcept { return m_complete; }

private:
    void end_line() noexcept;

    std::optional<std::uint32_t> m_body_line_limit;
    std::uint32_t m_body_lines = 0;
    std::uint64_t m_line_octets = 0; // octets of the current line so far, before its line end
    bool m_at_line_start = true;
    bool m_last_was_cr = false;
    bool m_in_header = true;
    bool m_line_is_cr_only = false;
    bool m_complete = false;
};

class DotStuffer {
public:
    explicit DotStuffer(std::optional<std::uint32_t> top_body_lines = std::nullopt) noexcept
        : m_walker(top_body_lines)
    {
    }

    // Appends the stuffed form of `in` to `out`. The output of one call is at most
    // 2 * in.size() + 2 octets (an LF becomes CRLF; a "." line start becomes "..").
    void feed(std::string_view in, std::string& out);
    // Appends the end of the body: CRLF if the last line was unterminated, then ".CRLF".
    void finish(std::string& out);
    // TOP limit reached; further input is ignored.
    [[nodiscard]] bool complete() const noexcept { return m_walker.complete(); }

private:
    MessageLineWalker m_walker;
};

class WireSizeCounter {
public:
    void feed(std::string_view in);
    // The total octets of the message in CRLF form, unstuffed.
    [[nodiscard]] std::uint64_t finish();

private:
    MessageLineWalker m_walker;
    std::uint64_t m_octets = 0;
};

// Convenience for whole messages held in memory.
[[nodiscard]] std::uint64_t wire_size(std::string_view message);
[[nodiscard]] std::string dot_stuff(std::string_view message,
                                    std::optional<std::uint32_t> top_body_lines = std::nullopt);

} // namespace pigeon::protocol
