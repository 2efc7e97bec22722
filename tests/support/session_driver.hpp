// A synchronous driver for ServerSession over the in-memory backends: performs every step the
// session asks for, the way the real network driver will, and collects what would go on the
// wire. Used by the transcript runner, unit tests and the whole-session fuzz target.
#pragma once

#include "auth/memory/memory_passdb.hpp"
#include "protocol/server_session.hpp"
#include "storage/memory/memory_maildrop.hpp"

#include <memory>
#include <string>

namespace pigeon::test {

class SessionDriver {
public:
    SessionDriver(protocol::ServerPolicy policy, storage::MemoryMaildropStore& store,
                  auth::MemoryPassDb& passdb);

    // Feeds bytes and runs the session until it needs input or closes; returns the output.
    std::string feed(std::string_view bytes);
    // Runs without new input (for the greeting).
    std::string run();
    // Finishes a TLS handshake the session asked for (a no-op when none is waiting).
    std::string complete_tls();

    [[nodiscard]] bool closed() const noexcept { return m_closed; }
    [[nodiscard]] bool tls_started() const noexcept { return m_tls_started; }
    [[nodiscard]] protocol::ServerSession& session() noexcept { return m_session; }
    [[nodiscard]] std::size_t commits() const noexcept { return m_commits; }

    // Size of the read buffer used to stream messages, small by default to exercise chunking.
    std::size_t read_chunk_octets = 7;

private:
    storage::MemoryMaildropStore& m_store;
    auth::MemoryPassDb& m_passdb;
    protocol::ServerSession m_session;
    std::shared_ptr<storage::Maildrop> m_maildrop;
    bool m_closed = false;
    bool m_tls_started = false;
    bool m_tls_waiting = false;
    std::size_t m_commits = 0;
};

} // namespace pigeon::test
