// SASL mechanisms without I/O (RFC 4422), server and client side. A server mechanism consumes
// decoded client responses and answers with a challenge, a request to verify credentials, or a
// failure; the POP3 session (RFC 5034) owns base64 and the "+ " framing. This module knows
// nothing of POP3 or of user databases.
//
// Implemented here: PLAIN (RFC 4616) and LOGIN. The other mechanisms (CRAM-MD5, SCRAM-*,
// EXTERNAL, OAUTHBEARER, XOAUTH2) arrive with the authentication issue behind the same interface.
#pragma once

#include "core/result.hpp"
#include "core/secret.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace pigeon::sasl {

// A user name with a password to check, from USER/PASS or a plaintext mechanism.
struct PasswordCredentials {
    std::string authzid; // authorisation identity; empty means "the same as authcid"
    std::string authcid; // authentication identity (the login name)
    SecretString password;
};

// RFC 1939 §7 APOP: the digest is MD5(timestamp + password), lower-case hex.
struct ApopCredentials {
    std::string user;
    std::string timestamp;
    std::string digest;
};

using Credentials = std::variant<PasswordCredentials, ApopCredentials>;

[[nodiscard]] std::string_view credentials_user(const Credentials& credentials) noexcept;

struct Challenge {
    std::string data; // raw bytes; the session base64-encodes them
};
struct Verify {
    Credentials credentials;
};
struct Failure {
    errc reason = errc::auth_failed;
};
using ServerStep = std::variant<Challenge, Verify, Failure>;

class ServerMechanism {
public:
    ServerMechanism() = default;
    ServerMechanism(const ServerMechanism&) = delete;
    ServerMechanism& operator=(const ServerMechanism&) = delete;
    virtual ~ServerMechanism() = default;

    [[nodiscard]] virtual std::string_view name() const noexcept = 0;
    // The first step, with the initial response if the client sent one (RFC 4422 §3.3).
    [[nodiscard]] virtual ServerStep start(std::optional<std::string_view> initial_response) = 0;
    // Each later client response, decoded.
    [[nodiscard]] virtual ServerStep step(std::string_view response) = 0;
};

class ClientMechanism {
public:
    ClientMechanism() = default;
    ClientMechanism(const ClientMechanism&) = delete;
    ClientMechanism& operator=(const ClientMechanism&) = delete;
    virtual ~ClientMechanism() = default;

    [[nodiscard]] virtual std::string_view name() const noexcept = 0;
    // The initial response, if this mechanism sends one.
    [[nodiscard]] virtual std::optional<std::string> initial_response() = 0;
    // The response to a decoded server challenge.
    [[nodiscard]] virtual Result<std::string> respond(std::string_view challenge) = 0;
};

// True for mechanisms that carry the password in the clear (refused before TLS by policy).
[[nodiscard]] bool is_plaintext_mechanism(std::string_view name) noexcept;

// A server mechanism by its name (case-insensitive), or nullptr if Pigeon has none by that name.
[[nodiscard]] std::unique_ptr<ServerMechanism> make_server_mechanism(std::string_view name);

[[nodiscard]] std::unique_ptr<ServerMechanism> make_login_server();
[[nodiscard]] std::unique_ptr<ClientMechanism> make_login_client(std::string user, SecretString password);

[[nodiscard]] std::unique_ptr<ClientMechanism> make_plain_client(std::string authzid, std::string authcid,
                                                                 SecretString password);

} // namespace pigeon::sasl
