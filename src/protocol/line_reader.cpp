#include "protocol/line_reader.hpp"

#include <algorithm>
#include <cstring>

namespace pigeon::protocol {

void LineReader::append(std::string_view bytes)
{
    compact();
    m_buffer.append(bytes);
}

void LineReader::compact()
{
    if (m_start == 0) {
        return;
    }
    // Move the unread tail to the front once the consumed prefix dominates, so appends stay
    // amortised O(1) and the buffer does not grow with the total bytes received.
    if (m_start == m_buffer.size()) {
        m_buffer.clear();
        m_start = 0;
    } else if (m_start >= m_buffer.size() / 2) {
        m_buffer.erase(0, m_start);
        m_start = 0;
    }
}

void LineReader::clear() noexcept
{
    m_buffer.clear();
    m_start = 0;
    m_scanned = 0;
    m_discarding = false;
}

std::string_view LineReader::peek_raw() const noexcept
{
    return {m_buffer.data() + m_start, buffered()};
}

void LineReader::consume_raw(std::size_t octets) noexcept
{
    const std::size_t count = std::min(octets, buffered());
    m_start += count;
    m_scanned = m_scanned > count ? m_scanned - count : 0;
    m_discarding = false;
}

std::optional<LineEvent> LineReader::next(std::size_t max_octets)
{
    const char* base = m_buffer.data() + m_start;
    const std::size_t available = buffered();
    const void* found =
        m_scanned < available ? std::memchr(base + m_scanned, '\n', available - m_scanned) : nullptr;
    if (found == nullptr) {
        m_scanned = available;
        if (available >= max_octets || m_discarding) {
            // The line cannot fit however it ends: forget what we have and keep dropping until
            // its LF arrives. max_octets includes the CRLF, so `available` bytes with no LF yet
            // already make a line of at least available + 1 octets.
            m_discarding = true;
            m_start += available;
            m_scanned = 0;
            compact();
        }
        return std::nullopt;
    }
    const auto line_end = static_cast<std::size_t>(static_cast<const char*>(found) - base);
    const std::size_t line_octets = line_end + 1;
    m_start += line_octets;
    m_scanned = 0;
    if (m_discarding || line_octets > max_octets) {
        m_discarding = false;
        return LineEvent{LineEvent::Kind::too_long, {}};
    }
    std::size_t text_length = line_end;
    if (text_length > 0 && base[text_length - 1] == '\r') {
        --text_length;
    }
    return LineEvent{LineEvent::Kind::line, std::string_view(base, text_length)};
}

} // namespace pigeon::protocol
