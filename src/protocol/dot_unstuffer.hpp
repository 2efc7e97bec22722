// The client-side mirror of DotStuffer: reads the body of a multi-line response, removes the
// dot-stuffing (RFC 1939 §3: a line starting with "." has it removed; a line of "." alone ends
// the response) and stops exactly after the terminator, so the bytes of the next pipelined
// response stay unread. Line ends are passed through as received (CRLF from a conforming server).
// A server that ends lines with a bare LF is tolerated, including ".\n" as the terminator.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pigeon::protocol {

class DotUnstuffer {
public:
    struct Progress {
        std::size_t consumed = 0; // bytes of the input used; the rest belongs to the next reply
        bool complete = false;    // the terminating line was seen
    };

    // Appends message bytes to `out`: at most in.size() + 1 octets per call (a "\r" held back
    // from a ".\r" that ended the previous chunk is emitted in this one).
    Progress feed(std::string_view in, std::string& out);

    [[nodiscard]] bool complete() const noexcept { return m_state == State::complete; }

    void reset() noexcept { m_state = State::line_start; }

private:
    enum class State {
        line_start,
        in_line,
        after_dot,
        after_dot_cr,
        complete
    };
    State m_state = State::line_start;
};

[[nodiscard]] std::string dot_unstuff(std::string_view body);

} // namespace pigeon::protocol
