#include "protocol/lmtp_session.hpp"

#include "core/strings.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <utility>

namespace pigeon::protocol {
namespace {

// RFC 5321 §4.5.3.1.3: a path is at most 256 octets.
constexpr std::size_t max_path_octets = 256;

struct Path {
    std::string address; // without the angle brackets and any source route; empty for <>
    std::string_view parameters;
};

// "<user@example.org> SIZE=100" (after "FROM:" or "TO:"). A space after the colon is tolerated,
// as Postfix and Dovecot do; a source route (<@a,@b:user@d>) is dropped (RFC 5321 §4.1.2).
std::optional<Path> parse_path(std::string_view text)
{
    while (!text.empty() && text.front() == ' ') {
        text.remove_prefix(1);
    }
    if (text.empty() || text.front() != '<') {
        return std::nullopt;
    }
    bool quoted = false;
    std::size_t end = 1;
    for (; end < text.size(); ++end) {
        const char c = text[end];
        if (quoted && c == '\\' && end + 1 < text.size()) {
            ++end;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (c == '>' && !quoted) {
            break;
        }
    }
    if (end >= text.size() || end - 1 > max_path_octets) {
        return std::nullopt;
    }
    std::string_view inside = text.substr(1, end - 1);
    if (inside.starts_with('@')) {
        const auto colon = inside.find(':');
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        inside.remove_prefix(colon + 1);
    }
    for (const char c : inside) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            return std::nullopt;
        }
    }
    std::string_view rest = text.substr(end + 1);
    if (!rest.empty() && rest.front() != ' ') {
        return std::nullopt;
    }
    while (!rest.empty() && rest.front() == ' ') {
        rest.remove_prefix(1);
    }
    return Path{std::string(inside), rest};
}

// "FROM:" / "TO:" at the start of the argument, case-insensitively.
bool take_keyword(std::string_view& argument, std::string_view keyword)
{
    if (argument.size() < keyword.size() || !iequals(argument.substr(0, keyword.size()), keyword)) {
        return false;
    }
    argument.remove_prefix(keyword.size());
    return true;
}

} // namespace

std::string LmtpReply::line() const
{
    if (enhanced.empty()) {
        return fmt::format("{} {}\r\n", code, text);
    }
    return fmt::format("{} {} {}\r\n", code, enhanced, text);
}

LmtpSession::LmtpSession(LmtpPolicy policy) : m_policy(std::move(policy))
{
    m_output = fmt::format("220 {} {}\r\n", m_policy.host_name, m_policy.greeting);
}

void LmtpSession::receive(std::string_view bytes)
{
    if (!m_closed && !m_close_after_output) {
        m_reader.append(bytes);
    }
}

LmtpStep LmtpSession::next_step()
{
    for (;;) {
        if (m_action) {
            LmtpStep step = std::move(*m_action);
            m_action.reset();
            return step;
        }
        if (m_finish_after_action) {
            m_finish_after_action = false;
            finish_message();
            continue;
        }
        if (m_closed) {
            return lmtp_step::Close{};
        }
        if (m_pending != Pending::none) {
            return lmtp_step::Wait{};
        }
        if (m_close_after_output) {
            if (!m_output.empty()) {
                return lmtp_step::SendBytes{std::exchange(m_output, {})};
            }
            m_closed = true;
            return lmtp_step::Close{};
        }
        bool progressed = false;
        if (m_mode != Mode::command) {
            progressed = pump_message();
        } else if (auto event = m_reader.next(limits::max_lmtp_command_octets)) {
            progressed = true;
            if (event->kind == LineEvent::Kind::too_long) {
                refuse(500, "5.5.2", "Line too long");
            } else {
                handle_line(event->text);
            }
        }
        if (!progressed) {
            if (!m_output.empty()) {
                return lmtp_step::SendBytes{std::exchange(m_output, {})};
            }
            return lmtp_step::NeedInput{};
        }
    }
}

void LmtpSession::on_recipient_checked(const LmtpReply& result)
{
    if (m_pending != Pending::recipient) {
        return;
    }
    m_pending = Pending::none;
    if (result.positive()) {
        m_recipients.push_back(std::move(m_checking));
        m_bad_commands = 0;
    }
    m_checking.clear();
    reply(result);
}

void LmtpSession::on_message_delivered(std::vector<LmtpReply> replies)
{
    if (m_pending != Pending::delivery) {
        return;
    }
    m_pending = Pending::none;
    for (std::size_t i = 0; i < m_recipients.size(); ++i) {
        reply(i < replies.size() ? replies[i]
                                 : LmtpReply{451, "4.3.0", "Temporary failure: no delivery result"});
    }
    reset_transaction();
}

// --- commands -------------------------------------------------------------------------------

void LmtpSession::handle_line(std::string_view line)
{
    const auto space = line.find(' ');
    const std::string verb = to_ascii_upper(line.substr(0, space));
    const std::string_view argument =
        space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
    if (verb == "LHLO") {
        do_lhlo(argument);
    } else if (verb == "MAIL") {
        do_mail(argument);
    } else if (verb == "RCPT") {
        do_rcpt(argument);
    } else if (verb == "DATA") {
        do_data(argument);
    } else if (verb == "BDAT") {
        do_bdat(argument);
    } else if (verb == "RSET") {
        do_rset();
    } else if (verb == "NOOP") {
        reply(250, "2.0.0", "Ok");
    } else if (verb == "QUIT") {
        do_quit();
    } else if (verb == "VRFY") {
        reply(252, "2.5.2", "Cannot VRFY; send the message and RCPT will tell");
    } else if (verb == "HELO" || verb == "EHLO") {
        refuse(500, "5.5.1", "This is an LMTP server: use LHLO");
    } else if (verb == "STARTTLS" || verb == "AUTH") {
        refuse(502, "5.5.1", "Not offered over LMTP");
    } else {
        refuse(500, "5.5.2", "Unknown command");
    }
}

void LmtpSession::do_lhlo(std::string_view argument)
{
    if (argument.empty()) {
        refuse(501, "5.5.4", "LHLO needs a host name");
        return;
    }
    abandon_message();
    reset_transaction();
    m_greeted = true;
    m_bad_commands = 0;
    m_output += fmt::format("250-{}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
                            "250-SIZE {}\r\n250 CHUNKING\r\n",
                            m_policy.host_name, m_policy.max_message_size);
}

void LmtpSession::do_mail(std::string_view argument)
{
    if (!m_greeted) {
        refuse(503, "5.5.1", "LHLO first");
        return;
    }
    if (m_have_sender) {
        refuse(503, "5.5.1", "Nested MAIL command");
        return;
    }
    if (!take_keyword(argument, "FROM:")) {
        refuse(501, "5.5.4", "Syntax: MAIL FROM:<address>");
        return;
    }
    const auto path = parse_path(argument);
    if (!path) {
        refuse(501, "5.1.7", "Bad sender address syntax");
        return;
    }
    std::uint64_t size = 0;
    for (const auto parameter : split_words(path->parameters)) {
        const auto equals = parameter.find('=');
        const std::string key = to_ascii_upper(parameter.substr(0, equals));
        const std::string_view value =
            equals == std::string_view::npos ? std::string_view{} : parameter.substr(equals + 1);
        if (key == "SIZE") {
            const auto parsed = parse_u64(value);
            if (!parsed) {
                refuse(501, "5.5.4", "Bad SIZE parameter");
                return;
            }
            size = *parsed;
        } else if (key == "BODY") {
            const std::string body = to_ascii_upper(value);
            if (body != "7BIT" && body != "8BITMIME") {
                refuse(501, "5.5.4", "BODY must be 7BIT or 8BITMIME");
                return;
            }
        } else {
            refuse(555, "5.5.4", fmt::format("Unsupported parameter {}", key));
            return;
        }
    }
    if (size > m_policy.max_message_size) {
        refuse(552, "5.3.4", "Message size exceeds fixed maximum message size");
        return;
    }
    m_have_sender = true;
    m_sender = path->address;
    m_declared_size = size;
    m_bad_commands = 0;
    reply(250, "2.1.0", "Ok");
}

void LmtpSession::do_rcpt(std::string_view argument)
{
    if (!m_have_sender) {
        refuse(503, "5.5.1", "MAIL first");
        return;
    }
    if (m_message_begun) {
        // Between BDAT chunks the message already has its recipients.
        refuse(503, "5.5.1", "RCPT after BDAT");
        return;
    }
    if (!take_keyword(argument, "TO:")) {
        refuse(501, "5.5.4", "Syntax: RCPT TO:<address>");
        return;
    }
    const auto path = parse_path(argument);
    if (!path || path->address.empty()) {
        refuse(501, "5.1.3", "Bad recipient address syntax");
        return;
    }
    if (!path->parameters.empty()) {
        refuse(555, "5.5.4", "RCPT parameters are not supported");
        return;
    }
    if (++m_rcpt_commands > m_policy.max_recipients) {
        reply(452, "4.5.3", "Too many recipients");
        return;
    }
    m_checking = path->address;
    m_pending = Pending::recipient;
    m_action = lmtp_step::CheckRecipient{path->address, m_declared_size};
}

void LmtpSession::do_data(std::string_view argument)
{
    if (!argument.empty()) {
        refuse(501, "5.5.4", "DATA takes no argument");
        return;
    }
    if (!m_have_sender) {
        refuse(503, "5.5.1", "MAIL first");
        return;
    }
    if (m_recipients.empty()) {
        refuse(503, "5.5.1", "No valid recipients");
        return;
    }
    if (m_bdat_used) {
        refuse(503, "5.5.1", "DATA after BDAT");
        return;
    }
    m_bad_commands = 0;
    reply(354, "", "Start mail input; end with <CRLF>.<CRLF>");
    m_mode = Mode::data;
    m_unstuffer.reset();
    start_message();
}

void LmtpSession::do_bdat(std::string_view argument)
{
    const auto words = split_words(argument);
    const auto size = words.empty() ? std::nullopt : parse_u64(words[0]);
    const bool last = words.size() == 2 && iequals(words[1], "LAST");
    if (!size || words.size() > 2 || (words.size() == 2 && !last)) {
        // Without a readable size the chunk cannot be skipped: the connection cannot go on.
        refuse(501, "5.5.4", "Syntax: BDAT size [LAST]");
        m_close_after_output = true;
        return;
    }
    m_mode = Mode::bdat;
    m_chunk_left = *size;
    m_last_chunk = last;
    m_chunk_refused = false;
    // RFC 3030 §2: a chunk is read even when the command fails.
    if (!m_have_sender) {
        m_chunk_refused = true;
        m_chunk_refusal = LmtpReply{503, "5.5.1", "MAIL first"};
        return;
    }
    if (m_recipients.empty()) {
        m_chunk_refused = true;
        m_chunk_refusal = LmtpReply{503, "5.5.1", "No valid recipients"};
        return;
    }
    m_bdat_used = true;
    m_bad_commands = 0;
    if (!m_message_begun && !m_discarding) {
        start_message();
    }
}

void LmtpSession::do_rset()
{
    abandon_message();
    reset_transaction();
    reply(250, "2.0.0", "Ok");
}

void LmtpSession::do_quit()
{
    m_quit = true;
    reply(221, "2.0.0", fmt::format("{} closing connection", m_policy.host_name));
    m_close_after_output = true;
}

// --- the message ----------------------------------------------------------------------------

void LmtpSession::start_message()
{
    m_message_octets = 0;
    m_discarding = false;
    m_message_begun = true;
    m_action = lmtp_step::BeginMessage{m_sender, m_recipients};
}

bool LmtpSession::pump_message()
{
    const std::string_view raw = m_reader.peek_raw();
    if (m_mode == Mode::bdat && m_chunk_left == 0) {
        // The chunk is complete (or empty).
        m_mode = Mode::command;
        if (m_chunk_refused) {
            refuse(m_chunk_refusal.code, m_chunk_refusal.enhanced, m_chunk_refusal.text);
        } else if (m_last_chunk) {
            finish_message();
        } else {
            reply(250, "2.0.0", "Chunk received");
        }
        return true;
    }
    if (raw.empty()) {
        return false;
    }
    std::string bytes;
    bool complete = false;
    if (m_mode == Mode::data) {
        const auto progress = m_unstuffer.feed(raw, bytes);
        m_reader.consume_raw(progress.consumed);
        complete = progress.complete;
    } else {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(m_chunk_left, raw.size()));
        if (!m_chunk_refused) {
            bytes.assign(raw.substr(0, take));
        }
        m_reader.consume_raw(take);
        m_chunk_left -= take;
    }
    m_message_octets += bytes.size();
    if (!m_discarding && m_message_octets > m_policy.max_message_size) {
        m_discarding = true;
        m_discard_reason = LmtpReply{552, "5.3.4", "Message size exceeds fixed maximum message size"};
        m_action = lmtp_step::AbortMessage{m_discard_reason};
    } else if (!m_discarding && !bytes.empty()) {
        m_action = lmtp_step::MessageData{std::move(bytes)};
    }
    if (complete) {
        m_mode = Mode::command;
        if (!m_action) {
            finish_message();
        } else {
            // The data step goes first; the end follows on the next call.
            m_finish_after_action = true;
        }
    }
    return true;
}

void LmtpSession::finish_message()
{
    if (m_discarding) {
        for (std::size_t i = 0; i < m_recipients.size(); ++i) {
            reply(m_discard_reason);
        }
        reset_transaction();
        return;
    }
    m_pending = Pending::delivery;
    m_action = lmtp_step::EndMessage{m_message_octets};
}

void LmtpSession::abandon_message()
{
    // Between BDAT chunks a message is begun: RSET or LHLO drops it (RFC 3030 §4).
    if (m_message_begun && !m_discarding) {
        m_action = lmtp_step::AbortMessage{LmtpReply{250, "2.0.0", "Transaction reset"}};
    }
}

void LmtpSession::reset_transaction()
{
    m_have_sender = false;
    m_sender.clear();
    m_declared_size = 0;
    m_recipients.clear();
    m_rcpt_commands = 0;
    m_message_begun = false;
    m_discarding = false;
    m_message_octets = 0;
    m_bdat_used = false;
}

// --- replies --------------------------------------------------------------------------------

void LmtpSession::reply(const LmtpReply& value)
{
    m_output += value.line();
}

void LmtpSession::reply(int code, std::string_view enhanced, std::string_view text)
{
    reply(LmtpReply{code, std::string(enhanced), std::string(text)});
}

void LmtpSession::refuse(int code, std::string_view enhanced, std::string_view text)
{
    reply(code, enhanced, text);
    if (++m_bad_commands >= m_policy.max_bad_commands) {
        reply(421, "4.7.0", "Too many errors, closing connection");
        m_close_after_output = true;
    }
}

} // namespace pigeon::protocol
