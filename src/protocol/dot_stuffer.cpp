#include "protocol/dot_stuffer.hpp"

#include <cstring>

namespace pigeon::protocol {
namespace {

struct StringOutput {
    std::string& out;
    void append(const char* data, std::size_t length) { out.append(data, length); }
    void push(char c) { out.push_back(c); }
    void stuff_dot() { out.push_back('.'); }
};

struct CountingOutput {
    std::uint64_t& octets;
    void append(const char* /*data*/, std::size_t length) noexcept { octets += length; }
    void push(char /*c*/) noexcept { ++octets; }
    void stuff_dot() noexcept {} // the count is of the unstuffed message
};

} // namespace

void MessageLineWalker::end_line() noexcept
{
    m_at_line_start = true;
    m_last_was_cr = false;
    // RFC 1939 §7 TOP: the header ends at the first empty line; then count body lines.
    const bool empty = m_line_octets == 0 || (m_line_octets == 1 && m_line_is_cr_only);
    m_line_octets = 0;
    m_line_is_cr_only = false;
    if (!m_body_line_limit) {
        return;
    }
    if (m_in_header) {
        if (empty) {
            m_in_header = false;
            m_complete = *m_body_line_limit == 0;
        }
    } else if (++m_body_lines >= *m_body_line_limit) {
        m_complete = true;
    }
}

template <class Output>
void MessageLineWalker::walk(std::string_view in, Output& out)
{
    const char* const data = in.data();
    const std::size_t size = in.size();
    std::size_t pos = 0;
    while (pos < size && !m_complete) {
        if (m_at_line_start) {
            m_at_line_start = false;
            if (data[pos] == '.') {
                out.stuff_dot();
            }
        }
        const void* found = std::memchr(data + pos, '\n', size - pos);
        if (found == nullptr) {
            const std::size_t length = size - pos;
            out.append(data + pos, length);
            if (m_line_octets == 0 && length == 1 && data[pos] == '\r') {
                m_line_is_cr_only = true;
            } else if (length > 0) {
                m_line_is_cr_only = false;
            }
            m_line_octets += length;
            m_last_was_cr = data[size - 1] == '\r';
            return;
        }
        const auto lf = static_cast<std::size_t>(static_cast<const char*>(found) - data);
        const std::size_t length = lf - pos;
        const bool cr_before = length > 0 ? data[lf - 1] == '\r' : m_last_was_cr;
        if (length > 0) {
            m_line_is_cr_only = (m_line_octets == 0 && length == 1 && cr_before);
        }
        m_line_octets += length;
        out.append(data + pos, length);
        if (cr_before) {
            out.push('\n');
            // The CR was counted as line content; an empty line ended by CRLF is still empty.
        } else {
            out.append("\r\n", 2);
        }
        end_line();
        pos = lf + 1;
    }
}

template <class Output>
void MessageLineWalker::finish(Output& out)
{
    if (!m_at_line_start && !m_complete) {
        out.append("\r\n", 2);
        end_line();
    }
}

void DotStuffer::feed(std::string_view in, std::string& out)
{
    out.reserve(out.size() + in.size() + in.size() / 32 + 16);
    StringOutput output{out};
    m_walker.walk(in, output);
}

void DotStuffer::finish(std::string& out)
{
    StringOutput output{out};
    m_walker.finish(output);
    out.append(".\r\n");
}

void WireSizeCounter::feed(std::string_view in)
{
    CountingOutput output{m_octets};
    m_walker.walk(in, output);
}

std::uint64_t WireSizeCounter::finish()
{
    CountingOutput output{m_octets};
    m_walker.finish(output);
    return m_octets;
}

std::uint64_t wire_size(std::string_view message)
{
    WireSizeCounter counter;
    counter.feed(message);
    return counter.finish();
}

std::string dot_stuff(std::string_view message, std::optional<std::uint32_t> top_body_lines)
{
    std::string out;
    DotStuffer stuffer(top_body_lines);
    stuffer.feed(message, out);
    stuffer.finish(out);
    return out;
}

} // namespace pigeon::protocol
