#include "protocol/dot_unstuffer.hpp"

#include <cstring>

namespace pigeon::protocol {

DotUnstuffer::Progress DotUnstuffer::feed(std::string_view in, std::string& out)
{
    const char* const data = in.data();
    const std::size_t size = in.size();
    std::size_t pos = 0;
    while (pos < size && m_state != State::complete) {
        const char c = data[pos];
        switch (m_state) {
        case State::line_start:
            if (c == '.') {
                m_state = State::after_dot;
                ++pos;
            } else {
                m_state = State::in_line;
            }
            break;
        case State::after_dot:
            if (c == '\r') {
                m_state = State::after_dot_cr;
                ++pos;
            } else if (c == '\n') {
                m_state = State::complete; // lenient: ".\n" from a bare-LF server
                ++pos;
            } else {
                m_state = State::in_line; // the stuffed dot is dropped; c is data
            }
            break;
        case State::after_dot_cr:
            if (c == '\n') {
                m_state = State::complete;
                ++pos;
            } else {
                // ".\r" then data: a line that began with an unstuffed "." followed by a bare CR.
                // Keep the CR as data, as the stuffer would have.
                out.push_back('\r');
                m_state = State::in_line;
            }
            break;
        case State::in_line: {
            const void* found = std::memchr(data + pos, '\n', size - pos);
            if (found == nullptr) {
                out.append(data + pos, size - pos);
                pos = size;
            } else {
                const auto end = static_cast<std::size_t>(static_cast<const char*>(found) - data) + 1;
                out.append(data + pos, end - pos);
                pos = end;
                m_state = State::line_start;
            }
            break;
        }
        case State::complete: break;
        }
    }
    return Progress{pos, m_state == State::complete};
}

std::string dot_unstuff(std::string_view body)
{
    std::string out;
    DotUnstuffer unstuffer;
    unstuffer.feed(body, out);
    return out;
}

} // namespace pigeon::protocol
