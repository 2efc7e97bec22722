// TLS for the server (shared/DESIGN.md §2: OpenSSL contexts, certificate reload, channel-binding
// data; no POP3 knowledge). One ServerTlsContext holds every configured certificate: the first is
// the default, the others are chosen by SNI from the names in their certificates (subjectAltName
// DNS entries, else the common name; "*.example.org" matches one label). A reload builds a new
// ServerTlsContext and swaps the shared_ptr: handshakes in progress keep the old one.
//
// Defaults follow RFC 8314 and Mozilla's "intermediate" profile: TLS 1.2 and 1.3 only, no
// compression, no renegotiation, server cipher preference, session resumption with tickets
// and a server-side cache.
#pragma once

#include <asio/ssl/context.hpp>

#include <memory>
#include <string>
#include <tl/expected.hpp>
#include <vector>

using SSL = struct ssl_st;

namespace pigeon::tls {

struct CertificateFiles {
    std::string certificate; // PEM: the certificate, then its chain
    std::string key;         // PEM private key
};

struct TlsOptions {
    std::vector<CertificateFiles> certificates;
    std::string min_version = "TLSv1.2"; // "TLSv1", "TLSv1.1", "TLSv1.2" or "TLSv1.3"
    std::string ciphers;                 // TLS 1.2 cipher list; empty: OpenSSL's default
    // Client certificates for SASL EXTERNAL: CA file to verify them; empty: none are asked for.
    std::string client_ca_file;
};

class ServerTlsContext {
public:
    // An error names the file and what OpenSSL said.
    static tl::expected<std::shared_ptr<ServerTlsContext>, std::string> load(const TlsOptions& options);

    // The context handshakes start from (the default certificate; SNI may switch it).
    [[nodiscard]] asio::ssl::context& context() noexcept { return *m_contexts.front().context; }
    // The certificates' names, for logs.
    [[nodiscard]] std::vector<std::string> names() const;

    ServerTlsContext() = default;
    ServerTlsContext(const ServerTlsContext&) = delete;
    ServerTlsContext& operator=(const ServerTlsContext&) = delete;
    ~ServerTlsContext() = default;

private:
    struct Entry {
        std::unique_ptr<asio::ssl::context> context;
        std::vector<std::string> names; // lower case
    };
    static int on_server_name(SSL* ssl, int* alert, void* arg);
    [[nodiscard]] const Entry* find(std::string_view host) const noexcept;

    std::vector<Entry> m_contexts;
};

// RFC 9266 tls-exporter channel-binding data (32 octets); empty when the session cannot give it
// (TLS 1.2 without extended master secret, RFC 9266 §3).
[[nodiscard]] std::string tls_exporter(SSL* ssl);

// The user a verified client certificate names (its subject's emailAddress, else its common
// name); empty without a verified certificate.
[[nodiscard]] std::string client_identity(SSL* ssl);
// The DER encoding of the certificate this side presented (`own`) or the peer's; empty if none.
// sasl::tls_server_end_point() turns the server's into RFC 5929 channel-binding data.
[[nodiscard]] std::string certificate_der(SSL* ssl, bool own);

// OpenSSL's number for "TLSv1", "TLSv1.1", "TLSv1.2" or "TLSv1.3"; 0 for anything else.
[[nodiscard]] int protocol_version(std::string_view name);

// "TLSv1.3 TLS_AES_256_GCM_SHA384", for logs.
[[nodiscard]] std::string describe(SSL* ssl);

// Whether `host` (lower case) matches a certificate name (lower case, maybe "*.domain").
[[nodiscard]] bool host_matches(std::string_view pattern, std::string_view host) noexcept;

} // namespace pigeon::tls
