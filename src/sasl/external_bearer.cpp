// EXTERNAL (RFC 4422 appendix A) and the bearer-token mechanisms: OAUTHBEARER (RFC 7628) and
// XOAUTH2 (the older form Gmail and Microsoft 365 still use). Their framing only: EXTERNAL's
// identity comes from the TLS layer, and a bearer token is handed to the authentication layer as
// BearerCredentials, which validates it (issuer, audience, expiry, signature).
#include "core/strings.hpp"
#include "sasl/mechanism.hpp"

#include <fmt/format.h>

namespace pigeon::sasl {
namespace {

// RFC 7628 §3.1: kvsep is 0x01.
constexpr char kvsep = '\x01';
// Tokens from Microsoft's identity platform exceed 2,000 octets; 8 KiB is far above any seen in
// practice and, base64-encoded with its framing, still fits limits::max_sasl_line_octets.
constexpr std::size_t max_token_octets = std::size_t{8} * 1024;

class ExternalServer final : public ServerMechanism {
public:
    explicit ExternalServer(std::string identity) : m_identity(std::move(identity)) {}

    [[nodiscard]] std::string_view name() const noexcept override { return "EXTERNAL"; }

    [[nodiscard]] ServerStep start(std::optional<std::string_view> initial_response) override
    {
        if (!initial_response) {
            return Challenge{}; // RFC 4422: the client then sends its (possibly empty) authzid
        }
        return step(*initial_response);
    }

    [[nodiscard]] ServerStep step(std::string_view authzid) override
    {
        if (m_identity.empty() || (!authzid.empty() && authzid != m_identity)) {
            return Failure{};
        }
        return Authenticated{m_identity, std::nullopt};
    }

private:
    std::string m_identity;
};

class ExternalClient final : public ClientMechanism {
public:
    explicit ExternalClient(std::string authzid) : m_authzid(std::move(authzid)) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "EXTERNAL"; }
    [[nodiscard]] std::optional<std::string> initial_response() override { return m_authzid; }
    [[nodiscard]] Result<std::string> respond(std::string_view /*challenge*/) override { return m_authzid; }

private:
    std::string m_authzid;
};

// Splits "key=value" pairs separated by kvsep; the message ends with two kvseps.
std::optional<std::string_view> find_value(std::string_view pairs, std::string_view key)
{
    while (!pairs.empty()) {
        const std::size_t end = pairs.find(kvsep);
        const std::string_view pair = pairs.substr(0, end);
        if (pair.size() > key.size() && pair.substr(0, key.size()) == key && pair[key.size()] == '=') {
            return pair.substr(key.size() + 1);
        }
        if (end == std::string_view::npos) {
            break;
        }
        pairs.remove_prefix(end + 1);
    }
    return std::nullopt;
}

class BearerServer final : public ServerMechanism {
public:
    explicit BearerServer(bool oauthbearer) : m_oauthbearer(oauthbearer) {}

    [[nodiscard]] std::string_view name() const noexcept override
    {
        return m_oauthbearer ? "OAUTHBEARER" : "XOAUTH2";
    }

    [[nodiscard]] ServerStep start(std::optional<std::string_view> initial_response) override
    {
        if (!initial_response) {
            return Challenge{};
        }
        return step(*initial_response);
    }

    [[nodiscard]] ServerStep step(std::string_view message) override
    {
        if (message.size() > max_token_octets + 1024 || !message.ends_with("\x01\x01")) {
            return Failure{};
        }
        std::string_view pairs = message;
        std::string user;
        if (m_oauthbearer) {
            // gs2-header: "n," or "y," then optional "a=" authzid, then ","; then kvsep.
            if (!(pairs.starts_with("n,") || pairs.starts_with("y,"))) {
                return Failure{};
            }
            pairs.remove_prefix(2);
            const std::size_t comma = pairs.find(',');
            if (comma == std::string_view::npos) {
                return Failure{};
            }
            if (pairs.starts_with("a=")) {
                user = std::string(pairs.substr(2, comma - 2));
            }
            pairs.remove_prefix(comma + 1);
            if (!pairs.starts_with(kvsep)) {
                return Failure{};
            }
            pairs.remove_prefix(1);
        } else {
            const auto named = find_value(pairs, "user");
            if (!named) {
                return Failure{};
            }
            user = std::string(*named);
        }
        const auto auth = find_value(pairs, "auth");
        // RFC 6750 §2.1: "Bearer" is case-insensitive, followed by one space and the token.
        if (!auth || auth->size() < 8 || !iequals(auth->substr(0, 7), "Bearer ") || user.empty() ||
            auth->size() - 7 > max_token_octets || has_control_characters(user) || !is_valid_utf8(user)) {
            return Failure{};
        }
        return Verify{BearerCredentials{std::move(user), SecretString(std::string(auth->substr(7)))}};
    }

private:
    bool m_oauthbearer;
};

class BearerClient final : public ClientMechanism {
public:
    BearerClient(bool oauthbearer, std::string user, SecretString token, std::string host, std::uint16_t port)
        : m_oauthbearer(oauthbearer), m_user(std::move(user)), m_token(std::move(token)),
          m_host(std::move(host)), m_port(port)
    {
    }

    [[nodiscard]] std::string_view name() const noexcept override
    {
        return m_oauthbearer ? "OAUTHBEARER" : "XOAUTH2";
    }

    [[nodiscard]] std::optional<std::string> initial_response() override
    {
        if (m_oauthbearer) {
            // (String literals split after each \x01: "\x01a" would be one escape, 0x1a.)
            return fmt::format("n,a={},\x01"
                               "host={}\x01"
                               "port={}\x01"
                               "auth=Bearer {}\x01\x01",
                               m_user, m_host, m_port, m_token.view());
        }
        return fmt::format("user={}\x01"
                           "auth=Bearer {}\x01\x01",
                           m_user, m_token.view());
    }

    // After a refusal the server sends an error (JSON) as a challenge; RFC 7628 §3.2.3: the
    // client answers with a single kvsep (OAUTHBEARER) or an empty line (XOAUTH2), and the
    // server then fails the exchange.
    [[nodiscard]] Result<std::string> respond(std::string_view /*challenge*/) override
    {
        return m_oauthbearer ? std::string(1, kvsep) : std::string();
    }

private:
    bool m_oauthbearer;
    std::string m_user;
    SecretString m_token;
    std::string m_host;
    std::uint16_t m_port;
};

} // namespace

std::unique_ptr<ServerMechanism> make_external_server(const MechanismContext& context)
{
    if (context.external_identity.empty()) {
        return nullptr; // no certificate, nothing EXTERNAL could stand on
    }
    return std::make_unique<ExternalServer>(context.external_identity);
}

std::unique_ptr<ClientMechanism> make_external_client(std::string authzid)
{
    return std::make_unique<ExternalClient>(std::move(authzid));
}

std::unique_ptr<ServerMechanism> make_bearer_server(std::string_view name)
{
    if (iequals(name, "OAUTHBEARER")) {
        return std::make_unique<BearerServer>(true);
    }
    if (iequals(name, "XOAUTH2")) {
        return std::make_unique<BearerServer>(false);
    }
    return nullptr;
}

std::unique_ptr<ClientMechanism> make_bearer_client(std::string_view name, std::string user,
                                                    SecretString token, std::string host, std::uint16_t port)
{
    const bool oauthbearer = iequals(name, "OAUTHBEARER");
    if (!oauthbearer && !iequals(name, "XOAUTH2")) {
        return nullptr;
    }
    return std::make_unique<BearerClient>(oauthbearer, std::move(user), std::move(token), std::move(host),
                                          port);
}

} // namespace pigeon::sasl
