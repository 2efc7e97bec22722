// PLAIN (RFC 4616): message = [authzid] NUL authcid NUL passwd, each part UTF-8 without NUL,
// authcid and passwd non-empty, each at most 255 octets.
#include "core/strings.hpp"
#include "sasl/mechanism.hpp"

namespace pigeon::sasl {
namespace {

constexpr std::size_t max_plain_field_octets = 255; // RFC 4616 §2

class PlainServer final : public ServerMechanism {
public:
    [[nodiscard]] std::string_view name() const noexcept override { return "PLAIN"; }

    [[nodiscard]] ServerStep start(std::optional<std::string_view> initial_response) override
    {
        if (!initial_response) {
            return Challenge{}; // RFC 4616 §2: an empty challenge asks for the message
        }
        return step(*initial_response);
    }

    [[nodiscard]] ServerStep step(std::string_view response) override
    {
        const std::size_t first_nul = response.find('\0');
        if (first_nul == std::string_view::npos) {
            return Failure{};
        }
        const std::size_t second_nul = response.find('\0', first_nul + 1);
        if (second_nul == std::string_view::npos) {
            return Failure{};
        }
        const std::string_view authzid = response.substr(0, first_nul);
        const std::string_view authcid = response.substr(first_nul + 1, second_nul - first_nul - 1);
        const std::string_view password = response.substr(second_nul + 1);
        if (authcid.empty() || password.empty() || password.find('\0') != std::string_view::npos ||
            authzid.size() > max_plain_field_octets || authcid.size() > max_plain_field_octets ||
            password.size() > max_plain_field_octets || !is_valid_utf8(authzid) || !is_valid_utf8(authcid) ||
            !is_valid_utf8(password)) {
            return Failure{};
        }
        // Acting as another user needs master-user support; until then an authzid must name the
        // authenticating user itself.
        if (!authzid.empty() && authzid != authcid) {
            return Failure{};
        }
        return Verify{PasswordCredentials{std::string(authzid), std::string(authcid),
                                          SecretString(std::string(password))}};
    }
};

class PlainClient final : public ClientMechanism {
public:
    PlainClient(std::string authzid, std::string authcid, SecretString password)
        : m_authzid(std::move(authzid)), m_authcid(std::move(authcid)), m_password(std::move(password))
    {
    }

    [[nodiscard]] std::string_view name() const noexcept override { return "PLAIN"; }

    [[nodiscard]] std::optional<std::string> initial_response() override { return message(); }

    [[nodiscard]] Result<std::string> respond(std::string_view challenge) override
    {
        if (!challenge.empty() || m_sent) {
            return fail(errc::unexpected_reply);
        }
        return message();
    }

private:
    std::string message()
    {
        m_sent = true;
        std::string out;
        out.reserve(m_authzid.size() + m_authcid.size() + m_password.view().size() + 2);
        out.append(m_authzid).push_back('\0');
        out.append(m_authcid).push_back('\0');
        out.append(m_password.view());
        return out;
    }

    std::string m_authzid;
    std::string m_authcid;
    SecretString m_password;
    bool m_sent = false;
};

} // namespace

std::string_view credentials_user(const Credentials& credentials) noexcept
{
    if (const auto* password = std::get_if<PasswordCredentials>(&credentials)) {
        return password->authcid;
    }
    if (const auto* apop = std::get_if<ApopCredentials>(&credentials)) {
        return apop->user;
    }
    return std::get<BearerCredentials>(credentials).user;
}

bool is_plaintext_mechanism(std::string_view name) noexcept
{
    return iequals(name, "PLAIN") || iequals(name, "LOGIN");
}

std::unique_ptr<ServerMechanism> make_server_mechanism(std::string_view name, const MechanismContext& context)
{
    if (is_scram_mechanism(name)) {
        return make_scram_server(name, context);
    }
    if (iequals(name, "PLAIN")) {
        return std::make_unique<PlainServer>();
    }
    if (iequals(name, "LOGIN")) {
        return make_login_server();
    }
    if (iequals(name, "CRAM-MD5")) {
        return make_cram_md5_server();
    }
    if (iequals(name, "EXTERNAL")) {
        return make_external_server(context);
    }
    if (iequals(name, "OAUTHBEARER") || iequals(name, "XOAUTH2")) {
        return make_bearer_server(name);
    }
    return nullptr;
}

std::unique_ptr<ClientMechanism> make_plain_client(std::string authzid, std::string authcid,
                                                   SecretString password)
{
    return std::make_unique<PlainClient>(std::move(authzid), std::move(authcid), std::move(password));
}

} // namespace pigeon::sasl
