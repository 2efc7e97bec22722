#include "protocol/client_session.hpp"

#include "core/limits.hpp"

#include <fmt/format.h>

namespace pigeon::protocol {

std::string format_command(const Command& command)
{
    return std::visit(
        [](const auto& cmd) -> std::string {
            using T = std::decay_t<decltype(cmd)>;
            if constexpr (std::is_same_v<T, command::User>) {
                return fmt::format("USER {}\r\n", cmd.name);
            } else if constexpr (std::is_same_v<T, command::Pass>) {
                return fmt::format("PASS {}\r\n", cmd.password.view());
            } else if constexpr (std::is_same_v<T, command::Apop>) {
                return fmt::format("APOP {} {}\r\n", cmd.name, cmd.digest);
            } else if constexpr (std::is_same_v<T, command::Auth>) {
                if (!cmd.mechanism) {
                    return "AUTH\r\n";
                }
                if (cmd.initial_response) {
                    return fmt::format("AUTH {} {}\r\n", *cmd.mechanism, *cmd.initial_response);
                }
                return fmt::format("AUTH {}\r\n", *cmd.mechanism);
            } else if constexpr (std::is_same_v<T, command::List> || std::is_same_v<T, command::Uidl>) {
                const char* keyword = std::is_same_v<T, command::List> ? "LIST" : "UIDL";
                if (cmd.message) {
                    return fmt::format("{} {}\r\n", keyword, cmd.message->value);
                }
                return fmt::format("{}\r\n", keyword);
            } else if constexpr (std::is_same_v<T, command::Retr>) {
                return fmt::format("RETR {}\r\n", cmd.message.value);
            } else if constexpr (std::is_same_v<T, command::Dele>) {
                return fmt::format("DELE {}\r\n", cmd.message.value);
            } else if constexpr (std::is_same_v<T, command::Top>) {
                return fmt::format("TOP {} {}\r\n", cmd.message.value, cmd.body_lines);
            } else {
                return fmt::format("{}\r\n", command_keyword(Command{T{}}));
            }
        },
        command);
}

ClientSession::ClientSession()
{
    m_expected.push_back({Shape::greeting, "greeting"});
}

void ClientSession::send(const Command& command)
{
    m_output += format_command(command);
    Shape shape = Shape::single;
    if (const auto* list = std::get_if<command::List>(&command)) {
        shape = list->message ? Shape::single : Shape::listing;
    } else if (const auto* uidl = std::get_if<command::Uidl>(&command)) {
        shape = uidl->message ? Shape::single : Shape::listing;
    } else if (std::holds_alternative<command::Capa>(command)) {
        shape = Shape::listing;
    } else if (const auto* auth = std::get_if<command::Auth>(&command)) {
        shape = auth->mechanism ? Shape::sasl : Shape::listing;
    } else if (std::holds_alternative<command::Retr>(command) ||
               std::holds_alternative<command::Top>(command)) {
        shape = Shape::body;
    } else if (std::holds_alternative<command::Stls>(command)) {
        shape = Shape::stls;
    }
    m_expected.push_back({shape, command_keyword(command)});
}

void ClientSession::send_sasl_response(std::string_view line)
{
    m_output.append(line);
    m_output.append("\r\n");
}

void ClientSession::receive(std::string_view bytes)
{
    if (m_failed) {
        return;
    }
    m_reader.append(bytes);
}

void ClientSession::on_tls_started()
{
    m_tls_pending = false;
    m_reader.clear();
}

ClientEvent ClientSession::fail_with(errc error)
{
    m_failed = true;
    m_reader.clear();
    m_expected.clear();
    return event::Failure{make_error_code(error)};
}

std::optional<ClientEvent> ClientSession::next_event()
{
    if (m_failed) {
        return std::nullopt;
    }
    if (m_tls_pending) {
        // Nothing may arrive between STLS's +OK and the handshake.
        if (m_reader.buffered() > 0) {
            return fail_with(errc::plaintext_after_stls);
        }
        return std::nullopt;
    }

    if (m_pending_end) {
        m_pending_end = false;
        return event::End{};
    }
    if (m_reading == Reading::body) {
        const std::string_view raw = m_reader.peek_raw();
        if (raw.empty()) {
            return std::nullopt;
        }
        event::BodyData data;
        const auto progress = m_unstuffer.feed(raw.substr(0, body_chunk_octets), data.bytes);
        m_reader.consume_raw(progress.consumed);
        if (progress.complete) {
            m_reading = Reading::status;
            m_expected.pop_front();
            if (data.bytes.empty()) {
                return event::End{};
            }
            m_pending_end = true; // hand out the last data now, the end on the next call
        }
        return data;
    }

    const auto line = m_reader.next(limits::max_response_line_octets);
    if (!line) {
        return std::nullopt;
    }
    if (line->kind == LineEvent::Kind::too_long) {
        return fail_with(errc::line_too_long);
    }

    if (m_reading == Reading::listing) {
        std::string_view text = line->text;
        if (text == ".") {
            m_reading = Reading::status;
            m_expected.pop_front();
            return event::End{};
        }
        if (!text.empty() && text.front() == '.') {
            text.remove_prefix(1);
        }
        return event::ListingLine{std::string(text)};
    }

    if (m_expected.empty()) {
        return fail_with(errc::unexpected_reply);
    }
    auto reply = parse_reply(line->text);
    if (!reply) {
        return fail_with(errc::malformed_response);
    }
    const Expectation expected = m_expected.front();
    if (reply->kind == Reply::Kind::continuation) {
        if (expected.shape != Shape::sasl) {
            return fail_with(errc::unexpected_reply);
        }
        return event::Continuation{std::move(reply->text)};
    }
    if (expected.shape == Shape::greeting) {
        m_expected.pop_front();
        auto stamp = apop_timestamp(reply->text);
        return event::Greeting{std::move(*reply), std::move(stamp)};
    }
    if (reply->ok()) {
        switch (expected.shape) {
        case Shape::listing:
            m_reading = Reading::listing;
            return event::Status{expected.keyword, std::move(*reply)};
        case Shape::body:
            m_reading = Reading::body;
            m_unstuffer.reset();
            return event::Status{expected.keyword, std::move(*reply)};
        case Shape::stls:
            m_expected.pop_front();
            if (m_reader.buffered() > 0) {
                return fail_with(errc::plaintext_after_stls);
            }
            m_tls_pending = true;
            return event::StartTls{};
        default: break;
        }
    }
    m_expected.pop_front();
    return event::Status{expected.keyword, std::move(*reply)};
}

} // namespace pigeon::protocol
