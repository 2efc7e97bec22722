// sasl_probe: logs in to a POP3 server on 127.0.0.1 with one of Pigeon's client-side SASL
// mechanisms (or APOP), then STAT and QUIT. For tests/interop/dovecot_sasl_test.py, which runs it
// against Dovecot's SASL.
//
//   sasl_probe PORT MECHANISM USER PASSWORD
//
// MECHANISM is PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256 or APOP. Prints the server's
// lines; exits 0 after "+OK" to the login and to STAT, 1 when the server refuses, 2 on a usage
// or connection error. Every read is bounded by a 10 s timeout.
#include "auth/passdb.hpp"
#include "core/base64.hpp"
#include "sasl/mechanism.hpp"

#include <fmt/format.h>

#include <arpa/inet.h>
#include <cstdlib>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace {

class Line {
public:
    explicit Line(int fd) : m_fd(fd) {}
    std::string read()
    {
        for (;;) {
            if (const auto end = m_buffer.find("\r\n"); end != std::string::npos) {
                std::string line = m_buffer.substr(0, end);
                m_buffer.erase(0, end + 2);
                fmt::print("S: {}\n", line);
                return line;
            }
            char chunk[4096];
            const ssize_t n = ::recv(m_fd, chunk, sizeof chunk, 0);
            if (n <= 0 || m_buffer.size() > 65536) {
                return {};
            }
            m_buffer.append(chunk, static_cast<std::size_t>(n));
        }
    }
    void send(const std::string& line)
    {
        fmt::print("C: {}\n", line);
        const std::string out = line + "\r\n";
        (void)::send(m_fd, out.data(), out.size(), MSG_NOSIGNAL);
    }

private:
    int m_fd;
    std::string m_buffer;
};

std::unique_ptr<pigeon::sasl::ClientMechanism>
client_for(const std::string& mechanism, const std::string& user, const std::string& password)
{
    using pigeon::SecretString;
    namespace sasl = pigeon::sasl;
    if (mechanism == "PLAIN") {
        return sasl::make_plain_client("", user, SecretString(password));
    }
    if (mechanism == "LOGIN") {
        return sasl::make_login_client(user, SecretString(password));
    }
    if (mechanism == "CRAM-MD5") {
        return sasl::make_cram_md5_client(user, SecretString(password));
    }
    return sasl::make_scram_client(mechanism, "", user, SecretString(password), {});
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 5) {
        fmt::print(stderr, "usage: sasl_probe PORT MECHANISM USER PASSWORD\n");
        return 2;
    }
    const std::string mechanism = argv[2];
    const std::string user = argv[3];
    const std::string password = argv[4];
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        fmt::print(stderr, "sasl_probe: cannot connect\n");
        return 2;
    }
    Line io(fd);
    const std::string greeting = io.read();
    std::string reply;
    if (mechanism == "APOP") {
        const auto open = greeting.find('<');
        const auto close = greeting.find('>', open);
        if (open == std::string::npos || close == std::string::npos) {
            fmt::print(stderr, "sasl_probe: no APOP timestamp in the greeting\n");
            return 2;
        }
        io.send(fmt::format("APOP {} {}", user,
                            pigeon::auth::apop_digest(greeting.substr(open, close - open + 1), password)));
        reply = io.read();
    } else {
        auto client = client_for(mechanism, user, password);
        if (!client) {
            fmt::print(stderr, "sasl_probe: no client mechanism {}\n", mechanism);
            return 2;
        }
        const auto initial = client->initial_response();
        io.send(initial ? fmt::format("AUTH {} {}", mechanism,
                                      initial->empty() ? "=" : pigeon::base64_encode(*initial))
                        : fmt::format("AUTH {}", mechanism));
        for (int round = 0; round < 8; ++round) {
            reply = io.read();
            if (!reply.starts_with("+ ") && reply != "+") {
                break;
            }
            std::string response = "*"; // cancels (RFC 5034 §4) when the challenge cannot be answered
            if (auto challenge = pigeon::base64_decode(reply.size() > 2 ? reply.substr(2) : std::string())) {
                if (auto answer = client->respond(*challenge)) {
                    response = pigeon::base64_encode(*answer);
                }
            }
            io.send(response);
        }
    }
    if (!reply.starts_with("+OK")) {
        io.send("QUIT");
        (void)io.read();
        return 1;
    }
    io.send("STAT");
    const bool stat_ok = io.read().starts_with("+OK");
    io.send("QUIT");
    (void)io.read();
    ::close(fd);
    return stat_ok ? 0 : 1;
}
