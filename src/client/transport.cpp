#include "client/transport.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pigeon::client {
namespace {

TransportError network_error(std::string message)
{
    return TransportError{TransportError::Kind::network, std::move(message)};
}

int remaining_ms(Transport::Clock::time_point deadline)
{
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Transport::Clock::now());
    return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1'000'000'000LL));
}

std::string numeric_address(const sockaddr* address, socklen_t length)
{
    std::array<char, NI_MAXHOST> host{};
    std::array<char, NI_MAXSERV> port{};
    if (::getnameinfo(address, length, host.data(), host.size(), port.data(), port.size(),
                      NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        return "?";
    }
    return address->sa_family == AF_INET6 ? fmt::format("[{}]:{}", host.data(), port.data())
                                          : fmt::format("{}:{}", host.data(), port.data());
}

std::string ssl_error_text()
{
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) {
        return errno != 0 ? std::strerror(errno) : "connection closed";
    }
    std::array<char, 256> text{};
    ERR_error_string_n(code, text.data(), text.size());
    return text.data();
}

} // namespace

Transport::~Transport()
{
    close();
}

void Transport::close() noexcept
{
    if (m_ssl != nullptr) {
        SSL_free(m_ssl);
        m_ssl = nullptr;
    }
    if (m_fd >= 0) {
        ::close(m_fd);
        m_fd = -1;
    }
}

bool Transport::wait(bool for_write, Clock::time_point deadline) const
{
    for (;;) {
        pollfd entry{m_fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
        const int ready = ::poll(&entry, 1, remaining_ms(deadline));
        if (ready > 0) {
            return true;
        }
        if (ready == 0 || errno != EINTR) {
            return false;
        }
    }
}

TransportResult<void> Transport::connect(const std::string& host, std::uint16_t port,
                                         std::chrono::milliseconds timeout)
{
    close();
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (const int status = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); status != 0) {
        return tl::unexpected(
            network_error(fmt::format("cannot resolve {}: {}", host, ::gai_strerror(status))));
    }
    std::string failures;
    for (const addrinfo* address = found; address != nullptr; address = address->ai_next) {
        // Each address gets the whole timeout: one that drops packets must not starve the next.
        const auto deadline = Clock::now() + timeout;
        const int fd = ::socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                                address->ai_protocol);
        if (fd < 0) {
            continue;
        }
        m_fd = fd;
        const std::string peer = numeric_address(address->ai_addr, address->ai_addrlen);
        int error = 0;
        if (::connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
            error = errno;
            if (error == EINPROGRESS) {
                error = ETIMEDOUT;
                if (wait(true, deadline)) {
                    socklen_t length = sizeof error;
                    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
                }
            }
        }
        if (error == 0) {
            m_peer = peer;
            const int on = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
            ::freeaddrinfo(found);
            return {};
        }
        failures += fmt::format("{}{}: {}", failures.empty() ? "" : "; ", peer, std::strerror(error));
        ::close(fd);
        m_fd = -1;
    }
    ::freeaddrinfo(found);
    return tl::unexpected(network_error(fmt::format("cannot connect to {} port {}: {}", host, port,
                                                    failures.empty() ? "no usable address" : failures)));
}

TransportResult<tls::TlsInfo> Transport::start_tls(const tls::ClientTlsContext& context,
                                                   const std::string& host, std::chrono::milliseconds timeout)
{
    m_ssl = context.new_session(m_fd, host);
    if (m_ssl == nullptr) {
        return tl::unexpected(TransportError{TransportError::Kind::tls, "cannot create a TLS session"});
    }
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        const int done = SSL_connect(m_ssl);
        if (done == 1) {
            break;
        }
        const int reason = SSL_get_error(m_ssl, done);
        if (reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE) {
            if (!wait(reason == SSL_ERROR_WANT_WRITE, deadline)) {
                return tl::unexpected(network_error("TLS handshake timed out"));
            }
            continue;
        }
        std::string why = ssl_error_text();
        if (const long verify = SSL_get_verify_result(m_ssl); verify != X509_V_OK) {
            const auto info = tls::describe_peer(m_ssl);
            why = fmt::format("the server's certificate is not trusted: {}{}",
                              X509_verify_cert_error_string(verify),
                              info.subject.empty() ? std::string()
                                                   : fmt::format(" (subject {}, SHA-256 {})", info.subject,
                                                                 info.sha256_fingerprint));
        }
        return tl::unexpected(TransportError{TransportError::Kind::tls, "TLS handshake failed: " + why});
    }
    auto checked = context.check_peer(m_ssl);
    if (!checked) {
        return tl::unexpected(TransportError{TransportError::Kind::tls, checked.error()});
    }
    return *checked;
}

TransportResult<std::string> Transport::read_some(std::size_t max, std::chrono::milliseconds timeout)
{
    if (m_fd < 0) {
        return tl::unexpected(network_error("not connected"));
    }
    std::string buffer(max, '\0');
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (m_ssl != nullptr) {
            ERR_clear_error();
            std::size_t got = 0;
            if (SSL_read_ex(m_ssl, buffer.data(), buffer.size(), &got) == 1) {
                // One record per SSL_read: take the records already read ahead as well.
                std::size_t more = 0;
                while (got < buffer.size() && SSL_pending(m_ssl) > 0 &&
                       SSL_read_ex(m_ssl, buffer.data() + got, buffer.size() - got, &more) == 1) {
                    got += more;
                }
                buffer.resize(got);
                return buffer;
            }
            const int reason = SSL_get_error(m_ssl, 0);
            if (reason == SSL_ERROR_ZERO_RETURN) {
                return std::string();
            }
            if (reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE) {
                if (!wait(reason == SSL_ERROR_WANT_WRITE, deadline)) {
                    return tl::unexpected(network_error("timed out waiting for the server"));
                }
                continue;
            }
            if (reason == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) {
                return std::string(); // closed without close_notify: the caller decides
            }
            return tl::unexpected(network_error("TLS read failed: " + ssl_error_text()));
        }
        const ssize_t got = ::recv(m_fd, buffer.data(), buffer.size(), 0);
        if (got >= 0) {
            buffer.resize(static_cast<std::size_t>(got));
            return buffer;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait(false, deadline)) {
                return tl::unexpected(network_error("timed out waiting for the server"));
            }
            continue;
        }
        return tl::unexpected(network_error(fmt::format("read failed: {}", std::strerror(errno))));
    }
}

TransportResult<void> Transport::write_all(std::string_view bytes, std::chrono::milliseconds timeout)
{
    if (m_fd < 0) {
        return tl::unexpected(network_error("not connected"));
    }
    const auto deadline = Clock::now() + timeout;
    while (!bytes.empty()) {
        if (m_ssl != nullptr) {
            ERR_clear_error();
            std::size_t sent = 0;
            if (SSL_write_ex(m_ssl, bytes.data(), bytes.size(), &sent) == 1) {
                bytes.remove_prefix(sent);
                continue;
            }
            const int reason = SSL_get_error(m_ssl, 0);
            if (reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE) {
                if (!wait(reason == SSL_ERROR_WANT_WRITE, deadline)) {
                    return tl::unexpected(network_error("timed out sending to the server"));
                }
                continue;
            }
            return tl::unexpected(network_error("TLS write failed: " + ssl_error_text()));
        }
        const ssize_t sent = ::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (sent >= 0) {
            bytes.remove_prefix(static_cast<std::size_t>(sent));
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait(true, deadline)) {
                return tl::unexpected(network_error("timed out sending to the server"));
            }
            continue;
        }
        return tl::unexpected(network_error(fmt::format("write failed: {}", std::strerror(errno))));
    }
    return {};
}

} // namespace pigeon::client
