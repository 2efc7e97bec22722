// TLS for the client side (pigeon fetch): a context built from an account's TLS settings, and the
// handshake on a connected socket. It knows nothing of POP3.
//
// Trust, as mpop and curl do it: by default the system's trust store and a check of the host name
// against the certificate (RFC 6125); or a CA file; or SHA-256 fingerprint pins, which replace
// both (several, so that a certificate rollover can be prepared). Minimum version TLS 1.2 unless
// configured lower; SNI sent for host names, not for addresses; an optional client certificate.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <tl/expected.hpp>
#include <vector>

using SSL = struct ssl_st;
using SSL_CTX = struct ssl_ctx_st; // NOLINT(readability-identifier-naming): OpenSSL's name

namespace pigeon::tls {

struct ClientTlsOptions {
    std::string ca_file;                  // empty: the system trust store
    std::vector<std::string> sha256_pins; // hex, colons allowed; when set, only they are trusted
    std::string client_certificate;       // PEM, with its key in client_key (or in the same file)
    std::string client_key;
    std::string min_version = "TLSv1.2";
    bool verify = true; // false only for --serverinfo's look at a certificate it cannot trust
};

// What --serverinfo and the logs show of a TLS session.
struct TlsInfo {
    std::string protocol;
    std::string cipher;
    std::string subject;
    std::string issuer;
    std::string not_before;
    std::string not_after;
    std::string sha256_fingerprint; // "AB:CD:..."
    std::vector<std::string> names; // subjectAltName DNS entries
    std::string verification;       // "trusted", "pinned", or why it is not trusted
};

class ClientTlsContext {
public:
    static tl::expected<std::shared_ptr<ClientTlsContext>, std::string> load(const ClientTlsOptions& options);

    ClientTlsContext(const ClientTlsContext&) = delete;
    ClientTlsContext& operator=(const ClientTlsContext&) = delete;
    ~ClientTlsContext();

    [[nodiscard]] SSL_CTX* native() const noexcept { return m_ctx; }
    [[nodiscard]] const ClientTlsOptions& options() const noexcept { return m_options; }

    // Prepares an SSL object for `host` (SNI, host-name check); the caller owns it.
    [[nodiscard]] SSL* new_session(int fd, const std::string& host) const;
    // After the handshake: whether the peer is trusted under the options (pins, or the chain and
    // host name OpenSSL checked), with the details.
    [[nodiscard]] tl::expected<TlsInfo, std::string> check_peer(SSL* ssl) const;

private:
    ClientTlsContext() = default;
    SSL_CTX* m_ctx = nullptr;
    ClientTlsOptions m_options;
};

// A normalised SHA-256 pin ("AB:CD:..." upper case), or nothing if `text` is not 32 hex octets.
[[nodiscard]] std::string normalise_pin(std::string_view text);

// The details of the peer's certificate and session (no trust decision).
[[nodiscard]] TlsInfo describe_peer(SSL* ssl);

} // namespace pigeon::tls
