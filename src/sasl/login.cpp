// LOGIN (draft-murchison-sasl-login): the server asks "Username:" then "Password:", the client
// answers each. Obsolete but still what Outlook and many phones send first; a plaintext
// mechanism, so the session offers it only where plaintext credentials are allowed.
#include "core/strings.hpp"
#include "sasl/mechanism.hpp"

namespace pigeon::sasl {
namespace {

constexpr std::size_t max_login_field_octets = 255; // the same bound PLAIN has (RFC 4616 §2)

class LoginServer final : public ServerMechanism {
public:
    [[nodiscard]] std::string_view name() const noexcept override { return "LOGIN"; }

    [[nodiscard]] ServerStep start(std::optional<std::string_view> initial_response) override
    {
        // Clients may send the user name as an initial response (curl does with --sasl-ir).
        if (initial_response && !initial_response->empty()) {
            return step(*initial_response);
        }
        return Challenge{"Username:"};
    }

    [[nodiscard]] ServerStep step(std::string_view response) override
    {
        if (response.empty() || response.size() > max_login_field_octets ||
            response.find('\0') != std::string_view::npos || !is_valid_utf8(response)) {
            return Failure{};
        }
        if (!m_user) {
            m_user = std::string(response);
            return Challenge{"Password:"};
        }
        return Verify{PasswordCredentials{{}, std::move(*m_user), SecretString(std::string(response))}};
    }

private:
    std::optional<std::string> m_user;
};

class LoginClient final : public ClientMechanism {
public:
    LoginClient(std::string user, SecretString password)
        : m_user(std::move(user)), m_password(std::move(password))
    {
    }

    [[nodiscard]] std::string_view name() const noexcept override { return "LOGIN"; }
    [[nodiscard]] std::optional<std::string> initial_response() override { return std::nullopt; }

    [[nodiscard]] Result<std::string> respond(std::string_view challenge) override
    {
        // The prompts' texts are not standard ("Username:", "User Name", "VXNlcm5hbWU6"
        // decoded...); answer by position, as every client does.
        static_cast<void>(challenge);
        switch (m_answered++) {
        case 0: return m_user;
        case 1: return std::string(m_password.view());
        default: return fail(errc::unexpected_reply);
        }
    }

private:
    std::string m_user;
    SecretString m_password;
    int m_answered = 0;
};

} // namespace

std::unique_ptr<ServerMechanism> make_login_server()
{
    return std::make_unique<LoginServer>();
}

std::unique_ptr<ClientMechanism> make_login_client(std::string user, SecretString password)
{
    return std::make_unique<LoginClient>(std::move(user), std::move(password));
}

} // namespace pigeon::sasl
