// LineReader: splits a byte stream into CRLF-terminated lines, resumable over any chunking, with
// a bound chosen per line by the caller. A line over the bound is discarded as it arrives (the
// buffer never holds more than the bound plus one read) and reported once as too long when its
// end arrives, so the reader resynchronises on the next line. Shared by the POP3 server and
// client sessions (and LMTP later). A bare LF is accepted as a line end, as Dovecot does; a
// CR before it is stripped.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pigeon::protocol {

struct LineEvent {
    enum class Kind {
        line,
        too_long
    };
    Kind kind = Kind::line;
    std::string_view text; // without the line end; valid until the next call on the reader
};

class LineReader {
public:
    void append(std::string_view bytes);

    // The next complete line whose length (with its CRLF) is at most max_octets, or too_long for
    // a line that exceeded it, or nothing when no complete line is buffered yet.
    [[nodiscard]] std::optional<LineEvent> next(std::size_t max_octets);

    // Drops everything buffered (used after STLS: plaintext sent before TLS is never read).
    void clear() noexcept;

    [[nodiscard]] std::size_t buffered() const noexcept { return m_buffer.size() - m_start; }

    // The buffered bytes not yet read as lines, and their removal: for the client, whose
    // message bodies are not line-bounded and go to the DotUnstuffer as they come.
    [[nodiscard]] std::string_view peek_raw() const noexcept;
    void consume_raw(std::size_t octets) noexcept;

private:
    void compact();

    std::string m_buffer;
    std::size_t m_start = 0;   // first unread byte
    std::size_t m_scanned = 0; // bytes from m_start already known to hold no LF
    bool m_discarding = false; // inside an overlong line, dropping bytes until its LF
};

} // namespace pigeon::protocol
