#include "tls/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>

namespace pigeon::tls {
namespace {

std::string openssl_errors()
{
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        std::array<char, 256> buffer{};
        ERR_error_string_n(code, buffer.data(), buffer.size());
        if (!text.empty()) {
            text += "; ";
        }
        text += buffer.data();
    }
    return text.empty() ? std::string("unknown OpenSSL error") : text;
}

std::string lower(std::string_view text)
{
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// The DNS names of a certificate: subjectAltName DNS entries, else the subject's common name
// (RFC 6125 §6.4.4).
std::vector<std::string> certificate_names(X509* cert)
{
    std::vector<std::string> names;
    auto* alt = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (alt != nullptr) {
        for (int i = 0; i < sk_GENERAL_NAME_num(alt); ++i) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt, i);
            if (name->type == GEN_DNS) {
                // OpenSSL's GENERAL_NAME is a C union tagged by `type`, checked just above.
                const ASN1_IA5STRING* dns =
                    name->d.dNSName; // NOLINT(cppcoreguidelines-pro-type-union-access)
                const auto* data = ASN1_STRING_get0_data(dns);
                names.push_back(lower(std::string_view(reinterpret_cast<const char*>(data),
                                                       static_cast<std::size_t>(ASN1_STRING_length(dns)))));
            }
        }
        GENERAL_NAMES_free(alt);
    }
    if (names.empty()) {
        std::array<char, 256> cn{};
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn.data(),
                                      static_cast<int>(cn.size())) > 0) {
            names.push_back(lower(cn.data()));
        }
    }
    return names;
}

} // namespace

bool host_matches(std::string_view pattern, std::string_view host) noexcept
{
    if (pattern == host) {
        return true;
    }
    if (pattern.size() > 2 && pattern.starts_with("*.")) {
        const auto dot = host.find('.');
        return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
    }
    return false;
}

tl::expected<std::shared_ptr<ServerTlsContext>, std::string> ServerTlsContext::load(const TlsOptions& options)
{
    if (options.certificates.empty()) {
        return tl::unexpected(std::string("no TLS certificate configured"));
    }
    const int min_version = protocol_version(options.min_version);
    if (min_version == 0) {
        return tl::unexpected("unknown TLS version \"" + options.min_version +
                              "\" (TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)");
    }
    auto result = std::make_shared<ServerTlsContext>();
    ERR_clear_error();
    for (const auto& files : options.certificates) {
        auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
        SSL_CTX* ctx = context->native_handle();
        SSL_CTX_set_min_proto_version(ctx, min_version);
        SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
        // Resumption: tickets (OpenSSL's default, keys rotated per context) and a session cache.
        static constexpr std::array<unsigned char, 6> session_id_context{'p', 'i', 'g', 'e', 'o', 'n'};
        SSL_CTX_set_session_id_context(ctx, session_id_context.data(), session_id_context.size());
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, options.ciphers.c_str()) != 1) {
            return tl::unexpected("bad TLS cipher list \"" + options.ciphers + "\": " + openssl_errors());
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, files.certificate.c_str()) != 1) {
            return tl::unexpected("cannot load certificate " + files.certificate + ": " + openssl_errors());
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
            return tl::unexpected("cannot load private key " + files.key + ": " + openssl_errors());
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            return tl::unexpected("private key " + files.key + " does not match certificate " +
                                  files.certificate);
        }
        if (!options.client_ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(ctx, options.client_ca_file.c_str(), nullptr) != 1) {
                return tl::unexpected("cannot load client CA file " + options.client_ca_file + ": " +
                                      openssl_errors());
            }
            // Ask for a certificate, do not require one: without it, the other mechanisms remain.
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
            STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str());
            if (names != nullptr) {
                SSL_CTX_set_client_CA_list(ctx, names);
            }
        }
        Entry entry;
        entry.names = certificate_names(SSL_CTX_get0_certificate(ctx));
        entry.context = std::move(context);
        result->m_contexts.push_back(std::move(entry));
    }
    SSL_CTX* first = result->m_contexts.front().context->native_handle();
    SSL_CTX_set_tlsext_servername_callback(first, &ServerTlsContext::on_server_name);
    SSL_CTX_set_tlsext_servername_arg(first, result.get());
    return result;
}

std::vector<std::string> ServerTlsContext::names() const
{
    std::vector<std::string> out;
    for (const auto& entry : m_contexts) {
        out.push_back(entry.names.empty() ? std::string("(no name)") : entry.names.front());
    }
    return out;
}

const ServerTlsContext::Entry* ServerTlsContext::find(std::string_view host) const noexcept
{
    for (const auto& entry : m_contexts) {
        for (const auto& name : entry.names) {
            if (host_matches(name, host)) {
                return &entry;
            }
        }
    }
    return nullptr;
}

int ServerTlsContext::on_server_name(SSL* ssl, int* /*alert*/, void* arg)
{
    const char* host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (host == nullptr) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    const auto* self = static_cast<const ServerTlsContext*>(arg);
    const Entry* entry = self->find(lower(host));
    if (entry != nullptr && entry != &self->m_contexts.front()) {
        SSL_set_SSL_CTX(ssl, entry->context->native_handle());
    }
    // An unknown name gets the default certificate, as every mail server does.
    return SSL_TLSEXT_ERR_OK;
}

std::string tls_exporter(SSL* ssl)
{
    // RFC 9266 §2: label "EXPORTER-Channel-Binding", no context, 32 octets. With TLS 1.2 it is
    // only safe with the extended master secret (RFC 7627).
    if (SSL_version(ssl) < TLS1_3_VERSION && SSL_get_extms_support(ssl) != 1) {
        return {};
    }
    static constexpr std::string_view label = "EXPORTER-Channel-Binding";
    std::string out(32, '\0');
    if (SSL_export_keying_material(ssl, reinterpret_cast<unsigned char*>(out.data()), out.size(),
                                   label.data(), label.size(), nullptr, 0, 0) != 1) {
        return {};
    }
    return out;
}

std::string certificate_der(SSL* ssl, bool own)
{
    X509* certificate = own ? SSL_get_certificate(ssl) : SSL_get0_peer_certificate(ssl);
    if (certificate == nullptr) {
        return {};
    }
    const int length = i2d_X509(certificate, nullptr);
    if (length <= 0) {
        return {};
    }
    std::string out(static_cast<std::size_t>(length), '\0');
    auto* cursor = reinterpret_cast<unsigned char*>(out.data());
    if (i2d_X509(certificate, &cursor) != length) {
        return {};
    }
    return out;
}

std::string client_identity(SSL* ssl)
{
    X509* cert = SSL_get0_peer_certificate(ssl);
    if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) {
        return {};
    }
    std::array<char, 256> text{};
    X509_NAME* subject = X509_get_subject_name(cert);
    if (X509_NAME_get_text_by_NID(subject, NID_pkcs9_emailAddress, text.data(),
                                  static_cast<int>(text.size())) > 0 ||
        X509_NAME_get_text_by_NID(subject, NID_commonName, text.data(), static_cast<int>(text.size())) > 0) {
        return text.data();
    }
    return {};
}

std::string describe(SSL* ssl)
{
    std::string out = SSL_get_version(ssl);
    if (const char* cipher = SSL_get_cipher_name(ssl); cipher != nullptr) {
        out += ' ';
        out += cipher;
    }
    return out;
}

int protocol_version(std::string_view name)
{
    if (name == "TLSv1") {
        return TLS1_VERSION;
    }
    if (name == "TLSv1.1") {
        return TLS1_1_VERSION;
    }
    if (name == "TLSv1.2") {
        return TLS1_2_VERSION;
    }
    if (name == "TLSv1.3") {
        return TLS1_3_VERSION;
    }
    return 0;
}

} // namespace pigeon::tls
