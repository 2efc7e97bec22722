// The client's connection to a POP3 server: a TCP socket (every address of the host in turn),
// optionally TLS on it (implicit, or after STLS), with a deadline on every operation. Blocking
// from the caller's view, non-blocking underneath so that no read or write can outlast its
// timeout. It knows nothing of POP3.
#pragma once

#include "tls/client_tls.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <tl/expected.hpp>

namespace pigeon::client {

struct TransportError {
    enum class Kind {
        network, // cannot connect, reset, closed, timed out
        tls      // handshake failed or the certificate is not trusted
    };
    Kind kind = Kind::network;
    std::string message;
};

template <typename T>
using TransportResult = tl::expected<T, TransportError>;

class Transport {
public:
    using Clock = std::chrono::steady_clock;

    Transport() = default;
    Transport(const Transport&) = delete;
    Transport& operator=(const Transport&) = delete;
    ~Transport();

    [[nodiscard]] TransportResult<void> connect(const std::string& host, std::uint16_t port,
                                                std::chrono::milliseconds timeout);
    // The TLS handshake on the connected socket; the peer must pass context.check_peer().
    [[nodiscard]] TransportResult<tls::TlsInfo> start_tls(const tls::ClientTlsContext& context,
                                                          const std::string& host,
                                                          std::chrono::milliseconds timeout);
    // Some bytes (at most `max`), or an empty string when the peer closed the connection.
    [[nodiscard]] TransportResult<std::string> read_some(std::size_t max, std::chrono::milliseconds timeout);
    [[nodiscard]] TransportResult<void> write_all(std::string_view bytes, std::chrono::milliseconds timeout);
    void close() noexcept;

    [[nodiscard]] bool secure() const noexcept { return m_ssl != nullptr; }
    [[nodiscard]] SSL* ssl() const noexcept { return m_ssl; }
    [[nodiscard]] const std::string& peer_address() const noexcept { return m_peer; }

private:
    // Waits until the socket is readable (or writable); false at the deadline.
    [[nodiscard]] bool wait(bool for_write, Clock::time_point deadline) const;

    int m_fd = -1;
    SSL* m_ssl = nullptr;
    std::string m_peer;
};

} // namespace pigeon::client
