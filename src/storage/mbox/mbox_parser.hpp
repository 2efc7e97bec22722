// The mbox format without I/O (mbox(5), as Postfix's local(8) writes it), fed in pieces of any
// size so a mailbox of any size passes through a fixed buffer.
//
// Layout. A message begins with a From_ line ("From " at the start of a line) and ends before the
// blank line that precedes the next From_ line, or at the end of the file. The blank separator
// line belongs to no message. A "From " line that follows a non-blank line is message text, not
// a From_ line (quoted writers never produce one; tolerant readers must not split on it).
// Content-Length headers are ignored: they are not trusted.
//
// Leading garbage. Octets before the first From_ line (a file that does not start with "From ",
// a stray blank line) are not a message: they are never listed and never touched by a rewrite.
// Until the first message, any line starting with "From " begins it, blank line before or not.
//
// Quoting (mboxrd). Writing, a line matching ^>*From  gets one more '>'; reading, a line matching
// ^>+From  loses one. That round-trips every message, including ones with "From " and ">From "
// lines. mboxo files (only "From " quoted) read back correctly except for lines that began with
// ">From " before quoting, which nothing can tell apart.
//
// A message's unique-id derivation starts here: the SHA-256 of its From_ line and its header
// section (up to and including the first empty line), leaving out the fields that mail readers
// rewrite in place (Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase, Content-Length,
// Lines) so that mutt or Dovecot touching a message does not change its unique-id; and the value
// of its first X-UIDL field when that is a valid unique-id.
#pragma once

#include "protocol/dot_stuffer.hpp"
#include "storage/mbox/mbox_io.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pigeon::storage::mbox {

inline constexpr std::string_view from_prefix = "From ";

// mboxrd quoting of a message being delivered: ^>*From  gets one more '>'.
class Quoter {
public:
    void feed(std::string_view in, std::string& out);
    // Gives back a partly matched "From" at the end of the message.
    void finish(std::string& out);

private:
    enum class State : std::uint8_t {
        line_start,
        gt_run,
        matching,
        mid_line
    };
    State m_state = State::line_start;
    std::size_t m_matched = 0;
};

// mboxrd unquoting of a stored message: ^>+From  loses one '>'.
class Unquoter {
public:
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    enum class State : std::uint8_t {
        line_start,
        gt_run, // one '>' withheld: it is dropped if the line turns out to be a quoted From_
        matching,
        mid_line
    };
    State m_state = State::line_start;
    std::size_t m_matched = 0;
};

// One message found by the Parser. Offsets are file offsets; content is [content_offset,
// content_end) as stored (quoted), without the From_ line and without the separator line.
struct ParsedMessage {
    std::uint64_t from_offset = 0;
    std::uint64_t content_offset = 0;
    std::uint64_t content_end = 0;
    // protocol::wire_size of the unquoted content, and of the same minus its final LF (for a
    // message delivered without a final newline, see MboxStore).
    std::uint64_t wire_octets = 0;
    std::uint64_t wire_octets_without_final_lf = 0;
    bool ends_with_lf = false;
    std::string digest; // base64url SHA-256 of the From_ line and header section, 32 characters
    std::string x_uidl; // the first X-UIDL field's value if valid as a unique-id, else empty
};

// The header section's part in a message's digest, and its X-UIDL field.
class HeaderScanner {
public:
    void reset();
    // Feeds raw content octets; hashes what belongs to the digest.
    void feed(std::string_view in, Sha256& hash);
    void finish(Sha256& hash);
    [[nodiscard]] const std::string& x_uidl() const noexcept { return m_x_uidl; }

private:
    void end_field_name(Sha256& hash);
    void end_line();

    enum class State : std::uint8_t {
        line_start,
        cr_at_line_start,
        name,
        value,
        done
    };
    State m_state = State::line_start;
    std::string m_name;         // the field name so far (bounded), withheld from the hash
    bool m_skipping = false;    // the current field is left out of the digest
    bool m_in_x_uidl = false;   // the current field is the first X-UIDL
    bool m_x_uidl_seen = false; // only the first X-UIDL field counts
    bool m_x_uidl_open = false; // an X-UIDL value ended at the last line end; a fold voids it
    bool m_x_uidl_too_long = false;
    std::string m_x_uidl_value; // raw value of the X-UIDL field (bounded)
    std::string m_x_uidl;       // the accepted value
};

class Parser {
public:
    // `start_offset`: the file offset of the first octet fed. Parsing starts before any message,
    // so the first line starting with "From " begins one.
    explicit Parser(std::uint64_t start_offset = 0);

    void feed(std::string_view in, std::vector<ParsedMessage>& out);
    // The end of the file: completes the last message.
    void finish(std::vector<ParsedMessage>& out);

    [[nodiscard]] std::uint64_t offset() const noexcept { return m_offset; }

private:
    enum class Mode : std::uint8_t {
        garbage,
        from_line,
        content
    };
    [[nodiscard]] bool boundary_allowed() const noexcept { return m_mode == Mode::garbage || m_pending_lf; }
    void begin_message(std::vector<ParsedMessage>& out);
    void end_message(std::uint64_t content_end, std::vector<ParsedMessage>& out);
    void give_back_withheld();
    void feed_content(std::string_view bytes);
    void feed_counter(std::string_view unquoted);

    Mode m_mode = Mode::garbage;
    std::uint64_t m_offset = 0;     // file offset of the next octet
    std::uint64_t m_line_start = 0; // file offset of the current line's first octet
    bool m_at_line_start = true;
    // An empty line's LF, withheld: it is the separator if a From_ line follows.
    bool m_pending_lf = false;
    std::size_t m_matched = 0; // octets of "From " matched at a line start that may be a From_ line

    ParsedMessage m_message;
    Sha256 m_hash;
    HeaderScanner m_header;
    Unquoter m_unquoter;
    protocol::WireSizeCounter m_counter;
    bool m_counter_pending_lf = false; // the last unquoted LF, withheld from m_counter
    std::string m_scratch;
};

// For tests and tools: every message of an mbox held in memory, unquoted.
struct MessageText {
    ParsedMessage parsed;
    std::string content;
};
[[nodiscard]] std::vector<MessageText> parse_all(std::string_view mbox);

// True for 1-70 characters in 0x21-0x7E (RFC 1939 §7).
[[nodiscard]] bool is_valid_unique_id(std::string_view text) noexcept;

} // namespace pigeon::storage::mbox
