#include "tls/client_tls.hpp"

#include "tls/tls_context.hpp"

#include <arpa/inet.h>
#include <array>
#include <cctype>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace pigeon::tls {
namespace {

std::string openssl_error()
{
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) {
        return "unknown error";
    }
    std::array<char, 256> text{};
    ERR_error_string_n(code, text.data(), text.size());
    return text.data();
}

std::string name_text(X509_NAME* name)
{
    if (name == nullptr) {
        return {};
    }
    BIO* bio = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<std::size_t>(length));
    BIO_free(bio);
    return text;
}

std::string time_text(const ASN1_TIME* time)
{
    if (time == nullptr) {
        return {};
    }
    BIO* bio = BIO_new(BIO_s_mem());
    ASN1_TIME_print(bio, time);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<std::size_t>(length));
    BIO_free(bio);
    return text;
}

bool is_address(const std::string& host)
{
    std::array<unsigned char, 16> buffer{};
    return ::inet_pton(AF_INET, host.c_str(), buffer.data()) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), buffer.data()) == 1;
}

} // namespace

std::string normalise_pin(std::string_view text)
{
    std::string hex;
    for (const char c : text) {
        if (c == ':' || c == ' ') {
            continue;
        }
        if (std::isxdigit(static_cast<unsigned char>(c)) == 0) {
            return {};
        }
        hex.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    }
    if (hex.size() != 64) {
        return {};
    }
    std::string out;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        if (!out.empty()) {
            out.push_back(':');
        }
        out.append(hex, i, 2);
    }
    return out;
}

tl::expected<std::shared_ptr<ClientTlsContext>, std::string>
ClientTlsContext::load(const ClientTlsOptions& options)
{
    std::shared_ptr<ClientTlsContext> context(new ClientTlsContext);
    context->m_options = options;
    context->m_ctx = SSL_CTX_new(TLS_client_method());
    if (context->m_ctx == nullptr) {
        return tl::unexpected("cannot create a TLS context: " + openssl_error());
    }
    SSL_CTX* ctx = context->m_ctx;
    const int minimum = protocol_version(options.min_version);
    if (minimum == 0) {
        return tl::unexpected(fmt::format("unknown TLS version \"{}\" (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)",
                                          options.min_version));
    }
    if (minimum < TLS1_2_VERSION) {
        SSL_CTX_set_security_level(ctx, 0); // old servers: the user asked for it
    }
    SSL_CTX_set_min_proto_version(ctx, minimum);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    // Read ahead: one recv() can bring several TLS records (a 64 KiB read instead of a 5-octet
    // header read and a body read per 16 KiB record).
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, std::size_t{64} * 1024);
    for (const auto& pin : options.sha256_pins) {
        if (normalise_pin(pin).empty()) {
            return tl::unexpected(fmt::format("\"{}\" is not a SHA-256 fingerprint (64 hex digits)", pin));
        }
    }
    if (options.sha256_pins.empty() && options.verify) {
        const int loaded = options.ca_file.empty()
                               ? SSL_CTX_set_default_verify_paths(ctx)
                               : SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr);
        if (loaded != 1) {
            return tl::unexpected(fmt::format("cannot load the trust store {}: {}",
                                              options.ca_file.empty() ? "(system)" : options.ca_file,
                                              openssl_error()));
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr); // pins are checked after the handshake
    }
    if (!options.client_certificate.empty()) {
        const std::string& key = options.client_key.empty() ? options.client_certificate : options.client_key;
        if (SSL_CTX_use_certificate_chain_file(ctx, options.client_certificate.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            return tl::unexpected(fmt::format("cannot load the client certificate {}: {}",
                                              options.client_certificate, openssl_error()));
        }
    }
    return context;
}

ClientTlsContext::~ClientTlsContext()
{
    SSL_CTX_free(m_ctx);
}

SSL* ClientTlsContext::new_session(int fd, const std::string& host) const
{
    SSL* ssl = SSL_new(m_ctx);
    if (ssl == nullptr) {
        return nullptr;
    }
    SSL_set_fd(ssl, fd);
    SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (!is_address(host)) {
        SSL_set_tlsext_host_name(ssl, host.c_str());
    }
    if (m_options.sha256_pins.empty() && m_options.verify) {
        if (is_address(host)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            SSL_set1_host(ssl, host.c_str());
        }
    }
    return ssl;
}

TlsInfo describe_peer(SSL* ssl)
{
    TlsInfo info;
    info.protocol = SSL_get_version(ssl);
    info.cipher = SSL_get_cipher_name(ssl);
    X509* certificate = SSL_get1_peer_certificate(ssl);
    if (certificate == nullptr) {
        return info;
    }
    info.subject = name_text(X509_get_subject_name(certificate));
    info.issuer = name_text(X509_get_issuer_name(certificate));
    info.not_before = time_text(X509_get0_notBefore(certificate));
    info.not_after = time_text(X509_get0_notAfter(certificate));
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (X509_digest(certificate, EVP_sha256(), digest.data(), &length) == 1) {
        for (unsigned int i = 0; i < length; ++i) {
            info.sha256_fingerprint += fmt::format("{}{:02X}", i == 0 ? "" : ":", digest[i]);
        }
    }
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
    if (names != nullptr) {
        for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
            if (name->type == GEN_DNS) {
                const auto* text = reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName));
                info.names.emplace_back(text, static_cast<std::size_t>(ASN1_STRING_length(name->d.dNSName)));
            }
        }
        GENERAL_NAMES_free(names);
    }
    X509_free(certificate);
    return info;
}

tl::expected<TlsInfo, std::string> ClientTlsContext::check_peer(SSL* ssl) const
{
    TlsInfo info = describe_peer(ssl);
    if (info.sha256_fingerprint.empty()) {
        return tl::unexpected(std::string("the server sent no certificate"));
    }
    if (!m_options.sha256_pins.empty()) {
        for (const auto& pin : m_options.sha256_pins) {
            if (normalise_pin(pin) == info.sha256_fingerprint) {
                info.verification = "pinned";
                return info;
            }
        }
        return tl::unexpected(
            fmt::format("the server's certificate (SHA-256 {}) matches none of the {} pinned "
                        "fingerprints",
                        info.sha256_fingerprint, m_options.sha256_pins.size()));
    }
    if (!m_options.verify) {
        const long result = SSL_get_verify_result(ssl);
        info.verification = result == X509_V_OK ? "trusted" : X509_verify_cert_error_string(result);
        return info;
    }
    const long result = SSL_get_verify_result(ssl);
    if (result != X509_V_OK) {
        return tl::unexpected(
            fmt::format("the server's certificate is not trusted: {} (subject {}, SHA-256 {})",
                        X509_verify_cert_error_string(result), info.subject, info.sha256_fingerprint));
    }
    info.verification = "trusted";
    return info;
}

} // namespace pigeon::tls
