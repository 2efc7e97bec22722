// Reading the mail `pigeon fetch` stored, offline (`pigeon ls`, `pigeon show`): the messages of a
// local Maildir or mbox, numbered from 1 in the order they arrived, each summarised from its header
// section (date, sender, subject, size, seen) or rendered as readable text (decoded headers, the
// text body, the list of attachments). MIME (RFC 2045-2049, RFC 2047 encoded words, charsets) is
// GMime's; this module owns the store layouts, the numbering, the bounds and making every string
// safe for a terminal. It must not know POP3, accounts or the command line.
//
// Order and numbering. Maildir: new/ and cur/ together, by the arrival time at the start of the
// file name (maildir(5): "TIME.…"), then by base name, runs of digits compared as numbers
// ("M99999" before "M100000", "Q9" before "Q10"); the base name is the name before ":2,", so a
// reader that moves a message from new/ to cur/ or changes its flags does not renumber anything.
// A name without a time sorts by its modification time. mbox: file order, split on From_ lines as
// storage::mbox::Parser splits them (a From_ line only after a blank line). `pigeon ls` and
// `pigeon show N` enumerate the same way, so number N means the same message in both as long as
// the store does not change in between.
//
// Hostile input. Any file may be garbage, huge or truncated: nothing here throws on content or
// grows without bound. A summary reads at most max_header_octets of a message; rendering reads at
// most max_render_input_octets and shows at most max_body_text_octets of body text. Every string
// this module returns is valid UTF-8 with no control characters (the body keeps LF and TAB), so
// a message cannot send escape sequences to the terminal; header values are cut at
// max_summary_field_octets (summaries) and max_rendered_field_octets (render).
#pragma once

#include "core/message_listing.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

namespace pigeon::client {

// A summary reads the header section up to this many octets (real ones rarely pass 16 KiB).
inline constexpr std::size_t max_header_octets = std::size_t{64} * 1024;
// Rendering reads at most this much of a message; attachments past it are not listed.
inline constexpr std::uint64_t max_render_input_octets = std::uint64_t{64} * 1024 * 1024;
// Body text shown by render(), after decoding; the rest is cut with a note.
inline constexpr std::size_t max_body_text_octets = std::size_t{1024} * 1024;
// A header value returned by summarize() (sender, subject) or render(); longer ones end in "…".
inline constexpr std::size_t max_summary_field_octets = 1024;
inline constexpr std::size_t max_rendered_field_octets = std::size_t{16} * 1024;
// Attachments listed by render(); a message with more says how many more.
inline constexpr std::size_t max_listed_attachments = 1000;

enum class StoreFormat : std::uint8_t {
    maildir,
    mbox
};

struct StoreLocation {
    StoreFormat format = StoreFormat::maildir;
    std::string path;
};

// "maildir:PATH" or "mbox:PATH" ("~/" expanded). Any other target (command:, imap:) is an error
// whose text says there is nothing local to read.
[[nodiscard]] tl::expected<StoreLocation, std::string> parse_store_location(std::string_view text);
// "maildir:PATH" / "mbox:PATH".
[[nodiscard]] std::string describe(const StoreLocation& location);

// One message as enumeration finds it, before anything of it is read.
struct StoredMessage {
    std::string file;              // Maildir: the file's path
    std::string base_name;         // Maildir: the file name before ":"
    std::uint64_t from_offset = 0; // mbox: the From_ line
    std::uint64_t content_offset = 0;
    std::uint64_t content_end = 0;       // mbox: content is [content_offset, content_end), as stored
    std::optional<std::int64_t> arrival; // seconds since the epoch: Maildir name time or mtime
    std::uint64_t octets = 0;            // as stored: the file's size, or the mbox content's
    std::optional<bool> seen;            // Maildir: the S flag (a message in new/ is unseen)
};

// What `pigeon ls` shows of one message. Strings are UTF-8, without control characters.
struct MessageSummary {
    std::optional<std::int64_t> date; // the Date field, else the arrival time; seconds since the epoch
    std::string sender;               // From's display name, else its address; empty if none
    std::string subject;              // RFC 2047-decoded
    std::uint64_t octets = 0;
    std::optional<bool> seen; // Maildir: the S flag; mbox: a Status field with R; unknown otherwise
    std::string error;        // the message could not be read (it vanished, an I/O error)
};

struct Attachment {
    std::string filename;     // RFC 2231/2047-decoded; empty if the part has none
    std::string mime_type;    // "application/pdf"
    std::uint64_t octets = 0; // decoded
};

// A message made readable.
struct RenderedMessage {
    std::vector<std::pair<std::string, std::string>> headers; // Date, From, To, Cc, Subject (if present)
    std::string body;             // the text part (LF line ends, TAB kept), or HTML made text
    bool body_from_html = false;  // no text/plain part: text/html with its tags stripped
    bool body_truncated = false;  // longer than max_body_text_octets
    bool input_truncated = false; // the message is longer than max_render_input_octets
    bool unparsable = false;      // not a MIME message: body is the raw text, made safe
    std::vector<Attachment> attachments;
    std::size_t attachments_not_listed = 0; // past max_listed_attachments
};

// Why a store could not be opened: a wrong path (usage) or a failing file system (worth a retry).
struct StoreError {
    enum class Kind : std::uint8_t {
        not_found,   // the path does not exist
        not_a_store, // a Maildir without cur/ and new/, an mbox that is not a regular file
        io           // permission, I/O error
    };
    Kind kind = Kind::io;
    std::string text;
};

// The messages of a store, enumerated once; MessageIndex 0 is message number 1.
class MailStore {
public:
    // Reads the directory listing (Maildir) or streams the file through the From_ line splitter
    // (mbox; memory grows with the number of messages, not their size). A path that does not
    // exist is an error; a Maildir with neither cur/ nor new/ is one too.
    [[nodiscard]] static tl::expected<MailStore, StoreError> open(const StoreLocation& location);

    [[nodiscard]] const StoreLocation& location() const noexcept { return m_location; }
    [[nodiscard]] std::uint32_t message_count() const noexcept
    {
        return static_cast<std::uint32_t>(m_messages.size());
    }
    [[nodiscard]] const StoredMessage& message(MessageIndex index) const
    {
        return m_messages.at(index.value);
    }

    // Reads the header section (at most max_header_octets) of one message. Never fails: a
    // message that cannot be read has `error` set and whatever is known (size, arrival time).
    [[nodiscard]] MessageSummary summarize(MessageIndex index) const;

    // Reads and parses one message (at most max_render_input_octets).
    [[nodiscard]] tl::expected<RenderedMessage, std::string> render(MessageIndex index) const;

    // The message as stored (mbox: without its From_ line and with mboxrd quoting undone), in
    // pieces of at most 64 KiB, to `sink`; bytes are NOT made safe. `sink` returns false to stop.
    [[nodiscard]] tl::expected<void, std::string>
    write_raw(MessageIndex index, const std::function<bool(std::string_view)>& sink) const;

private:
    MailStore() = default;

    StoreLocation m_location;
    std::vector<StoredMessage> m_messages;
};

// The readable text of a rendered message: its headers, a blank line, the body, notes on what was
// cut, and the attachments (name, type, size) at the end.
[[nodiscard]] std::string format_rendered(const RenderedMessage& message);

// --- text for the terminal ----------------------------------------------------------------------

// `text` (any octets) as valid UTF-8 without control characters: invalid sequences become U+FFFD;
// C0 controls, DEL and C1 controls become '?'. With `multiline`, LF and TAB stay, CR before LF is
// dropped; without, TAB, CR and LF each become a space.
[[nodiscard]] std::string terminal_safe(std::string_view text, bool multiline);
// The length of the longest prefix of `text` that does not end inside a UTF-8 sequence (for
// making a stream safe piece by piece).
[[nodiscard]] std::size_t complete_utf8_prefix(std::string_view text) noexcept;

// Columns `text` (valid UTF-8) takes on a terminal: 0 for combining marks, 2 for East Asian wide
// and emoji characters, 1 otherwise. An approximation of wcwidth(3) without the locale.
[[nodiscard]] std::size_t display_width(std::string_view text) noexcept;
// `text` cut to at most `columns` columns, never inside a character; "…" marks a cut.
[[nodiscard]] std::string truncate_to_width(std::string_view text, std::size_t columns);

// A size as `ls -h` writes it: "512", "1.2K", "12K", "3.4M", "1.1G" (powers of 1024).
[[nodiscard]] std::string human_size(std::uint64_t octets);

// Simple HTML to text: tags dropped, <script>/<style>/<head> content dropped, line breaks for
// block elements, the common entities and numeric references decoded, white space collapsed.
[[nodiscard]] std::string html_to_text(std::string_view html);

} // namespace pigeon::client
