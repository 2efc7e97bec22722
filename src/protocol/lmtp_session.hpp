// LmtpSession: the LMTP server state machine (RFC 2033), with PIPELINING (RFC 2920), 8BITMIME
// (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034/3463), SIZE (RFC 1870) and CHUNKING (RFC 3030), without
// I/O, beside the POP3 ServerSession and in the same shape: the driver feeds received bytes to
// receive() and performs the steps next_step() hands it, reporting back through on_*().
//
// Rules at a glance:
// - LHLO first (HELO and EHLO are refused: this is LMTP); MAIL, then RCPT per recipient (the
//   driver checks each: unknown user, quota), then DATA or BDAT chunks.
// - The message reaches the driver as it arrives (MessageData steps, dot-unstuffed for DATA, raw
//   for BDAT), never held whole; after its end the driver answers once per accepted recipient
//   (RFC 2033 §4.2), and the session sends those replies in RCPT order.
// - A message over max_message_size is refused up front (MAIL SIZE=) or, when it grows past the
//   bound, read to its end and discarded (AbortMessage): 552 5.3.4 for every recipient.
// - Command lines are bounded (limits::max_lmtp_command_octets); `max_bad_commands` consecutive
//   errors end the connection with 421.
#pragma once

#include "core/limits.hpp"
#include "protocol/dot_unstuffer.hpp"
#include "protocol/line_reader.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pigeon::protocol {

struct LmtpPolicy {
    std::string host_name = "localhost"; // in the greeting and the LHLO reply
    std::string greeting = "Pigeon LMTP ready";
    std::uint64_t max_message_size = std::uint64_t{50} * 1024 * 1024; // advertised as SIZE
    std::uint32_t max_recipients = 100;
    std::uint32_t max_bad_commands = limits::default_max_bad_commands;
};

// One reply: "250 2.1.5 Ok". `enhanced` may be empty (the greeting, LHLO).
struct LmtpReply {
    int code = 250;
    std::string enhanced = "2.0.0";
    std::string text = "Ok";

    [[nodiscard]] bool positive() const noexcept { return code >= 200 && code < 300; }
    [[nodiscard]] std::string line() const;
};

namespace lmtp_step {
struct SendBytes {
    std::string bytes;
};
// RCPT TO: is the address deliverable (a user, not over quota)? Answer with on_recipient_checked().
struct CheckRecipient {
    std::string address;
    std::uint64_t declared_size = 0; // MAIL FROM's SIZE=, 0 when not given
};
// A message for these recipients (the accepted ones, in order) begins; its bytes follow as
// MessageData steps. No answer is needed.
struct BeginMessage {
    std::string sender; // empty for the null reverse-path <>
    std::vector<std::string> recipients;
};
struct MessageData {
    std::string bytes; // CRLF line ends as sent
};
// The whole message was handed over: make it durable for every recipient, then answer with
// on_message_delivered(), one reply per recipient of BeginMessage.
struct EndMessage {
    std::uint64_t octets = 0;
};
// The message begun will not be delivered (it grew past the size bound, or RSET/LHLO came between
// BDAT chunks): drop what was written.
// The session answers the client itself.
struct AbortMessage {
    LmtpReply reason;
};
struct Close {};
struct NeedInput {};
struct Wait {}; // a step is in progress; call the matching on_*() first
} // namespace lmtp_step

using LmtpStep = std::variant<lmtp_step::SendBytes, lmtp_step::CheckRecipient, lmtp_step::BeginMessage,
                              lmtp_step::MessageData, lmtp_step::EndMessage, lmtp_step::AbortMessage,
                              lmtp_step::Close, lmtp_step::NeedInput, lmtp_step::Wait>;

class LmtpSession {
public:
    explicit LmtpSession(LmtpPolicy policy);

    void receive(std::string_view bytes);
    [[nodiscard]] LmtpStep next_step();

    void on_recipient_checked(const LmtpReply& result);
    // One reply per recipient of the BeginMessage, in its order.
    void on_message_delivered(std::vector<LmtpReply> replies);

    // The client sent QUIT.
    [[nodiscard]] bool quit_received() const noexcept { return m_quit; }
    [[nodiscard]] bool closed() const noexcept { return m_closed; }
    // Inside DATA or BDAT: a connection lost now loses the message being received (the driver
    // drops its deliveries).
    [[nodiscard]] bool in_message() const noexcept { return m_message_begun; }

private:
    enum class Mode {
        command,
        data, // DATA: dot-terminated
        bdat  // BDAT: a counted chunk
    };
    enum class Pending {
        none,
        recipient,
        delivery
    };

    void handle_line(std::string_view line);
    void do_lhlo(std::string_view argument);
    void do_mail(std::string_view argument);
    void do_rcpt(std::string_view argument);
    void do_data(std::string_view argument);
    void do_bdat(std::string_view argument);
    void do_rset();
    void do_quit();

    // Message bytes from the buffer: true if a step was set (or the message ended).
    bool pump_message();
    void finish_message();
    void start_message();
    void reset_transaction();
    // Hands the driver an AbortMessage for a message begun and not finished (BDAT chunks).
    void abandon_message();

    void reply(const LmtpReply& value);
    void reply(int code, std::string_view enhanced, std::string_view text);
    // A refused command: counted towards max_bad_commands.
    void refuse(int code, std::string_view enhanced, std::string_view text);

    LmtpPolicy m_policy;
    LineReader m_reader;
    DotUnstuffer m_unstuffer;
    std::string m_output;
    std::optional<LmtpStep> m_action;
    std::string m_sender;
    std::vector<std::string> m_recipients; // accepted
    std::string m_checking;                // the address being checked
    LmtpReply m_discard_reason;
    LmtpReply m_chunk_refusal;
    std::uint64_t m_declared_size = 0;
    std::uint64_t m_message_octets = 0;
    std::uint64_t m_chunk_left = 0; // BDAT octets still to read
    std::uint32_t m_rcpt_commands = 0;
    std::uint32_t m_bad_commands = 0;
    Pending m_pending = Pending::none;
    Mode m_mode = Mode::command;

    bool m_greeted = false; // LHLO seen
    bool m_have_sender = false;
    bool m_message_begun = false;       // BeginMessage handed to the driver
    bool m_discarding = false;          // the message is read to its end but not delivered
    bool m_last_chunk = false;          // BDAT ... LAST
    bool m_chunk_refused = false;       // this chunk is read and dropped (error already decided)
    bool m_bdat_used = false;           // DATA is refused after BDAT in one transaction
    bool m_finish_after_action = false; // the message ended with a data step still to hand over
    bool m_quit = false;
    bool m_close_after_output = false;
    bool m_closed = false;
};

} // namespace pigeon::protocol
