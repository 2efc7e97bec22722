// ClientSession: the client side of POP3 without I/O, the mirror of ServerSession.
//
// The driver queues commands with send() (pipelining is allowed: every command's expected reply
// shape is queued in order), writes take_output() to the socket, feeds received bytes to
// receive(), and pulls parsed events with next_event(). The session knows which replies are
// multi-line (CAPA, LIST, UIDL, RETR, TOP, a bare AUTH) and streams message bodies un-stuffed in
// bounded pieces, so a 50 MB message never sits in memory whole.
//
// STLS: after the server's +OK, any byte already received is an attack (plaintext injected
// before the handshake, the CVE-2021-22947 class) and yields an error event; otherwise a
// StartTls event asks the driver for the handshake, after which on_tls_started() resumes.
#pragma once

#include "core/result.hpp"
#include "protocol/command.hpp"
#include "protocol/dot_unstuffer.hpp"
#include "protocol/line_reader.hpp"
#include "protocol/reply.hpp"

#include <deque>
#include <optional>
#include <string>
#include <system_error>
#include <variant>

namespace pigeon::protocol {

namespace event {
struct Greeting {
    Reply reply;
    std::optional<std::string> apop_timestamp;
};
// A single-line reply, or the status line that opens a multi-line reply.
struct Status {
    std::string_view keyword; // the command it answers ("RETR", ...)
    Reply reply;
};
struct ListingLine {
    std::string text; // a line of CAPA, LIST, UIDL or AUTH, dot-stuffing removed
};
struct BodyData {
    std::string bytes; // a piece of a RETR or TOP body, dot-stuffing removed, CRLF kept
};
struct End {}; // the multi-line reply is complete
struct Continuation {
    std::string challenge_base64; // RFC 5034 "+ " line: answer with send_sasl_response()
};
struct StartTls {};
struct Failure {
    std::error_code error; // the server broke the protocol; close the connection
};
} // namespace event

using ClientEvent = std::variant<event::Greeting, event::Status, event::ListingLine, event::BodyData,
                                 event::End, event::Continuation, event::StartTls, event::Failure>;

class ClientSession {
public:
    ClientSession();

    void send(const Command& command);
    // A SASL continuation answer: base64, or "*" to cancel (RFC 5034 §4).
    void send_sasl_response(std::string_view line);

    [[nodiscard]] std::string take_output() { return std::exchange(m_output, {}); }
    [[nodiscard]] bool has_output() const noexcept { return !m_output.empty(); }

    void receive(std::string_view bytes);
    [[nodiscard]] std::optional<ClientEvent> next_event();

    void on_tls_started();

    // Replies still expected (a driver reads while this is non-zero).
    [[nodiscard]] std::size_t pending_replies() const noexcept { return m_expected.size(); }

    // Largest piece of body handed out in one BodyData event.
    static constexpr std::size_t body_chunk_octets = std::size_t{64} * 1024;

private:
    enum class Shape {
        greeting,
        single,
        listing,
        body,
        sasl,
        stls
    };
    struct Expectation {
        Shape shape;
        std::string_view keyword;
    };
    enum class Reading {
        status,
        listing,
        body
    };

    ClientEvent fail_with(errc error);

    LineReader m_reader;
    std::string m_output;
    std::deque<Expectation> m_expected;
    Reading m_reading = Reading::status;
    DotUnstuffer m_unstuffer;
    bool m_tls_pending = false;
    bool m_pending_end = false;
    bool m_failed = false;
};

// The wire form of a command, CRLF included.
[[nodiscard]] std::string format_command(const Command& command);

} // namespace pigeon::protocol
