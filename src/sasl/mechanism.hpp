// SASL mechanisms without I/O (RFC 4422), server and client side. A server mechanism consumes
// decoded client responses and answers with a challenge, a request to verify credentials, or a
// failure; the POP3 session (RFC 5034) owns base64 and the "+ " framing. This module knows
// nothing of POP3 or of user databases.
//
// Implemented here: PLAIN (RFC 4616), LOGIN, SCRAM-SHA-1/-256 with their -PLUS variants through
// GNU SASL, CRAM-MD5 (RFC 2195), EXTERNAL, and the framing of OAUTHBEARER (RFC 7628) and
// XOAUTH2.
#pragma once

#include "core/result.hpp"
#include "core/secret.hpp"

#include <cstdint>
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

// An OAuth 2.0 bearer token (OAUTHBEARER, RFC 7628; XOAUTH2), for the token validator.
struct BearerCredentials {
    std::string user;
    SecretString token;
};

using Credentials = std::variant<PasswordCredentials, ApopCredentials, BearerCredentials>;

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
// The mechanism needs the user's stored secret (SCRAM): the session asks the driver to look the
// user up and answers with ServerMechanism::provide_secret().
struct NeedSecret {
    std::string user;
};
// The mechanism proved the credentials itself (SCRAM). final_data, if any, is the server's last
// message (RFC 4422 §3.6), which POP3 sends as one more challenge answered by an empty line.
struct Authenticated {
    std::string user;
    std::optional<std::string> final_data;
};
using ServerStep = std::variant<Challenge, Verify, NeedSecret, Authenticated, Failure>;

// A user's stored secret from the user database, as "{SCHEME}data" (password_scheme.hpp).
struct StoredSecret {
    std::string user; // canonical name
    SecretString stored;
};

// What a mechanism may know of the connection: RFC 9266 tls-exporter channel-binding data
// (32 octets from the TLS session) when TLS is active, for the -PLUS mechanisms.
struct MechanismContext {
    std::string tls_exporter;
    // The user a verified TLS client certificate maps to (EXTERNAL, RFC 4422 appendix A); empty
    // when the client presented none.
    std::string external_identity;
    // RFC 5929 tls-server-end-point data (the hash of the server's certificate), when TLS is
    // active: the -PLUS mechanisms' binding for clients that ask for it, and for sessions
    // without an exporter.
    std::string tls_server_end_point;
};

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
    // The answer to NeedSecret: the record, or nothing for an unknown user (the mechanism then
    // goes on with a made-up secret, so the exchange does not reveal whether the user exists).
    [[nodiscard]] virtual ServerStep provide_secret(std::optional<StoredSecret> secret)
    {
        static_cast<void>(secret);
        return Failure{};
    }
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

// A server mechanism by its name (case-insensitive), or nullptr if Pigeon has none by that name
// (or it needs channel binding the context lacks).
[[nodiscard]] std::unique_ptr<ServerMechanism> make_server_mechanism(std::string_view name,
                                                                     const MechanismContext& context = {});

// SCRAM (RFC 5802, RFC 7677), with channel binding for the -PLUS variants (RFC 9266), through
// GNU SASL: the names it implements here, server and client side.
[[nodiscard]] bool is_scram_mechanism(std::string_view name) noexcept;
[[nodiscard]] std::unique_ptr<ServerMechanism> make_scram_server(std::string_view name,
                                                                 const MechanismContext& context);
[[nodiscard]] std::unique_ptr<ClientMechanism> make_scram_client(std::string_view name, std::string authzid,
                                                                 std::string authcid, SecretString password,
                                                                 const MechanismContext& context);

// Dovecot's stored SCRAM secret: "<iterations>,<base64 salt>,<base64 StoredKey>,<base64 ServerKey>"
// (what follows "{SCRAM-SHA-256}").
struct ScramSecret {
    std::uint32_t iterations = 0;
    std::string salt;       // raw
    std::string stored_key; // raw
    std::string server_key; // raw
};
[[nodiscard]] std::optional<ScramSecret> parse_scram_secret(std::string_view text);

[[nodiscard]] std::unique_ptr<ServerMechanism> make_login_server();
// CRAM-MD5 (RFC 2195), checked against a stored {PLAIN} or Dovecot {CRAM-MD5} secret.
[[nodiscard]] std::unique_ptr<ServerMechanism> make_cram_md5_server();
[[nodiscard]] std::unique_ptr<ClientMechanism> make_cram_md5_client(std::string user, SecretString password);
[[nodiscard]] std::unique_ptr<ClientMechanism> make_login_client(std::string user, SecretString password);

// EXTERNAL: the identity was established outside SASL (a TLS client certificate). The client
// may name the user it wants (its authzid); it must be the certificate's.
[[nodiscard]] std::unique_ptr<ServerMechanism> make_external_server(const MechanismContext& context);
[[nodiscard]] std::unique_ptr<ClientMechanism> make_external_client(std::string authzid);

// OAUTHBEARER (RFC 7628) and XOAUTH2 (Google's and Microsoft's form): the framing of a bearer
// token; the token itself is checked by the authentication layer (BearerCredentials).
[[nodiscard]] std::unique_ptr<ServerMechanism> make_bearer_server(std::string_view name);
[[nodiscard]] std::unique_ptr<ClientMechanism> make_bearer_client(std::string_view name, std::string user,
                                                                  SecretString token, std::string host,
                                                                  std::uint16_t port);

[[nodiscard]] std::unique_ptr<ClientMechanism> make_plain_client(std::string authzid, std::string authcid,
                                                                 SecretString password);

} // namespace pigeon::sasl
