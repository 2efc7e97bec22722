#include "test_server.hpp"

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace pigeon::test {
namespace {

template <class Mutex>
class CaptureSink final : public spdlog::sinks::base_sink<Mutex> {
public:
    explicit CaptureSink(std::shared_ptr<LogCapture> capture) : m_capture(std::move(capture)) {}

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        m_capture->add(std::string(msg.payload.data(), msg.payload.size()));
    }
    void flush_() override {}

private:
    std::shared_ptr<LogCapture> m_capture;
};

TestCertificate make_certificate()
{
    const auto dir =
        std::filesystem::temp_directory_path() / ("pigeon-test-cert-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    TestCertificate files{(dir / "cert.pem").string(), (dir / "key.pem").string()};
    EVP_PKEY* key = EVP_RSA_gen(2048);
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * 30);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"),
                               -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost")) {
        X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(cert, key, EVP_sha256());
    const std::unique_ptr<BIO, decltype(&BIO_free)> cert_out(BIO_new_file(files.certificate.c_str(), "w"),
                                                             &BIO_free);
    const std::unique_ptr<BIO, decltype(&BIO_free)> key_out(BIO_new_file(files.key.c_str(), "w"), &BIO_free);
    if (!cert_out || !key_out || PEM_write_bio_X509(cert_out.get(), cert) != 1 ||
        PEM_write_bio_PrivateKey(key_out.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        throw std::runtime_error("cannot write the test certificate to " + dir.string());
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return files;
}

} // namespace

void LogCapture::add(std::string line)
{
    const std::lock_guard guard(m_mutex);
    m_lines.push_back(std::move(line));
}

std::vector<std::string> LogCapture::lines() const
{
    const std::lock_guard guard(m_mutex);
    return m_lines;
}

std::size_t LogCapture::count(std::string_view needle) const
{
    const std::lock_guard guard(m_mutex);
    std::size_t n = 0;
    for (const auto& line : m_lines) {
        if (line.find(needle) != std::string::npos) {
            ++n;
        }
    }
    return n;
}

server::Tuning test_tuning()
{
    server::Tuning tuning;
    tuning.threads = 1;
    tuning.worker_threads = 2;
    tuning.shutdown_grace = std::chrono::milliseconds(2000);
    tuning.throttle.base_delay = std::chrono::milliseconds(0);
    tuning.throttle.max_delay = std::chrono::milliseconds(0);
    return tuning;
}

const TestCertificate& test_certificate()
{
    static const TestCertificate files = make_certificate();
    return files;
}

std::shared_ptr<tls::ServerTlsContext> test_tls_context()
{
    tls::TlsOptions options;
    options.certificates.push_back({test_certificate().certificate, test_certificate().key});
    auto context = tls::ServerTlsContext::load(options);
    if (!context) {
        throw std::runtime_error(context.error());
    }
    return *context;
}

std::shared_ptr<net::Services> test_services(std::shared_ptr<storage::MaildropStore> store,
                                             std::shared_ptr<auth::PassDb> passdb,
                                             std::shared_ptr<tls::ServerTlsContext> tls)
{
    auto services = std::make_shared<net::Services>();
    services->store = std::move(store);
    services->passdb = std::move(passdb);
    services->tls = std::move(tls);
    services->settings.plaintext_auth = net::PlaintextAuth::always;
    services->settings.host_name = "test.invalid";
    return services;
}

TestServer::TestServer(std::shared_ptr<const net::Services> services, server::Tuning tuning,
                       const std::vector<net::TlsMode>& modes, std::vector<server::LmtpListenerSpec> lmtp)
    : m_log(std::make_shared<LogCapture>())
{
    std::vector<server::ListenerSpec> specs;
    specs.reserve(modes.size());
    for (const auto mode : modes) {
        specs.push_back({asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), mode});
    }
    auto logger = std::make_shared<spdlog::logger>("test", std::make_shared<CaptureSink<std::mutex>>(m_log));
    logger->set_level(spdlog::level::debug);
    m_server = std::make_unique<server::Server>(std::move(services), std::move(specs), tuning, logger);
    m_server->set_lmtp_listeners(std::move(lmtp));
    if (auto bound = m_server->bind(); !bound) {
        throw std::runtime_error(bound.error());
    }
    for (const auto& endpoint : m_server->endpoints()) {
        m_ports.push_back(endpoint.port());
    }
    m_lmtp_ports = m_server->lmtp_ports();
    m_thread = std::thread([this] { m_server->run(false); });
}

TestServer::~TestServer()
{
    stop();
}

void TestServer::stop()
{
    if (m_thread.joinable()) {
        m_server->stop();
        m_thread.join();
    }
}

std::uint16_t TestServer::port(std::size_t listener) const
{
    return m_ports.at(listener);
}

TestClient::TestClient(std::uint16_t port, std::chrono::milliseconds bound)
    : m_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)), m_bound(bound)
{
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(m_fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(m_fd);
        m_fd = -1;
    }
}

TestClient::TestClient(const std::string& unix_path, std::chrono::milliseconds bound)
    : m_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)), m_bound(bound)
{
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (unix_path.size() >= sizeof address.sun_path) {
        ::close(m_fd);
        m_fd = -1;
        return;
    }
    std::memcpy(address.sun_path, unix_path.c_str(), unix_path.size() + 1);
    if (::connect(m_fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(m_fd);
        m_fd = -1;
    }
}

TestClient::~TestClient()
{
    close();
}

void TestClient::close()
{
    if (m_ssl != nullptr) {
        SSL_free(m_ssl);
        m_ssl = nullptr;
    }
    if (m_ctx != nullptr) {
        SSL_CTX_free(m_ctx);
        m_ctx = nullptr;
    }
    if (m_fd >= 0) {
        ::close(m_fd);
        m_fd = -1;
    }
}

bool TestClient::send(std::string_view bytes)
{
    while (!bytes.empty()) {
        ssize_t n = 0;
        if (m_ssl != nullptr) {
            n = SSL_write(m_ssl, bytes.data(), static_cast<int>(bytes.size()));
        } else {
            n = ::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        }
        if (n <= 0) {
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

bool TestClient::fill()
{
    if (m_fd < 0) {
        return false;
    }
    if (m_ssl == nullptr || SSL_pending(m_ssl) == 0) {
        pollfd p{m_fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(m_bound.count())) <= 0) {
            return false;
        }
    }
    char chunk[16384]; // NOLINT(cppcoreguidelines-avoid-c-arrays,modernize-avoid-c-arrays)
    ssize_t n = 0;
    if (m_ssl != nullptr) {
        n = SSL_read(m_ssl, chunk, sizeof chunk);
    } else {
        n = ::recv(m_fd, chunk, sizeof chunk, 0);
    }
    if (n <= 0) {
        return false;
    }
    m_buffer.append(chunk, static_cast<std::size_t>(n));
    return true;
}

std::string TestClient::until(std::string_view terminator)
{
    std::size_t from = 0; // where the terminator may begin; bytes before were searched already
    for (;;) {
        if (const auto at = m_buffer.find(terminator, from); at != std::string::npos) {
            std::string out = m_buffer.substr(0, at + terminator.size());
            m_buffer.erase(0, at + terminator.size());
            return out;
        }
        from = m_buffer.size() >= terminator.size() ? m_buffer.size() - terminator.size() + 1 : 0;
        if (!fill()) {
            return std::exchange(m_buffer, {});
        }
    }
}

std::string TestClient::line()
{
    std::string out = until("\r\n");
    return out.ends_with("\r\n") ? out : std::string();
}

std::string TestClient::exactly(std::size_t count)
{
    while (m_buffer.size() < count && fill()) {
    }
    const auto n = std::min(count, m_buffer.size());
    std::string out = m_buffer.substr(0, n);
    m_buffer.erase(0, n);
    return out;
}

bool TestClient::eof(std::string* rest)
{
    for (;;) {
        if (m_fd < 0) {
            return true;
        }
        if (m_ssl == nullptr || SSL_pending(m_ssl) == 0) {
            pollfd p{m_fd, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(m_bound.count())) <= 0) {
                return false;
            }
        }
        char chunk[16384]; // NOLINT(cppcoreguidelines-avoid-c-arrays,modernize-avoid-c-arrays)
        const ssize_t n =
            m_ssl != nullptr ? SSL_read(m_ssl, chunk, sizeof chunk) : ::recv(m_fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            if (rest != nullptr) {
                *rest += std::exchange(m_buffer, {});
            }
            return true;
        }
        m_buffer.append(chunk, static_cast<std::size_t>(n));
    }
}

bool TestClient::start_tls(const TestCertificate* client_certificate, bool legacy_tls12)
{
    m_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(m_ctx, SSL_VERIFY_NONE, nullptr);
    if (legacy_tls12) {
        SSL_CTX_set_max_proto_version(m_ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(m_ctx, SSL_OP_NO_EXTENDED_MASTER_SECRET);
    }
    if (client_certificate != nullptr &&
        (SSL_CTX_use_certificate_file(m_ctx, client_certificate->certificate.c_str(), SSL_FILETYPE_PEM) !=
             1 ||
         SSL_CTX_use_PrivateKey_file(m_ctx, client_certificate->key.c_str(), SSL_FILETYPE_PEM) != 1)) {
        return false;
    }
    m_ssl = SSL_new(m_ctx);
    SSL_set_fd(m_ssl, m_fd);
    SSL_set_tlsext_host_name(m_ssl, "localhost");
    return SSL_connect(m_ssl) == 1;
}

bool TestClient::start_tls_offering(int min_version, int max_version, const char* tls12_ciphers)
{
    m_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(m_ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_security_level(m_ctx, 0);
    if (SSL_CTX_set_min_proto_version(m_ctx, min_version) != 1 ||
        SSL_CTX_set_max_proto_version(m_ctx, max_version) != 1 ||
        SSL_CTX_set_cipher_list(m_ctx, tls12_ciphers) != 1) {
        return false;
    }
    m_ssl = SSL_new(m_ctx);
    SSL_set_fd(m_ssl, m_fd);
    SSL_set_tlsext_host_name(m_ssl, "localhost");
    return SSL_connect(m_ssl) == 1;
}

std::string TestClient::peer_certificate_der() const
{
    return m_ssl != nullptr ? tls::certificate_der(m_ssl, false) : std::string();
}

} // namespace pigeon::test
