// ServerSession: the whole POP3 server state machine (RFC 1939 §3-§6, with RFC 2449 CAPA,
// RFC 2595 STLS, RFC 5034 AUTH, RFC 6856 UTF8 and RFC 1460 LAST), without I/O.
//
// The driver feeds received bytes to receive() and asks next_step() what to do. Each step is one
// piece of I/O or one lookup the driver performs and reports back through the matching on_*()
// call. The session owns the states (AUTHORIZATION, TRANSACTION, UPDATE), message numbering,
// deletion marks and bad-command counting; it never touches a socket, a file or a clock.
//
// Rules at a glance:
// - Commands are processed in order, one at a time; replies to pipelined commands are coalesced
//   into one SendBytes until a command needs the driver (credentials, maildrop, a message body).
// - Deletions are marks until QUIT in TRANSACTION; a session destroyed without QUIT commits
//   nothing (RFC 1939 §6).
// - Deleted messages answer -ERR to LIST, RETR, TOP, DELE and UIDL; numbers are never reused.
// - After STLS's +OK every byte buffered so far is discarded (RFC 2595 §4, CVE-2011-0411 class).
// - `max_bad_commands` consecutive -ERR replies end the connection.
#pragma once

#include "core/limits.hpp"
#include "core/message_listing.hpp"
#include "protocol/command.hpp"
#include "protocol/line_reader.hpp"
#include "sasl/mechanism.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

namespace pigeon::protocol {

struct ServerPolicy {
    // Text of the greeting after "+OK ".
    std::string greeting = "Pigeon POP3 server ready.";
    // RFC 1939 §7: a unique "<...@host>" for this connection; empty disables APOP. The driver
    // makes it (it needs a clock and randomness, which the session must not have).
    std::string apop_timestamp;
    bool tls_available = false; // STLS can be offered on this connection
    bool tls_active = false;    // already inside TLS (implicit TLS, RFC 8314)
    // Plaintext credentials (USER/PASS, PLAIN) on a connection without TLS. The driver decides
    // (loopback by default); inside TLS they are always allowed.
    bool plaintext_auth_without_tls = false;
    std::vector<std::string> sasl_mechanisms = {"PLAIN"}; // enabled, upper case
    // RFC 9266 tls-exporter channel-binding data of the TLS session (empty without TLS); the
    // -PLUS mechanisms are offered only with it.
    std::string tls_exporter;
    // The user a verified TLS client certificate maps to; EXTERNAL is offered only with one.
    std::string tls_client_identity;
    // RFC 5929 tls-server-end-point data (the hash of the server's certificate); with it the
    // -PLUS mechanisms are offered even where the TLS session has no exporter.
    std::string tls_server_end_point;
    std::optional<std::uint32_t> login_delay_seconds; // RFC 2449 §6.5, advertised
    std::optional<std::uint32_t> expire_days;         // RFC 2449 §6.7, advertised
    bool expire_never = false;                        // advertise "EXPIRE NEVER"
    std::string implementation = "Pigeon";            // RFC 2449 §6.9
    bool utf8 = true;                                 // RFC 6856
    bool last_command = false;                        // RFC 1460 LAST, for old clients
    std::uint32_t max_bad_commands = limits::default_max_bad_commands;
    std::uint32_t max_auth_failures = limits::default_max_auth_failures;
};

namespace step {
struct SendBytes {
    std::string bytes;
};
struct CheckCredentials {
    sasl::Credentials credentials;
    std::string mechanism; // "USER", "APOP" or the SASL mechanism, for logs
};
// A SASL mechanism (SCRAM) needs the user's stored secret: look it up, answer with
// on_secret_looked_up().
struct LookupSecret {
    std::string user;
    std::string mechanism;
};
struct OpenMaildrop {
    std::string user; // the canonical name the credential check returned
    // The name comes from the TLS client certificate alone (EXTERNAL): no user database was
    // asked, so the driver must check that the user exists and may log in before opening.
    bool certificate_only = false;
};
struct StreamMessage {
    MessageIndex message;
    std::optional<std::uint32_t> top_body_lines; // TOP; nothing for RETR
    std::string ok_line;                         // to send once the message is open, before the stuffed body
};
struct CommitUpdate {
    std::vector<MessageIndex> deletions;
    std::vector<MessageIndex> retrieved; // for EXPIRE policies
};
struct StartTls {};
struct Close {};
struct NeedInput {};
struct Wait {}; // a step is in progress; call the matching on_*() first
} // namespace step

using Step = std::variant<step::SendBytes, step::CheckCredentials, step::LookupSecret, step::OpenMaildrop,
                          step::StreamMessage, step::CommitUpdate, step::StartTls, step::Close,
                          step::NeedInput, step::Wait>;

enum class SessionState {
    authorization,
    transaction,
    update,
    closed
};

struct AuthResult {
    std::error_code error; // empty on success; errc::auth_failed, login_delay, ...
    std::string user;      // canonical user name on success
};

class ServerSession {
public:
    explicit ServerSession(ServerPolicy policy);

    void receive(std::string_view bytes);
    [[nodiscard]] Step next_step();

    void on_credentials_checked(AuthResult result);
    void on_maildrop_opened(std::error_code error, std::shared_ptr<const MessageListing> listing);
    void on_message_sent();
    // The message could not be opened: the client gets -ERR. A failure after the ok_line was
    // sent cannot be reported in-band; the driver closes the connection instead.
    void on_message_failed(std::error_code error);
    void on_update_committed(std::error_code error);
    // `tls_exporter`: the new TLS session's RFC 9266 channel-binding data, for -PLUS mechanisms;
    // `client_identity`: the user a verified client certificate maps to, for EXTERNAL.
    void on_tls_started(std::string tls_exporter = {}, std::string client_identity = {},
                        std::string server_end_point = {});
    // The stored secret for a LookupSecret step: nothing for an unknown user (the mechanism
    // then fails without saying so), or an error (errc::auth_temporary_failure).
    void on_secret_looked_up(std::error_code error, std::optional<sasl::StoredSecret> secret);

    [[nodiscard]] SessionState state() const noexcept { return m_state; }
    [[nodiscard]] bool tls_active() const noexcept { return m_policy.tls_active; }
    [[nodiscard]] const std::string& user() const noexcept { return m_user; }
    [[nodiscard]] std::uint32_t bad_commands() const noexcept { return m_bad_commands; }
    // Wrong credentials so far on this connection, whatever the mechanism (for the driver's
    // brute-force accounting of mechanisms that verify their own proofs, like SCRAM).
    [[nodiscard]] std::uint32_t failed_authentications() const noexcept { return m_failed_authentications; }
    // The client sent QUIT (the session ends because it asked to).
    [[nodiscard]] bool quit_received() const noexcept { return m_quit; }

private:
    enum class Pending {
        none,
        credentials,
        secret,
        maildrop,
        message,
        commit,
        tls
    };

    void handle_line(std::string_view line);
    void handle_sasl_line(std::string_view line);
    // A failed login's -ERR, counted towards the per-connection limit when it was a guess.
    void count_failure_and_reply(std::error_code error);
    void handle_command(Command command);
    // Answers -ERR with the table's code and text (or `text`), counting a bad command.
    void reply_error(std::error_code error, std::string_view text = {});
    void reply_ok(std::string_view text);

    void do_user(command::User& cmd);
    void do_pass(command::Pass& cmd);
    void do_apop(command::Apop& cmd);
    void do_auth(command::Auth& cmd);
    void do_capa();
    void do_stls();
    void do_utf8();
    void do_quit();
    void do_stat();
    void do_list(const command::List& cmd);
    void do_uidl(const command::Uidl& cmd);
    void do_retr(MessageNumber number, std::optional<std::uint32_t> top_lines);
    void do_dele(MessageNumber number);
    void do_rset();
    void do_last();

    void handle_sasl_step(sasl::ServerStep result);
    // Checks a message number against the snapshot and the deletion marks.
    [[nodiscard]] std::error_code check_message(MessageNumber number) const noexcept;
    [[nodiscard]] bool plaintext_allowed() const noexcept;
    // Whether a SASL mechanism is offered on this connection now (plaintext policy, -PLUS needs TLS).
    [[nodiscard]] bool mechanism_offered(std::string_view mechanism) const noexcept;
    [[nodiscard]] std::string maildrop_summary() const;
    [[nodiscard]] std::size_t line_limit() const noexcept;

    ServerPolicy m_policy;
    LineReader m_reader;
    std::string m_output;
    std::optional<Step> m_action; // the step waiting to be handed to the driver
    Pending m_pending = Pending::none;
    bool m_close_after_output = false;
    bool m_quit = false;
    SessionState m_state = SessionState::authorization;

    bool m_utf8 = false;
    std::string m_user;        // after USER, then the logged-in user
    bool m_user_given = false; // the previous command was a successful USER
    std::unique_ptr<sasl::ServerMechanism> m_sasl;
    std::optional<std::string> m_sasl_authenticated; // proven user, waiting for the client's empty line
    bool m_proven_by_certificate = false;            // the SASL success was EXTERNAL's
    bool m_bearer_attempt = false;    // the credentials being checked are an OAuth bearer token
    bool m_bearer_error_sent = false; // RFC 7628 error challenge sent; the next line ends the AUTH
    std::uint32_t m_bad_commands = 0;
    std::uint32_t m_auth_failures = 0;
    std::uint32_t m_failed_authentications = 0;

    std::shared_ptr<const MessageListing> m_listing;
    std::vector<bool> m_deleted;
    std::vector<bool> m_retrieved;
    std::uint32_t m_deleted_count = 0;
    std::uint64_t m_deleted_octets = 0;
    std::uint64_t m_total_octets = 0;
    std::uint32_t m_highest_accessed = 0;        // RFC 1460 LAST
    std::pair<MessageIndex, bool> m_streaming{}; // the message being sent, and whether whole (RETR)
};

} // namespace pigeon::protocol
