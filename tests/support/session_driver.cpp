#include "session_driver.hpp"

#include "protocol/dot_stuffer.hpp"

#include <vector>

namespace pigeon::test {

SessionDriver::SessionDriver(protocol::ServerPolicy policy, storage::MemoryMaildropStore& store,
                             auth::MemoryPassDb& passdb)
    : m_store(store), m_passdb(passdb), m_session(std::move(policy))
{
}

std::string SessionDriver::feed(std::string_view bytes)
{
    if (!m_closed) {
        m_session.receive(bytes);
    }
    return run();
}

std::string SessionDriver::complete_tls()
{
    if (!m_tls_waiting) {
        return {};
    }
    m_tls_waiting = false;
    m_session.on_tls_started();
    return run();
}

std::string SessionDriver::run()
{
    std::string out;
    while (!m_closed) {
        auto step = m_session.next_step();
        if (auto* send = std::get_if<protocol::step::SendBytes>(&step)) {
            out += send->bytes;
        } else if (auto* check = std::get_if<protocol::step::CheckCredentials>(&step)) {
            auto verdict = auth::verify_credentials(m_passdb, check->credentials);
            m_session.on_credentials_checked(verdict ? protocol::AuthResult{{}, *verdict}
                                                     : protocol::AuthResult{verdict.error(), {}});
        } else if (auto* lookup = std::get_if<protocol::step::LookupSecret>(&step)) {
            auto secret = auth::lookup_secret(m_passdb, lookup->user);
            m_session.on_secret_looked_up(secret ? std::error_code{} : secret.error(),
                                          secret ? std::move(*secret) : std::nullopt);
        } else if (auto* open = std::get_if<protocol::step::OpenMaildrop>(&step)) {
            auto maildrop = m_store.open(open->user);
            if (maildrop) {
                m_maildrop = std::move(*maildrop);
                m_session.on_maildrop_opened({}, m_maildrop);
            } else {
                m_session.on_maildrop_opened(maildrop.error(), nullptr);
            }
        } else if (auto* stream = std::get_if<protocol::step::StreamMessage>(&step)) {
            auto reader = m_maildrop->open_message(stream->message);
            if (!reader) {
                m_session.on_message_failed(reader.error());
                continue;
            }
            out += stream->ok_line;
            protocol::DotStuffer stuffer(stream->top_body_lines);
            std::vector<char> buffer(read_chunk_octets);
            for (;;) {
                auto count = (*reader)->read(buffer);
                if (!count || *count == 0 || stuffer.complete()) {
                    break;
                }
                stuffer.feed(std::string_view(buffer.data(), *count), out);
            }
            stuffer.finish(out);
            m_session.on_message_sent();
        } else if (auto* update = std::get_if<protocol::step::CommitUpdate>(&step)) {
            ++m_commits;
            auto committed = m_maildrop->commit(update->deletions);
            m_session.on_update_committed(committed ? std::error_code{} : committed.error());
        } else if (std::holds_alternative<protocol::step::StartTls>(step)) {
            // The handshake starts after the current packet was read: bytes already received
            // with the STLS command reach the session while it waits, as on a real socket.
            m_tls_started = true;
            m_tls_waiting = true;
            break;
        } else if (std::holds_alternative<protocol::step::Close>(step)) {
            m_closed = true;
            m_maildrop.reset();
        } else {
            break; // NeedInput (Wait cannot happen: every step is answered at once)
        }
    }
    return out;
}

} // namespace pigeon::test
