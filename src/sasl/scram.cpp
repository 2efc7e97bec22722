// SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants (RFC 5802, RFC 7677, RFC 9266) through
// GNU SASL, which does the cryptography, SASLprep and channel binding. This file adapts its
// callback model to the sans-I/O steps: the server mechanism reads the user name from the
// client-first message itself, asks the session for the stored secret (NeedSecret), and only
// then lets GNU SASL run, answering its property callbacks from that secret.
#include "core/base64.hpp"
#include "core/strings.hpp"
#include "sasl/mechanism.hpp"
#include "sasl/scram_endpoint.hpp"

#include <gsasl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <mutex>

namespace pigeon::sasl {
namespace {

constexpr std::array<std::string_view, 4> scram_names{"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                                      "SCRAM-SHA-256-PLUS"};

int property_callback(Gsasl* context, Gsasl_session* session, Gsasl_property property);

// One GNU SASL library context for the process (it holds only the mechanism table and the
// callback; per-exchange state lives in each Gsasl_session).
Gsasl* library()
{
    static Gsasl* context = nullptr; // NOLINT(cppcoreguidelines-avoid-non-const-global-variables): set once
    static std::once_flag once;
    std::call_once(once, [] {
        if (gsasl_init(&context) == GSASL_OK) {
            gsasl_callback_set(context, property_callback);
        } else {
            context = nullptr;
        }
    });
    return context;
}

// Answers GNU SASL's questions for one exchange.
class PropertySource {
public:
    PropertySource() = default;
    PropertySource(const PropertySource&) = delete;
    PropertySource& operator=(const PropertySource&) = delete;
    virtual ~PropertySource() = default;
    virtual int answer(Gsasl_session* session, Gsasl_property property) = 0;
};

int property_callback(Gsasl* /*context*/, Gsasl_session* session, Gsasl_property property)
{
    auto* source = static_cast<PropertySource*>(gsasl_session_hook_get(session));
    return source != nullptr ? source->answer(session, property) : GSASL_NO_CALLBACK;
}

bool is_sha1(std::string_view mechanism)
{
    return mechanism.starts_with("SCRAM-SHA-1");
}

class ScramServer final : public ServerMechanism, PropertySource {
public:
    ScramServer(std::string name, const MechanismContext& context)
        : m_name(std::move(name)), m_tls_exporter(context.tls_exporter),
          m_server_end_point(context.tls_server_end_point)
    {
    }
    ScramServer(const ScramServer&) = delete;
    ScramServer& operator=(const ScramServer&) = delete;
    ScramServer(ScramServer&&) = delete;
    ScramServer& operator=(ScramServer&&) = delete;
    ~ScramServer() override
    {
        if (m_session != nullptr) {
            gsasl_finish(m_session);
        }
    }

    [[nodiscard]] std::string_view name() const noexcept override { return m_name; }

    [[nodiscard]] ServerStep start(std::optional<std::string_view> initial_response) override
    {
        if (!initial_response || initial_response->empty()) {
            return Challenge{}; // ask for the client-first message
        }
        return client_first(*initial_response);
    }

    [[nodiscard]] ServerStep step(std::string_view response) override
    {
        if (m_end_point) {
            return m_end_point->step(response);
        }
        if (!m_client_first) {
            return client_first(response);
        }
        if (m_session == nullptr) {
            return Failure{};
        }
        return run(response);
    }

    [[nodiscard]] ServerStep provide_secret(std::optional<StoredSecret> secret) override
    {
        if (m_end_point) {
            return m_end_point->provide_secret(std::move(secret));
        }
        if (!m_client_first || m_session != nullptr || library() == nullptr) {
            return Failure{};
        }
        if (secret) {
            m_user = secret->user;
            const std::string_view stored = secret->stored.view();
            const std::string_view prefix = is_sha1(m_name) ? "{SCRAM-SHA-1}" : "{SCRAM-SHA-256}";
            if (stored.size() > prefix.size() && iequals(stored.substr(0, prefix.size()), prefix)) {
                m_scram = parse_scram_secret(stored.substr(prefix.size()));
            } else if (stored.size() > 7 && iequals(stored.substr(0, 7), "{PLAIN}")) {
                m_password = SecretString(std::string(stored.substr(7)));
            }
            // Any other scheme cannot serve SCRAM: the exchange fails at the proof, as for an
            // unknown user (Dovecot answers the same way).
        }
        if (!m_scram && m_password.view().empty()) {
            m_scram = made_up_secret();
            m_user.clear();
        }
        if (gsasl_server_start(library(), m_name.c_str(), &m_session) != GSASL_OK) {
            m_session = nullptr;
            return Failure{};
        }
        gsasl_session_hook_set(m_session, static_cast<PropertySource*>(this));
        if (!m_tls_exporter.empty()) {
            gsasl_property_set(m_session, GSASL_CB_TLS_EXPORTER, base64_encode(m_tls_exporter).c_str());
        }
        return run(*m_client_first);
    }

private:
    ServerStep client_first(std::string_view message)
    {
        // RFC 5929 tls-server-end-point: GNU SASL does not know it; scram_endpoint.cpp frames it.
        if (message.starts_with("p=" + std::string(server_end_point_binding) + ",")) {
            if (!m_name.ends_with("-PLUS") || m_server_end_point.empty()) {
                return Failure{};
            }
            m_end_point = make_endpoint_scram_server(m_name, m_server_end_point);
            return m_end_point->start(message);
        }
        auto user = scram_user_from_client_first(message);
        if (!user) {
            return Failure{};
        }
        m_client_first = std::string(message);
        return NeedSecret{std::move(*user)};
    }

    ServerStep run(std::string_view input)
    {
        char* output = nullptr;
        std::size_t output_length = 0;
        const int status = gsasl_step(m_session, input.data(), input.size(), &output, &output_length);
        std::string data = output != nullptr ? std::string(output, output_length) : std::string();
        gsasl_free(output);
        if (status == GSASL_NEEDS_MORE) {
            return Challenge{std::move(data)};
        }
        if (status != GSASL_OK || m_user.empty()) {
            return Failure{};
        }
        // No acting as another user (no master users yet): an authzid must be the user itself.
        const char* authzid = gsasl_property_fast(m_session, GSASL_AUTHZID);
        if (authzid != nullptr && *authzid != '\0' && m_user != authzid) {
            return Failure{};
        }
        return Authenticated{m_user,
                             data.empty() ? std::nullopt : std::optional<std::string>(std::move(data))};
    }

    int answer(Gsasl_session* session, Gsasl_property property) override
    {
        // GNU SASL 2.2 reads StoredKey and ServerKey in base64 (its header says hex; its code and
        // the values it computes itself are base64: checked against RFC 7677's derivation).
        switch (property) {
        case GSASL_SCRAM_ITER:
            if (m_scram) {
                return gsasl_property_set(session, property, std::to_string(m_scram->iterations).c_str());
            }
            return GSASL_NO_CALLBACK;
        case GSASL_SCRAM_SALT:
            if (m_scram) {
                return gsasl_property_set(session, property, base64_encode(m_scram->salt).c_str());
            }
            return GSASL_NO_CALLBACK;
        case GSASL_SCRAM_STOREDKEY:
            if (m_scram) {
                return gsasl_property_set(session, property, base64_encode(m_scram->stored_key).c_str());
            }
            return GSASL_NO_CALLBACK;
        case GSASL_SCRAM_SERVERKEY:
            if (m_scram) {
                return gsasl_property_set(session, property, base64_encode(m_scram->server_key).c_str());
            }
            return GSASL_NO_CALLBACK;
        case GSASL_PASSWORD:
            if (!m_password.view().empty()) {
                return gsasl_property_set(session, property, m_password.view().c_str());
            }
            return GSASL_NO_CALLBACK;
        default: return GSASL_NO_CALLBACK;
        }
    }

    // A secret no password matches, stable per user name within this process, so repeated
    // probes see the same salt and learn nothing about whether the user exists.
    [[nodiscard]] ScramSecret made_up_secret() const
    {
        static const std::string key = [] {
            std::string bytes(32, '\0');
            RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
            return bytes;
        }();
        std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
        unsigned int length = 0;
        HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(m_client_first->data()),
             std::min(m_client_first->find(",r="), m_client_first->size()), mac.data(), &length);
        ScramSecret secret;
        secret.iterations = 4096;
        secret.salt.assign(reinterpret_cast<const char*>(mac.data()), 16);
        const std::size_t key_length = is_sha1(m_name) ? 20 : 32;
        secret.stored_key.assign(key_length, '\0');
        secret.server_key.assign(key_length, '\0');
        RAND_bytes(reinterpret_cast<unsigned char*>(secret.stored_key.data()), static_cast<int>(key_length));
        RAND_bytes(reinterpret_cast<unsigned char*>(secret.server_key.data()), static_cast<int>(key_length));
        return secret;
    }

    std::string m_name;
    std::string m_tls_exporter;
    std::string m_server_end_point;
    std::unique_ptr<ServerMechanism> m_end_point; // the exchange, when it binds tls-server-end-point
    std::optional<std::string> m_client_first;
    std::string m_user;
    std::optional<ScramSecret> m_scram;
    SecretString m_password;
    Gsasl_session* m_session = nullptr;
};

class ScramClient final : public ClientMechanism, PropertySource {
public:
    ScramClient(std::string name, std::string authzid, std::string authcid, SecretString password,
                const MechanismContext& context)
        : m_name(std::move(name)), m_authzid(std::move(authzid)), m_authcid(std::move(authcid)),
          m_password(std::move(password)), m_tls_exporter(context.tls_exporter)
    {
        if (library() != nullptr && gsasl_client_start(library(), m_name.c_str(), &m_session) == GSASL_OK) {
            gsasl_session_hook_set(m_session, static_cast<PropertySource*>(this));
        } else {
            m_session = nullptr;
        }
    }
    ScramClient(const ScramClient&) = delete;
    ScramClient& operator=(const ScramClient&) = delete;
    ScramClient(ScramClient&&) = delete;
    ScramClient& operator=(ScramClient&&) = delete;
    ~ScramClient() override
    {
        if (m_session != nullptr) {
            gsasl_finish(m_session);
        }
    }

    [[nodiscard]] std::string_view name() const noexcept override { return m_name; }

    [[nodiscard]] std::optional<std::string> initial_response() override
    {
        auto first = run({});
        return first ? std::optional<std::string>(std::move(*first)) : std::nullopt;
    }

    [[nodiscard]] Result<std::string> respond(std::string_view challenge) override
    {
        if (m_done) {
            return fail(errc::unexpected_reply);
        }
        // A hostile server's "i=" would have the client compute PBKDF2 for hours: the same bound
        // as the -PLUS endpoint code (scram_endpoint.cpp) before GNU SASL sees it.
        if (const auto at = challenge.find(",i="); at != std::string_view::npos) {
            std::string_view digits = challenge.substr(at + 3);
            digits = digits.substr(0, digits.find(','));
            if (digits.size() > 7 || (digits.size() == 7 && digits > "1000000")) {
                return fail(errc::auth_failed);
            }
        }
        return run(challenge);
    }

private:
    Result<std::string> run(std::string_view input)
    {
        if (m_session == nullptr) {
            return fail(errc::auth_failed);
        }
        char* output = nullptr;
        std::size_t output_length = 0;
        const int status = gsasl_step(m_session, input.data(), input.size(), &output, &output_length);
        std::string data = output != nullptr ? std::string(output, output_length) : std::string();
        gsasl_free(output);
        if (status == GSASL_OK) {
            m_done = true; // the server's signature checked out
            return data;
        }
        if (status == GSASL_NEEDS_MORE) {
            return data;
        }
        return fail(errc::auth_failed); // includes a server that cannot prove it knows the key
    }

    int answer(Gsasl_session* session, Gsasl_property property) override
    {
        switch (property) {
        case GSASL_AUTHID: return gsasl_property_set(session, property, m_authcid.c_str());
        case GSASL_AUTHZID:
            return m_authzid.empty() ? GSASL_NO_CALLBACK
                                     : gsasl_property_set(session, property, m_authzid.c_str());
        case GSASL_PASSWORD: return gsasl_property_set(session, property, m_password.view().c_str());
        case GSASL_CB_TLS_EXPORTER:
            return m_tls_exporter.empty()
                       ? GSASL_NO_CALLBACK
                       : gsasl_property_set(session, property, base64_encode(m_tls_exporter).c_str());
        default: return GSASL_NO_CALLBACK;
        }
    }

    std::string m_name;
    std::string m_authzid;
    std::string m_authcid;
    SecretString m_password;
    std::string m_tls_exporter;
    Gsasl_session* m_session = nullptr;
    bool m_done = false;
};

std::optional<std::string_view> canonical_scram_name(std::string_view name)
{
    for (const auto candidate : scram_names) {
        if (iequals(candidate, name)) {
            return candidate;
        }
    }
    return std::nullopt;
}

} // namespace

// RFC 5802 §5.1: "n=" saslname with "=2C" for "," and "=3D" for "=".
std::optional<std::string> scram_user_from_client_first(std::string_view message)
{
    // gs2-header: cbind-flag "," [ "a=" authzid ] ","
    const std::size_t first_comma = message.find(',');
    if (first_comma == std::string_view::npos) {
        return std::nullopt;
    }
    const std::size_t second_comma = message.find(',', first_comma + 1);
    if (second_comma == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view bare = message.substr(second_comma + 1);
    if (!bare.starts_with("n=")) {
        return std::nullopt;
    }
    bare.remove_prefix(2);
    const std::string_view escaped = bare.substr(0, bare.find(','));
    std::string user;
    for (std::size_t i = 0; i < escaped.size(); ++i) {
        if (escaped[i] != '=') {
            user.push_back(escaped[i]);
        } else if (escaped.substr(i, 3) == "=2C") {
            user.push_back(',');
            i += 2;
        } else if (escaped.substr(i, 3) == "=3D") {
            user.push_back('=');
            i += 2;
        } else {
            return std::nullopt;
        }
    }
    if (user.empty() || user.size() > 255 || !is_valid_utf8(user) || has_control_characters(user)) {
        return std::nullopt;
    }
    return user;
}

bool is_scram_mechanism(std::string_view name) noexcept
{
    return canonical_scram_name(name).has_value();
}

std::unique_ptr<ServerMechanism> make_scram_server(std::string_view name, const MechanismContext& context)
{
    const auto canonical = canonical_scram_name(name);
    // -PLUS binds the exchange to the TLS session (RFC 9266, RFC 5929): impossible without one.
    if (!canonical ||
        (canonical->ends_with("-PLUS") && context.tls_exporter.empty() &&
         context.tls_server_end_point.empty()) ||
        library() == nullptr) {
        return nullptr;
    }
    return std::make_unique<ScramServer>(std::string(*canonical), context);
}

std::unique_ptr<ClientMechanism> make_scram_client(std::string_view name, std::string authzid,
                                                   std::string authcid, SecretString password,
                                                   const MechanismContext& context)
{
    const auto canonical = canonical_scram_name(name);
    if (!canonical || library() == nullptr) {
        return nullptr;
    }
    if (canonical->ends_with("-PLUS") && context.tls_exporter.empty()) {
        // tls-exporter is preferred (RFC 9266); tls-server-end-point where the TLS session has no
        // exporter (TLS 1.2 without extended master secret).
        if (context.tls_server_end_point.empty()) {
            return nullptr;
        }
        return make_endpoint_scram_client(*canonical, std::move(authzid), std::move(authcid),
                                          std::move(password), context.tls_server_end_point);
    }
    return std::make_unique<ScramClient>(std::string(*canonical), std::move(authzid), std::move(authcid),
                                         std::move(password), context);
}

std::optional<ScramSecret> parse_scram_secret(std::string_view text)
{
    std::array<std::string_view, 4> fields{};
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const std::size_t comma = text.find(',');
        if ((comma == std::string_view::npos) != (i == fields.size() - 1)) {
            return std::nullopt;
        }
        fields[i] = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    }
    const auto iterations = parse_u32(fields[0]);
    auto salt = base64_decode(fields[1]);
    auto stored = base64_decode(fields[2]);
    auto server = base64_decode(fields[3]);
    if (!iterations || *iterations == 0 || !salt || salt->empty() || !stored || !server ||
        stored->size() != server->size() || (stored->size() != 20 && stored->size() != 32)) {
        return std::nullopt;
    }
    return ScramSecret{*iterations, std::move(*salt), std::move(*stored), std::move(*server)};
}

} // namespace pigeon::sasl
