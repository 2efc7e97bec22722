#include "protocol/server_session.hpp"

#include "core/base64.hpp"
#include "core/limits.hpp"
#include "core/strings.hpp"
#include "protocol/command_parser.hpp"
#include "protocol/response.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace pigeon::protocol {
namespace {

std::string plural(std::uint64_t count, std::string_view word)
{
    return fmt::format("{} {}{}", count, word, count == 1 ? "" : "s");
}

bool is_hex_digest(std::string_view digest) noexcept
{
    // RFC 1939 §7: the APOP digest is 16 octets as 32 hexadecimal digits.
    return digest.size() == 32 && std::all_of(digest.begin(), digest.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
           });
}

template <class T>
constexpr bool is_one_of_authorization_commands =
    std::is_same_v<T, command::User> || std::is_same_v<T, command::Pass> ||
    std::is_same_v<T, command::Apop> || std::is_same_v<T, command::Auth> ||
    std::is_same_v<T, command::Stls> || std::is_same_v<T, command::Utf8>;

template <class T>
constexpr bool is_one_of_transaction_commands =
    std::is_same_v<T, command::Stat> || std::is_same_v<T, command::List> ||
    std::is_same_v<T, command::Retr> || std::is_same_v<T, command::Dele> ||
    std::is_same_v<T, command::Noop> || std::is_same_v<T, command::Rset> || std::is_same_v<T, command::Top> ||
    std::is_same_v<T, command::Uidl> || std::is_same_v<T, command::Last>;

} // namespace

ServerSession::ServerSession(ServerPolicy policy) : m_policy(std::move(policy))
{
    std::string greeting = m_policy.greeting;
    if (!m_policy.apop_timestamp.empty()) {
        greeting += ' ';
        greeting += m_policy.apop_timestamp;
    }
    append_ok(m_output, greeting);
}

void ServerSession::receive(std::string_view bytes)
{
    // Bytes that arrive while TLS is being started, or after the session decided to close, are
    // never interpreted: before TLS they could be an injection (RFC 2595 §4).
    if (m_state == SessionState::closed || m_pending == Pending::tls || m_close_after_output ||
        m_state == SessionState::update) {
        return;
    }
    m_reader.append(bytes);
}

std::size_t ServerSession::line_limit() const noexcept
{
    return m_sasl ? limits::max_sasl_line_octets : limits::max_command_line_octets;
}

Step ServerSession::next_step()
{
    for (;;) {
        if (m_action || m_pending != Pending::none || m_close_after_output) {
            if (!m_output.empty()) {
                return step::SendBytes{std::exchange(m_output, {})};
            }
            if (m_action) {
                Step action = std::move(*m_action);
                m_action.reset();
                return action;
            }
            if (m_pending != Pending::none) {
                return step::Wait{};
            }
            m_state = SessionState::closed;
            return step::Close{};
        }
        if (m_state == SessionState::closed) {
            return step::Close{};
        }
        const auto event = m_reader.next(line_limit());
        if (!event) {
            if (!m_output.empty()) {
                return step::SendBytes{std::exchange(m_output, {})};
            }
            return step::NeedInput{};
        }
        if (event->kind == LineEvent::Kind::too_long) {
            m_sasl.reset(); // an overlong SASL line ends the exchange
            m_sasl_authenticated.reset();
            m_bearer_error_sent = false;
            m_user_given = false;
            reply_error(make_error_code(errc::line_too_long));
            continue;
        }
        handle_line(event->text);
    }
}

void ServerSession::reply_ok(std::string_view text)
{
    m_bad_commands = 0;
    append_ok(m_output, text);
}

void ServerSession::reply_error(std::error_code error, std::string_view text)
{
    // A bad command in a row beyond the limit is answered with the limit's -ERR instead.
    if (++m_bad_commands >= m_policy.max_bad_commands) {
        append_err(m_output, make_error_code(errc::too_many_bad_commands));
        m_close_after_output = true;
        return;
    }
    if (text.empty()) {
        append_err(m_output, error);
    } else {
        append_err(m_output, response_code_for(error), text);
    }
    if (error_closes_connection(error)) {
        m_close_after_output = true;
    }
}

void ServerSession::handle_line(std::string_view line)
{
    if (m_sasl || m_sasl_authenticated || m_bearer_error_sent) {
        handle_sasl_line(line);
        return;
    }
    auto parsed = parse_command(line);
    if (!parsed) {
        m_user_given = false;
        reply_error(parsed.error());
        return;
    }
    handle_command(std::move(*parsed));
}

void ServerSession::handle_command(Command command)
{
    const bool after_user = std::exchange(m_user_given, false);
    std::visit(
        [&](auto& cmd) {
            using T = std::decay_t<decltype(cmd)>;
            if constexpr (std::is_same_v<T, command::Last>) {
                if (!m_policy.last_command) {
                    reply_error(make_error_code(errc::unknown_command));
                    return;
                }
            }
            if constexpr (is_one_of_authorization_commands<T>) {
                if (m_state != SessionState::authorization) {
                    reply_error(make_error_code(errc::wrong_state));
                    return;
                }
            } else if constexpr (is_one_of_transaction_commands<T>) {
                if (m_state != SessionState::transaction) {
                    reply_error(make_error_code(errc::wrong_state));
                    return;
                }
            }

            if constexpr (std::is_same_v<T, command::User>) {
                do_user(cmd);
            } else if constexpr (std::is_same_v<T, command::Pass>) {
                if (!after_user) {
                    reply_error(make_error_code(errc::wrong_state), "No user name given, send USER first.");
                    return;
                }
                do_pass(cmd);
            } else if constexpr (std::is_same_v<T, command::Apop>) {
                do_apop(cmd);
            } else if constexpr (std::is_same_v<T, command::Auth>) {
                do_auth(cmd);
            } else if constexpr (std::is_same_v<T, command::Quit>) {
                do_quit();
            } else if constexpr (std::is_same_v<T, command::Stat>) {
                do_stat();
            } else if constexpr (std::is_same_v<T, command::List>) {
                do_list(cmd);
            } else if constexpr (std::is_same_v<T, command::Retr>) {
                do_retr(cmd.message, std::nullopt);
            } else if constexpr (std::is_same_v<T, command::Dele>) {
                do_dele(cmd.message);
            } else if constexpr (std::is_same_v<T, command::Noop>) {
                reply_ok({});
            } else if constexpr (std::is_same_v<T, command::Rset>) {
                do_rset();
            } else if constexpr (std::is_same_v<T, command::Top>) {
                do_retr(cmd.message, cmd.body_lines);
            } else if constexpr (std::is_same_v<T, command::Uidl>) {
                do_uidl(cmd);
            } else if constexpr (std::is_same_v<T, command::Capa>) {
                do_capa();
            } else if constexpr (std::is_same_v<T, command::Stls>) {
                do_stls();
            } else if constexpr (std::is_same_v<T, command::Utf8>) {
                do_utf8();
            } else if constexpr (std::is_same_v<T, command::Last>) {
                do_last();
            }
        },
        command);
}

bool ServerSession::plaintext_allowed() const noexcept
{
    return m_policy.tls_active || m_policy.plaintext_auth_without_tls;
}

bool ServerSession::mechanism_offered(std::string_view mechanism) const noexcept
{
    if (sasl::is_plaintext_mechanism(mechanism) && !plaintext_allowed()) {
        return false;
    }
    if (iequals(mechanism, "EXTERNAL") && m_policy.tls_client_identity.empty()) {
        return false;
    }
    // -PLUS binds to the TLS session: offer it only with channel-binding data to bind to.
    return !(mechanism.size() > 5 && iequals(mechanism.substr(mechanism.size() - 5), "-PLUS")) ||
           !m_policy.tls_exporter.empty() || !m_policy.tls_server_end_point.empty();
}

void ServerSession::do_user(command::User& cmd)
{
    if (!plaintext_allowed()) {
        reply_error(make_error_code(errc::plaintext_disallowed));
        return;
    }
    // RFC 6856 §3: non-ASCII user names only after UTF8, and then well-formed UTF-8.
    if (!is_ascii(cmd.name)) {
        if (!m_utf8) {
            reply_error(make_error_code(errc::utf8_not_enabled));
            return;
        }
        if (!is_valid_utf8(cmd.name)) {
            reply_error(make_error_code(errc::syntax_error));
            return;
        }
    }
    m_user = std::move(cmd.name);
    m_user_given = true;
    reply_ok({});
}

void ServerSession::do_pass(command::Pass& cmd)
{
    m_action = step::CheckCredentials{sasl::PasswordCredentials{{}, m_user, std::move(cmd.password)}, "USER"};
    m_pending = Pending::credentials;
}

void ServerSession::do_apop(command::Apop& cmd)
{
    if (m_policy.apop_timestamp.empty()) {
        reply_error(make_error_code(errc::unknown_command));
        return;
    }
    if (!is_hex_digest(cmd.digest)) {
        reply_error(make_error_code(errc::syntax_error));
        return;
    }
    if (!is_ascii(cmd.name) && (!m_utf8 || !is_valid_utf8(cmd.name))) {
        reply_error(make_error_code(m_utf8 ? errc::syntax_error : errc::utf8_not_enabled));
        return;
    }
    std::string digest = cmd.digest;
    for (char& c : digest) {
        c = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    m_action = step::CheckCredentials{
        sasl::ApopCredentials{std::move(cmd.name), m_policy.apop_timestamp, std::move(digest)}, "APOP"};
    m_pending = Pending::credentials;
}

void ServerSession::do_auth(command::Auth& cmd)
{
    const auto offered = [&](std::string_view mechanism) { return mechanism_offered(mechanism); };
    if (!cmd.mechanism) {
        // RFC 1734 clients (Outlook among them) send a bare AUTH to list the mechanisms.
        std::string listing;
        for (const auto& mechanism : m_policy.sasl_mechanisms) {
            if (offered(mechanism)) {
                append_multiline_line(listing, mechanism);
            }
        }
        reply_ok({});
        m_output += listing;
        append_multiline_end(m_output);
        return;
    }
    const bool enabled = std::any_of(m_policy.sasl_mechanisms.begin(), m_policy.sasl_mechanisms.end(),
                                     [&](const std::string& m) { return iequals(m, *cmd.mechanism); });
    if (enabled && sasl::is_plaintext_mechanism(*cmd.mechanism) && !plaintext_allowed()) {
        reply_error(make_error_code(errc::plaintext_disallowed));
        return;
    }
    auto mechanism =
        enabled && offered(*cmd.mechanism)
            ? sasl::make_server_mechanism(
                  *cmd.mechanism, sasl::MechanismContext{m_policy.tls_exporter, m_policy.tls_client_identity,
                                                         m_policy.tls_server_end_point})
            : nullptr;
    if (!mechanism) {
        reply_error(make_error_code(errc::mechanism_unsupported));
        return;
    }
    std::optional<std::string> initial;
    if (cmd.initial_response) {
        // RFC 5034 §4: "=" stands for an empty initial response.
        if (*cmd.initial_response == "=") {
            initial.emplace();
        } else {
            auto decoded = base64_decode(*cmd.initial_response);
            if (!decoded) {
                reply_error(decoded.error());
                return;
            }
            initial = std::move(*decoded);
        }
    }
    m_sasl = std::move(mechanism);
    auto result = m_sasl->start(initial ? std::optional<std::string_view>(*initial) : std::nullopt);
    if (initial) {
        wipe(*initial);
    }
    handle_sasl_step(std::move(result));
}

void ServerSession::handle_sasl_line(std::string_view line)
{
    if (m_bearer_error_sent) {
        // RFC 7628 §3.2.3: whatever the client answers to the error challenge (its dummy
        // %x01, an empty line, or "*"), the exchange fails now.
        m_bearer_error_sent = false;
        count_failure_and_reply(make_error_code(errc::auth_failed));
        return;
    }
    // RFC 5034 §4: "*" cancels; the server "MUST reject the AUTH command by sending a -ERR".
    if (line == "*") {
        m_sasl.reset();
        m_sasl_authenticated.reset();
        append_err(m_output, make_error_code(errc::auth_cancelled));
        return;
    }
    if (m_sasl_authenticated) {
        // The answer to the server's final message must be empty (RFC 4422 §3.6).
        std::string user = std::move(*m_sasl_authenticated);
        m_sasl_authenticated.reset();
        on_credentials_checked(
            AuthResult{line.empty() ? std::error_code{} : make_error_code(errc::auth_failed),
                       line.empty() ? std::move(user) : std::string()});
        return;
    }
    auto decoded = base64_decode(line);
    if (!decoded) {
        m_sasl.reset();
        reply_error(decoded.error());
        return;
    }
    auto result = m_sasl->step(*decoded);
    wipe(*decoded);
    handle_sasl_step(std::move(result));
}

void ServerSession::handle_sasl_step(sasl::ServerStep result)
{
    if (auto* challenge = std::get_if<sasl::Challenge>(&result)) {
        append_continuation(m_output, base64_encode(challenge->data));
        return;
    }
    const std::string mechanism(m_sasl->name());
    if (auto* need = std::get_if<sasl::NeedSecret>(&result)) {
        m_action = step::LookupSecret{std::move(need->user), mechanism};
        m_pending = Pending::secret;
        return; // the mechanism waits for on_secret_looked_up()
    }
    m_sasl.reset();
    if (auto* done = std::get_if<sasl::Authenticated>(&result)) {
        m_proven_by_certificate = iequals(mechanism, "EXTERNAL");
        if (done->final_data) {
            // POP3 has no "additional data with success": the server's last message goes as one
            // more challenge, answered by an empty line (RFC 4422 §3.6, RFC 5034 §4).
            append_continuation(m_output, base64_encode(*done->final_data));
            m_sasl_authenticated = std::move(done->user);
            return;
        }
        on_credentials_checked(AuthResult{{}, std::move(done->user)});
        return;
    }
    if (auto* verify = std::get_if<sasl::Verify>(&result)) {
        m_bearer_attempt = std::holds_alternative<sasl::BearerCredentials>(verify->credentials);
        m_action = step::CheckCredentials{std::move(verify->credentials), mechanism};
        m_pending = Pending::credentials;
        return;
    }
    on_credentials_checked(AuthResult{make_error_code(std::get<sasl::Failure>(result).reason), {}});
}

void ServerSession::on_secret_looked_up(std::error_code error, std::optional<sasl::StoredSecret> secret)
{
    m_pending = Pending::none;
    if (!m_sasl) {
        return;
    }
    if (error) {
        m_sasl.reset();
        append_err(m_output, error);
        return;
    }
    handle_sasl_step(m_sasl->provide_secret(std::move(secret)));
}

void ServerSession::on_credentials_checked(AuthResult result)
{
    m_pending = Pending::none;
    if (!result.error) {
        m_user = std::move(result.user);
        m_action = step::OpenMaildrop{m_user, std::exchange(m_proven_by_certificate, false)};
        m_pending = Pending::maildrop;
        return;
    }
    m_user.clear();
    if (std::exchange(m_bearer_attempt, false) && result.error == make_error_code(errc::auth_failed)) {
        // RFC 7628 §3.2.2: a refused bearer token is answered with an error challenge (what
        // Gmail's XOAUTH2 does too); the -ERR follows the client's dummy response.
        append_continuation(m_output, base64_encode(R"({"status":"invalid_token","schemes":"bearer"})"));
        m_bearer_error_sent = true;
        return;
    }
    count_failure_and_reply(result.error);
}

void ServerSession::count_failure_and_reply(std::error_code error)
{
    if (error == make_error_code(errc::auth_failed)) {
        ++m_failed_authentications;
    }
    // Only wrong credentials count towards the per-connection limit: a LOGIN-DELAY or a
    // temporary failure is not a guess.
    if (error == make_error_code(errc::auth_failed) && ++m_auth_failures >= m_policy.max_auth_failures) {
        append_err(m_output, make_error_code(errc::too_many_auth_failures));
        m_close_after_output = true;
        return;
    }
    append_err(m_output, error);
}

void ServerSession::on_maildrop_opened(std::error_code error, std::shared_ptr<const MessageListing> listing)
{
    m_pending = Pending::none;
    if (error || !listing) {
        // RFC 1939 §4: the session stays in AUTHORIZATION; the client may try again or QUIT.
        m_user.clear();
        append_err(m_output, error ? error : make_error_code(errc::maildrop_unavailable));
        return;
    }
    m_listing = std::move(listing);
    const std::uint32_t count = m_listing->message_count();
    m_deleted.assign(count, false);
    m_retrieved.assign(count, false);
    m_total_octets = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
        m_total_octets += m_listing->message_octets(MessageIndex{i});
    }
    m_state = SessionState::transaction;
    m_auth_failures = 0;
    reply_ok(fmt::format("Logged in, {}", maildrop_summary()));
}

std::string ServerSession::maildrop_summary() const
{
    return fmt::format("maildrop has {} ({})",
                       plural(m_listing->message_count() - m_deleted_count, "message"),
                       plural(m_total_octets - m_deleted_octets, "octet"));
}

void ServerSession::do_capa()
{
    // RFC 2449 §5: "Capabilities available in the AUTHORIZATION state MUST be announced in both
    // states", so USER, SASL and UTF8 stay in the list after login; STLS is listed only where
    // it is permitted (RFC 2595 §4), which is before login and before TLS.
    reply_ok("Capability list follows");
    append_multiline_line(m_output, "TOP");
    append_multiline_line(m_output, "UIDL");
    append_multiline_line(m_output, "RESP-CODES");
    append_multiline_line(m_output, "AUTH-RESP-CODE");
    append_multiline_line(m_output, "PIPELINING");
    if (plaintext_allowed()) {
        append_multiline_line(m_output, "USER");
    }
    std::string sasl = "SASL";
    for (const auto& mechanism : m_policy.sasl_mechanisms) {
        if (mechanism_offered(mechanism)) {
            sasl += ' ';
            sasl += mechanism;
        }
    }
    if (sasl.size() > 4) {
        append_multiline_line(m_output, sasl);
    }
    if (m_state == SessionState::authorization && m_policy.tls_available && !m_policy.tls_active) {
        append_multiline_line(m_output, "STLS");
    }
    if (m_policy.utf8) {
        append_multiline_line(m_output, "UTF8 USER");
    }
    if (m_policy.login_delay_seconds) {
        append_multiline_line(m_output, fmt::format("LOGIN-DELAY {}", *m_policy.login_delay_seconds));
    }
    if (m_policy.expire_never) {
        append_multiline_line(m_output, "EXPIRE NEVER");
    } else if (m_policy.expire_days) {
        append_multiline_line(m_output, fmt::format("EXPIRE {}", *m_policy.expire_days));
    }
    if (!m_policy.implementation.empty()) {
        append_multiline_line(m_output, "IMPLEMENTATION " + m_policy.implementation);
    }
    append_multiline_end(m_output);
}

void ServerSession::do_stls()
{
    if (m_policy.tls_active) {
        reply_error(make_error_code(errc::wrong_state), "TLS is already active.");
        return;
    }
    if (!m_policy.tls_available) {
        reply_error(make_error_code(errc::unknown_command), "TLS is not available.");
        return;
    }
    reply_ok("Begin TLS negotiation now.");
    // RFC 2595 §4 and the STARTTLS command-injection class of bugs: anything the client sent
    // after STLS in plaintext is dropped, never answered inside TLS.
    m_reader.clear();
    m_user.clear();
    m_action = step::StartTls{};
    m_pending = Pending::tls;
}

void ServerSession::on_tls_started(std::string tls_exporter, std::string client_identity,
                                   std::string server_end_point)
{
    m_pending = Pending::none;
    m_policy.tls_active = true;
    m_policy.tls_exporter = std::move(tls_exporter);
    m_policy.tls_client_identity = std::move(client_identity);
    m_policy.tls_server_end_point = std::move(server_end_point);
    m_reader.clear();
}

void ServerSession::do_utf8()
{
    if (!m_policy.utf8) {
        reply_error(make_error_code(errc::unknown_command));
        return;
    }
    m_utf8 = true;
    reply_ok("UTF8 enabled");
}

void ServerSession::do_quit()
{
    m_quit = true;
    if (m_state == SessionState::authorization) {
        reply_ok("Pigeon POP3 server signing off.");
        m_close_after_output = true;
        return;
    }
    // RFC 1939 §6: QUIT in TRANSACTION enters UPDATE and removes the marked messages.
    m_state = SessionState::update;
    step::CommitUpdate update;
    for (std::uint32_t i = 0; i < m_deleted.size(); ++i) {
        if (m_deleted[i]) {
            update.deletions.push_back(MessageIndex{i});
        }
        if (m_retrieved[i]) {
            update.retrieved.push_back(MessageIndex{i});
        }
    }
    m_action = std::move(update);
    m_pending = Pending::commit;
}

void ServerSession::on_update_committed(std::error_code error)
{
    m_pending = Pending::none;
    m_close_after_output = true;
    if (error) {
        // RFC 1939 §6: "-ERR some deleted messages not removed".
        append_err(m_output, make_error_code(errc::commit_failed));
        return;
    }
    const std::uint32_t left = m_listing->message_count() - m_deleted_count;
    append_ok(m_output,
              left == 0 ? std::string("Pigeon POP3 server signing off (maildrop empty).")
                        : fmt::format("Pigeon POP3 server signing off ({} left).", plural(left, "message")));
}

std::error_code ServerSession::check_message(MessageNumber number) const noexcept
{
    if (number.value == 0 || number.value > m_listing->message_count()) {
        return make_error_code(errc::no_such_message);
    }
    if (m_deleted[number.to_index().value]) {
        return make_error_code(errc::message_deleted);
    }
    return {};
}

void ServerSession::do_stat()
{
    reply_ok(fmt::format("{} {}", m_listing->message_count() - m_deleted_count,
                         m_total_octets - m_deleted_octets));
}

void ServerSession::do_list(const command::List& cmd)
{
    if (cmd.message) {
        if (const auto error = check_message(*cmd.message)) {
            reply_error(error);
            return;
        }
        reply_ok(
            fmt::format("{} {}", cmd.message->value, m_listing->message_octets(cmd.message->to_index())));
        return;
    }
    reply_ok(fmt::format("{} ({})", plural(m_listing->message_count() - m_deleted_count, "message"),
                         plural(m_total_octets - m_deleted_octets, "octet")));
    for (std::uint32_t i = 0; i < m_deleted.size(); ++i) {
        if (!m_deleted[i]) {
            fmt::format_to(std::back_inserter(m_output), "{} {}\r\n", i + 1,
                           m_listing->message_octets(MessageIndex{i}));
        }
    }
    append_multiline_end(m_output);
}

void ServerSession::do_uidl(const command::Uidl& cmd)
{
    if (cmd.message) {
        if (const auto error = check_message(*cmd.message)) {
            reply_error(error);
            return;
        }
        reply_ok(fmt::format("{} {}", cmd.message->value, m_listing->unique_id(cmd.message->to_index())));
        return;
    }
    reply_ok({});
    for (std::uint32_t i = 0; i < m_deleted.size(); ++i) {
        if (!m_deleted[i]) {
            fmt::format_to(std::back_inserter(m_output), "{} {}\r\n", i + 1,
                           m_listing->unique_id(MessageIndex{i}));
        }
    }
    append_multiline_end(m_output);
}

void ServerSession::do_retr(MessageNumber number, std::optional<std::uint32_t> top_lines)
{
    if (const auto error = check_message(number)) {
        reply_error(error);
        return;
    }
    const MessageIndex index = number.to_index();
    std::string ok_line;
    if (top_lines) {
        append_ok(ok_line, {});
    } else {
        append_ok(ok_line, fmt::format("{} octets", m_listing->message_octets(index)));
    }
    m_streaming = {index, !top_lines.has_value()};
    m_action = step::StreamMessage{index, top_lines, std::move(ok_line)};
    m_pending = Pending::message;
}

void ServerSession::on_message_sent()
{
    // Only a message that really went out counts as accessed (LAST) or retrieved (EXPIRE).
    m_pending = Pending::none;
    m_bad_commands = 0;
    const auto [index, whole] = m_streaming;
    m_highest_accessed = std::max(m_highest_accessed, index.to_number().value);
    if (whole) {
        m_retrieved[index.value] = true;
    }
}

void ServerSession::on_message_failed(std::error_code error)
{
    m_pending = Pending::none;
    append_err(m_output, error ? error : make_error_code(errc::message_unavailable));
}

void ServerSession::do_dele(MessageNumber number)
{
    if (const auto error = check_message(number)) {
        reply_error(error);
        return;
    }
    const MessageIndex index = number.to_index();
    m_deleted[index.value] = true;
    ++m_deleted_count;
    m_deleted_octets += m_listing->message_octets(index);
    reply_ok(fmt::format("message {} deleted", number.value));
}

void ServerSession::do_rset()
{
    std::fill(m_deleted.begin(), m_deleted.end(), false);
    m_deleted_count = 0;
    m_deleted_octets = 0;
    m_highest_accessed = 0; // RFC 1460: RSET resets the LAST count
    reply_ok(maildrop_summary());
}

void ServerSession::do_last()
{
    reply_ok(fmt::format("{}", m_highest_accessed));
}

} // namespace pigeon::protocol
