#include "storage/mbox/mbox_parser.hpp"

#include <algorithm>

#include "core/limits.hpp"
#include "core/strings.hpp"

#include <array>
#include <cstring>

namespace pigeon::storage::mbox {
namespace {

// Fields that mail readers add or rewrite in place (mutt, Pine, Dovecot's mbox driver): a change
// to them must not change a message's unique-id.
constexpr std::array<std::string_view, 8> fields_left_out_of_digest{
    "Status", "X-Status", "X-Keywords", "X-UID", "X-IMAP", "X-IMAPbase", "Content-Length", "Lines"};

// Longer than any field name we look for; a longer name is simply hashed as it is.
constexpr std::size_t max_field_name_octets = 64;
// An X-UIDL value is at most 70 characters (RFC 1939 §7); room for surrounding white space.
constexpr std::size_t max_x_uidl_value_octets = 256;

std::string_view trim(std::string_view text) noexcept
{
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\r')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return text;
}

// Appends the rest of the current line (through its LF, if it is in `in`) and says where the
// next line starts, or npos.
std::size_t copy_rest_of_line(std::string_view in, std::size_t pos, std::string& out)
{
    const void* found = std::memchr(in.data() + pos, '\n', in.size() - pos);
    if (found == nullptr) {
        out.append(in.substr(pos));
        return std::string_view::npos;
    }
    const auto end = static_cast<std::size_t>(static_cast<const char*>(found) - in.data()) + 1;
    out.append(in.substr(pos, end - pos));
    return end;
}

} // namespace

bool is_valid_unique_id(std::string_view text) noexcept
{
    if (text.empty() || text.size() > limits::max_unique_id_octets) {
        return false;
    }
    return std::ranges::all_of(text, [](char c) { return c >= 0x21 && c <= 0x7E; });
}

// --- quoting -----------------------------------------------------------------------------------

void Quoter::feed(std::string_view in, std::string& out)
{
    std::size_t pos = 0;
    while (pos < in.size()) {
        const char c = in[pos];
        switch (m_state) {
        case State::line_start:
        case State::gt_run:
            if (c == '>') {
                out.push_back(c);
                m_state = State::gt_run;
                ++pos;
            } else if (c == 'F') {
                m_matched = 1;
                m_state = State::matching;
                ++pos;
            } else {
                m_state = State::mid_line;
            }
            break;
        case State::matching:
            if (c == from_prefix[m_matched]) {
                ++pos;
                if (++m_matched == from_prefix.size()) {
                    // All '>' are alike, so adding the new one just before "From" is the same as
                    // adding it at the start of the line.
                    out.push_back('>');
                    out.append(from_prefix);
                    m_matched = 0;
                    m_state = State::mid_line;
                }
            } else {
                out.append(from_prefix.substr(0, m_matched));
                m_matched = 0;
                m_state = State::mid_line;
            }
            break;
        case State::mid_line: {
            const std::size_t next = copy_rest_of_line(in, pos, out);
            if (next == std::string_view::npos) {
                return;
            }
            pos = next;
            m_state = State::line_start;
            break;
        }
        }
    }
}

void Quoter::finish(std::string& out)
{
    if (m_state == State::matching) {
        out.append(from_prefix.substr(0, m_matched));
    }
    m_matched = 0;
    m_state = State::line_start;
}

void Unquoter::feed(std::string_view in, std::string& out)
{
    std::size_t pos = 0;
    while (pos < in.size()) {
        const char c = in[pos];
        switch (m_state) {
        case State::line_start:
            if (c == '>') {
                m_state = State::gt_run; // withheld
                ++pos;
            } else {
                m_state = State::mid_line;
            }
            break;
        case State::gt_run:
            if (c == '>') {
                out.push_back(c); // further '>' pass; the withheld one stands for them all
                ++pos;
            } else if (c == 'F') {
                m_matched = 1;
                m_state = State::matching;
                ++pos;
            } else {
                out.push_back('>');
                m_state = State::mid_line;
            }
            break;
        case State::matching:
            if (c == from_prefix[m_matched]) {
                ++pos;
                if (++m_matched == from_prefix.size()) {
                    out.append(from_prefix); // the withheld '>' is the quoting: dropped
                    m_matched = 0;
                    m_state = State::mid_line;
                }
            } else {
                out.push_back('>');
                out.append(from_prefix.substr(0, m_matched));
                m_matched = 0;
                m_state = State::mid_line;
            }
            break;
        case State::mid_line: {
            const std::size_t next = copy_rest_of_line(in, pos, out);
            if (next == std::string_view::npos) {
                return;
            }
            pos = next;
            m_state = State::line_start;
            break;
        }
        }
    }
}

void Unquoter::finish(std::string& out)
{
    if (m_state == State::gt_run) {
        out.push_back('>');
    } else if (m_state == State::matching) {
        out.push_back('>');
        out.append(from_prefix.substr(0, m_matched));
    }
    m_matched = 0;
    m_state = State::line_start;
}

// --- the header section ------------------------------------------------------------------------

void HeaderScanner::reset()
{
    *this = HeaderScanner{};
}

void HeaderScanner::end_field_name(Sha256& hash)
{
    std::string_view name(m_name);
    name.remove_suffix(1); // the colon
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) {
        name.remove_suffix(1);
    }
    m_skipping = false;
    for (const std::string_view left_out : fields_left_out_of_digest) {
        if (iequals(name, left_out)) {
            m_skipping = true;
        }
    }
    if (!m_skipping) {
        hash.update(m_name);
    }
    if (iequals(name, "X-UIDL") && !m_x_uidl_seen) {
        m_x_uidl_seen = true;
        m_in_x_uidl = true;
        m_x_uidl_value.clear();
        m_x_uidl_too_long = false;
    }
    m_name.clear();
}

void HeaderScanner::end_line()
{
    if (!m_in_x_uidl) {
        return;
    }
    m_in_x_uidl = false;
    const std::string_view value = trim(m_x_uidl_value);
    if (!m_x_uidl_too_long && is_valid_unique_id(value)) {
        m_x_uidl = std::string(value);
        m_x_uidl_open = true;
    }
}

void HeaderScanner::feed(std::string_view in, Sha256& hash)
{
    std::size_t pos = 0;
    while (pos < in.size() && m_state != State::done) {
        const char c = in[pos];
        switch (m_state) {
        case State::line_start:
            if (c == ' ' || c == '\t') {
                // A folded continuation of the previous field. An X-UIDL value spread over lines
                // is not used: unique-ids hold no white space.
                if (m_x_uidl_open) {
                    m_x_uidl.clear();
                    m_x_uidl_open = false;
                }
                m_state = State::value;
                break;
            }
            m_x_uidl_open = false;
            if (c == '\n') {
                hash.update("\n");
                m_state = State::done;
                ++pos;
                break;
            }
            if (c == '\r') {
                m_state = State::cr_at_line_start;
                ++pos;
                break;
            }
            m_skipping = false;
            m_name.clear();
            m_state = State::name;
            break;
        case State::cr_at_line_start:
            if (c == '\n') {
                hash.update("\r\n");
                m_state = State::done;
                ++pos;
                break;
            }
            m_skipping = false;
            m_name.assign("\r");
            m_state = State::name;
            break;
        case State::name:
            if (c == ':') {
                m_name.push_back(c);
                ++pos;
                end_field_name(hash);
                m_state = State::value;
            } else if (c == '\n' || m_name.size() >= max_field_name_octets) {
                // Not a field we look for: hash it as it is.
                hash.update(m_name);
                m_name.clear();
                m_state = State::value;
            } else {
                m_name.push_back(c);
                ++pos;
            }
            break;
        case State::value: {
            const void* found = std::memchr(in.data() + pos, '\n', in.size() - pos);
            const std::size_t end =
                found == nullptr ? in.size()
                                 : static_cast<std::size_t>(static_cast<const char*>(found) - in.data());
            const std::string_view piece = in.substr(pos, end - pos);
            if (!m_skipping) {
                hash.update(piece);
            }
            if (m_in_x_uidl) {
                if (m_x_uidl_value.size() + piece.size() > max_x_uidl_value_octets) {
                    m_x_uidl_too_long = true;
                } else {
                    m_x_uidl_value.append(piece);
                }
            }
            pos = end;
            if (found != nullptr) {
                if (!m_skipping) {
                    hash.update("\n");
                }
                end_line();
                ++pos;
                m_state = State::line_start;
            }
            break;
        }
        case State::done: break;
        }
    }
}

void HeaderScanner::finish(Sha256& hash)
{
    if (m_state == State::name) {
        hash.update(m_name);
    } else if (m_state == State::cr_at_line_start) {
        hash.update("\r");
    } else if (m_state == State::value) {
        end_line();
    }
    m_state = State::done;
}

// --- the parser --------------------------------------------------------------------------------

Parser::Parser(std::uint64_t start_offset) : m_offset(start_offset), m_line_start(start_offset) {}

void Parser::feed_counter(std::string_view unquoted)
{
    if (unquoted.empty()) {
        return;
    }
    if (m_counter_pending_lf) {
        m_counter.feed("\n");
        m_counter_pending_lf = false;
    }
    // The last LF is withheld so that the size without it is known too (see ParsedMessage).
    if (unquoted.back() == '\n') {
        m_counter.feed(unquoted.substr(0, unquoted.size() - 1));
        m_counter_pending_lf = true;
    } else {
        m_counter.feed(unquoted);
    }
}

void Parser::feed_content(std::string_view bytes)
{
    m_header.feed(bytes, m_hash);
    m_scratch.clear();
    m_unquoter.feed(bytes, m_scratch);
    feed_counter(m_scratch);
}

void Parser::give_back_withheld()
{
    if (m_mode == Mode::content) {
        if (m_pending_lf) {
            feed_content("\n");
        }
        feed_content(from_prefix.substr(0, m_matched));
    }
    m_pending_lf = false;
    m_matched = 0;
}

void Parser::end_message(std::uint64_t content_end, std::vector<ParsedMessage>& out)
{
    m_message.content_end = content_end;
    m_scratch.clear();
    m_unquoter.finish(m_scratch);
    feed_counter(m_scratch);
    m_header.finish(m_hash);
    protocol::WireSizeCounter without_final_lf = m_counter;
    m_message.wire_octets_without_final_lf = without_final_lf.finish();
    m_message.ends_with_lf = m_counter_pending_lf;
    if (m_counter_pending_lf) {
        m_counter.feed("\n");
    }
    m_message.wire_octets = m_counter.finish();
    m_message.digest = to_base64url_32(m_hash.finish());
    m_message.x_uidl = m_header.x_uidl();
    out.push_back(std::move(m_message));
    m_message = ParsedMessage{};
}

void Parser::begin_message(std::vector<ParsedMessage>& out)
{
    if (m_mode == Mode::content) {
        end_message(m_line_start - 1, out); // the withheld LF before this line is the separator
    }
    m_pending_lf = false;
    m_matched = 0;
    m_message = ParsedMessage{};
    m_message.from_offset = m_line_start;
    m_hash.reset();
    m_hash.update(from_prefix);
    m_header.reset();
    m_unquoter = Unquoter{};
    m_counter = protocol::WireSizeCounter{};
    m_counter_pending_lf = false;
    m_mode = Mode::from_line;
    m_at_line_start = false;
}

void Parser::feed(std::string_view in, std::vector<ParsedMessage>& out)
{
    const char* const data = in.data();
    const std::size_t size = in.size();
    std::size_t pos = 0;
    while (pos < size) {
        if (m_at_line_start && boundary_allowed()) {
            const char c = data[pos];
            if (m_matched == 0 && c == '\n' && m_mode == Mode::content) {
                // Another empty line: the withheld LF was message text after all; this one is
                // withheld in turn.
                feed_content("\n");
                ++pos;
                ++m_offset;
                m_line_start = m_offset;
                continue;
            }
            if (c == from_prefix[m_matched]) {
                ++pos;
                ++m_offset;
                if (++m_matched == from_prefix.size()) {
                    begin_message(out);
                }
                continue;
            }
            give_back_withheld();
        } else if (m_at_line_start && m_mode == Mode::content && data[pos] == '\n') {
            m_pending_lf = true;
            ++pos;
            ++m_offset;
            m_line_start = m_offset;
            continue;
        }
        m_at_line_start = false;
        const void* found = std::memchr(data + pos, '\n', size - pos);
        const std::size_t end =
            found == nullptr ? size : static_cast<std::size_t>(static_cast<const char*>(found) - data) + 1;
        const std::string_view piece(data + pos, end - pos);
        if (m_mode == Mode::from_line) {
            m_hash.update(piece);
        } else if (m_mode == Mode::content) {
            feed_content(piece);
        }
        m_offset += piece.size();
        pos = end;
        if (found != nullptr) {
            m_at_line_start = true;
            m_line_start = m_offset;
            if (m_mode == Mode::from_line) {
                m_mode = Mode::content;
                m_message.content_offset = m_offset;
            }
        }
    }
}

void Parser::finish(std::vector<ParsedMessage>& out)
{
    if (m_at_line_start && m_matched > 0) {
        give_back_withheld();
    }
    switch (m_mode) {
    case Mode::garbage: break;
    case Mode::from_line:
        // A From_ line without its LF at the end of the file: a message with no content.
        m_message.content_offset = m_offset;
        end_message(m_offset, out);
        break;
    case Mode::content:
        // A last empty line is the separator, as it would be before another From_ line.
        end_message(m_pending_lf ? m_offset - 1 : m_offset, out);
        break;
    }
    m_mode = Mode::garbage;
    m_pending_lf = false;
    m_matched = 0;
    m_at_line_start = true;
    m_line_start = m_offset;
}

std::vector<MessageText> parse_all(std::string_view mbox)
{
    std::vector<ParsedMessage> parsed;
    Parser parser;
    parser.feed(mbox, parsed);
    parser.finish(parsed);
    std::vector<MessageText> out;
    for (auto& message : parsed) {
        MessageText text;
        Unquoter unquoter;
        unquoter.feed(mbox.substr(message.content_offset, message.content_end - message.content_offset),
                      text.content);
        unquoter.finish(text.content);
        text.parsed = std::move(message);
        out.push_back(std::move(text));
    }
    return out;
}

} // namespace pigeon::storage::mbox
