#include "sasl/scram_endpoint.hpp"

#include "core/base64.hpp"
#include "core/secret.hpp"
#include "core/strings.hpp"

#include <gsasl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <array>
#include <charconv>
#include <cstdlib>
#include <utility>
#include <vector>

namespace pigeon::sasl {
namespace {

// A server may ask for at most this many PBKDF2 iterations: a hostile one asking for billions
// would make the client burn minutes of CPU (RFC 5802 §9 leaves the bound to the client).
constexpr std::uint32_t max_client_iterations = 1'000'000;
constexpr std::uint32_t plain_iterations = 4096; // for users stored as {PLAIN}, as GNU SASL uses
constexpr std::size_t nonce_octets = 18;         // 24 base64 characters

bool is_sha1_name(std::string_view mechanism)
{
    return mechanism.starts_with("SCRAM-SHA-1");
}

Gsasl_hash hash_of(std::string_view mechanism)
{
    return is_sha1_name(mechanism) ? GSASL_HASH_SHA1 : GSASL_HASH_SHA256;
}

const EVP_MD* md_of(std::string_view mechanism)
{
    return is_sha1_name(mechanism) ? EVP_sha1() : EVP_sha256();
}

std::string hmac(std::string_view mechanism, std::string_view key, std::string_view data)
{
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int length = 0;
    HMAC(md_of(mechanism), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &length);
    return {reinterpret_cast<const char*>(out.data()), length};
}

std::string digest(std::string_view mechanism, std::string_view data)
{
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int length = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &length, md_of(mechanism), nullptr);
    return {reinterpret_cast<const char*>(out.data()), length};
}

bool equal_secret(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_nonce()
{
    std::string bytes(nonce_octets, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    return base64_encode(bytes);
}

// RFC 5802 §5.1 saslname: "," as "=2C", "=" as "=3D".
std::string escape_name(std::string_view name)
{
    std::string out;
    for (const char c : name) {
        if (c == ',') {
            out += "=2C";
        } else if (c == '=') {
            out += "=3D";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::optional<std::string> saslprep(std::string_view text)
{
    char* out = nullptr;
    if (gsasl_saslprep(std::string(text).c_str(), GSASL_ALLOW_UNASSIGNED, &out, nullptr) != GSASL_OK) {
        return std::nullopt;
    }
    std::string result(out);
    OPENSSL_cleanse(out, result.size()); // the library's copy of a password
    gsasl_free(out);
    return result;
}

// "k=value" attributes of a SCRAM message, in order.
std::vector<std::pair<char, std::string_view>> attributes(std::string_view message)
{
    std::vector<std::pair<char, std::string_view>> out;
    while (!message.empty() && out.size() < 32) {
        const std::size_t comma = message.find(',');
        const std::string_view item = message.substr(0, comma);
        if (item.size() < 2 || item[1] != '=') {
            return {};
        }
        out.emplace_back(item[0], item.substr(2));
        message = comma == std::string_view::npos ? std::string_view{} : message.substr(comma + 1);
    }
    return out;
}

struct Keys {
    std::uint32_t iterations = 0;
    std::string salt;
    std::string stored_key;
    std::string server_key;
    std::string client_key; // the client side only
};

std::optional<Keys> keys_from_password(std::string_view mechanism, std::string_view password,
                                       std::string salt, std::uint32_t iterations)
{
    auto prepared = saslprep(password);
    if (!prepared) {
        return std::nullopt;
    }
    const std::size_t length = gsasl_hash_length(hash_of(mechanism));
    std::array<char, GSASL_HASH_MAX_SIZE> salted{};
    std::array<char, GSASL_HASH_MAX_SIZE> client_key{};
    std::array<char, GSASL_HASH_MAX_SIZE> server_key{};
    std::array<char, GSASL_HASH_MAX_SIZE> stored_key{};
    const int status = gsasl_scram_secrets_from_password(
        hash_of(mechanism), prepared->c_str(), iterations, salt.data(), salt.size(), salted.data(),
        client_key.data(), server_key.data(), stored_key.data());
    wipe(*prepared);
    Keys keys;
    if (status == GSASL_OK) {
        keys = Keys{iterations, std::move(salt), std::string(stored_key.data(), length),
                    std::string(server_key.data(), length), std::string(client_key.data(), length)};
    }
    OPENSSL_cleanse(salted.data(), salted.size());
    OPENSSL_cleanse(client_key.data(), client_key.size());
    if (status != GSASL_OK) {
        return std::nullopt;
    }
    return keys;
}

class EndpointScramServer final : public ServerMechanism {
public:
    EndpointScramServer(std::string mechanism, std::string binding_data)
        : m_mechanism(std::move(mechanism)), m_binding_data(std::move(binding_data))
    {
    }

    [[nodiscard]] std::string_view name() const noexcept override { return m_mechanism; }

    [[nodiscard]] ServerStep start(std::optional<std::string_view> initial_response) override
    {
        if (!initial_response || initial_response->empty()) {
            return Challenge{};
        }
        return client_first(*initial_response);
    }

    [[nodiscard]] ServerStep step(std::string_view response) override
    {
        if (m_bare.empty()) {
            return client_first(response);
        }
        if (m_server_first.empty() || m_done) {
            return Failure{};
        }
        return client_final(response);
    }

    [[nodiscard]] ServerStep provide_secret(std::optional<StoredSecret> secret) override
    {
        if (m_bare.empty() || !m_server_first.empty()) {
            return Failure{};
        }
        std::optional<Keys> keys;
        if (secret) {
            const std::string_view stored = secret->stored.view();
            const std::string_view prefix = is_sha1_name(m_mechanism) ? "{SCRAM-SHA-1}" : "{SCRAM-SHA-256}";
            if (stored.size() > prefix.size() && iequals(stored.substr(0, prefix.size()), prefix)) {
                if (auto parsed = parse_scram_secret(stored.substr(prefix.size()))) {
                    keys = Keys{parsed->iterations,
                                std::move(parsed->salt),
                                std::move(parsed->stored_key),
                                std::move(parsed->server_key),
                                {}};
                }
            } else if (stored.size() > 7 && iequals(stored.substr(0, 7), "{PLAIN}")) {
                std::string salt(16, '\0');
                RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size()));
                keys = keys_from_password(m_mechanism, stored.substr(7), std::move(salt), plain_iterations);
            }
            if (keys && keys->stored_key.size() == gsasl_hash_length(hash_of(m_mechanism))) {
                m_user = secret->user;
            } else {
                keys.reset();
            }
        }
        if (!keys) {
            // Unknown user, or a scheme SCRAM cannot use: go on with keys no proof matches.
            const std::size_t length = gsasl_hash_length(hash_of(m_mechanism));
            keys = Keys{plain_iterations,
                        std::string(16, '\0'),
                        std::string(length, '\0'),
                        std::string(length, '\0'),
                        {}};
            RAND_bytes(reinterpret_cast<unsigned char*>(keys->salt.data()), 16);
            RAND_bytes(reinterpret_cast<unsigned char*>(keys->stored_key.data()), static_cast<int>(length));
            m_user.clear();
        }
        m_keys = std::move(*keys);
        m_nonce = m_client_nonce + random_nonce();
        m_server_first =
            "r=" + m_nonce + ",s=" + base64_encode(m_keys.salt) + ",i=" + std::to_string(m_keys.iterations);
        return Challenge{m_server_first};
    }

private:
    ServerStep client_first(std::string_view message)
    {
        // gs2-header: cbind-flag "," [ "a=" saslname ] ","
        const std::size_t first = message.find(',');
        const std::size_t second = first == std::string_view::npos ? first : message.find(',', first + 1);
        if (second == std::string_view::npos) {
            return Failure{};
        }
        const std::string_view flag = message.substr(0, first);
        const bool binding_ok = m_binding_data.empty() ? (flag == "n" || flag == "y")
                                                       : flag == "p=" + std::string(server_end_point_binding);
        if (!binding_ok) {
            return Failure{};
        }
        const std::string_view authzid = message.substr(first + 1, second - first - 1);
        if (!authzid.empty() && !authzid.starts_with("a=")) {
            return Failure{};
        }
        auto user = scram_user_from_client_first(message);
        const auto fields = attributes(message.substr(second + 1));
        if (!user || fields.size() < 2 || fields[0].first != 'n' || fields[1].first != 'r' ||
            fields[1].second.empty()) {
            return Failure{}; // also refuses "m=" (RFC 5802 §5.1: reserved, must fail)
        }
        m_authzid = authzid.empty() ? std::string() : std::string(authzid.substr(2));
        m_gs2_header = std::string(message.substr(0, second + 1));
        m_bare = std::string(message.substr(second + 1));
        m_client_nonce = std::string(fields[1].second);
        return NeedSecret{std::move(*user)};
    }

    ServerStep client_final(std::string_view message)
    {
        m_done = true;
        const std::size_t proof_at = message.rfind(",p=");
        if (proof_at == std::string_view::npos) {
            return Failure{};
        }
        const std::string_view without_proof = message.substr(0, proof_at);
        const auto fields = attributes(without_proof);
        auto proof = base64_decode(message.substr(proof_at + 3));
        auto binding = fields.empty() ? std::nullopt : std::optional(base64_decode(fields[0].second));
        if (fields.size() < 2 || fields[0].first != 'c' || fields[1].first != 'r' || !binding || !*binding ||
            **binding != m_gs2_header + m_binding_data || fields[1].second != m_nonce || !proof ||
            proof->size() != m_keys.stored_key.size()) {
            return Failure{};
        }
        const std::string auth_message = m_bare + "," + m_server_first + "," + std::string(without_proof);
        std::string client_key = hmac(m_mechanism, m_keys.stored_key, auth_message);
        for (std::size_t i = 0; i < client_key.size(); ++i) {
            client_key[i] = static_cast<char>(client_key[i] ^ (*proof)[i]);
        }
        const bool proven = equal_secret(digest(m_mechanism, client_key), m_keys.stored_key);
        wipe(client_key);
        // No acting as another user: an authzid must be the user itself.
        if (!proven || m_user.empty() || (!m_authzid.empty() && m_authzid != escape_name(m_user))) {
            return Failure{};
        }
        return Authenticated{m_user,
                             "v=" + base64_encode(hmac(m_mechanism, m_keys.server_key, auth_message))};
    }

    std::string m_mechanism;
    std::string m_binding_data;
    std::string m_gs2_header;
    std::string m_bare;
    std::string m_authzid;
    std::string m_client_nonce;
    std::string m_nonce;
    std::string m_server_first;
    std::string m_user;
    Keys m_keys;
    bool m_done = false;
};

class EndpointScramClient final : public ClientMechanism {
public:
    EndpointScramClient(std::string mechanism, std::string authzid, std::string authcid,
                        SecretString password, std::string binding_data)
        : m_mechanism(std::move(mechanism)), m_authzid(std::move(authzid)), m_authcid(std::move(authcid)),
          m_password(std::move(password)), m_binding_data(std::move(binding_data))
    {
    }

    [[nodiscard]] std::string_view name() const noexcept override { return m_mechanism; }

    [[nodiscard]] std::optional<std::string> initial_response() override
    {
        auto user = saslprep(m_authcid);
        if (!user || m_state != State::start) {
            m_state = State::failed;
            return std::nullopt;
        }
        m_gs2_header =
            (m_binding_data.empty() ? std::string("n") : "p=" + std::string(server_end_point_binding)) + "," +
            (m_authzid.empty() ? std::string() : "a=" + escape_name(m_authzid)) + ",";
        m_client_nonce = random_nonce();
        m_bare = "n=" + escape_name(*user) + ",r=" + m_client_nonce;
        m_state = State::sent_first;
        return m_gs2_header + m_bare;
    }

    [[nodiscard]] Result<std::string> respond(std::string_view challenge) override
    {
        if (m_state == State::start && challenge.empty()) {
            if (auto first = initial_response()) {
                return std::move(*first);
            }
            return fail(errc::auth_failed);
        }
        if (m_state == State::sent_first) {
            return client_final(challenge);
        }
        if (m_state == State::sent_final) {
            m_state = State::failed;
            const auto fields = attributes(challenge);
            auto signature = fields.size() == 1 && fields[0].first == 'v'
                                 ? std::optional(base64_decode(fields[0].second))
                                 : std::nullopt;
            if (!signature || !*signature || !equal_secret(**signature, m_server_signature)) {
                return fail(errc::auth_failed); // "e=..." or a server that cannot prove the key
            }
            m_state = State::done;
            return std::string();
        }
        return fail(errc::unexpected_reply);
    }

private:
    enum class State : std::uint8_t {
        start,
        sent_first,
        sent_final,
        done,
        failed
    };

    Result<std::string> client_final(std::string_view server_first)
    {
        m_state = State::failed;
        const auto fields = attributes(server_first);
        if (fields.size() < 3 || fields[0].first != 'r' || fields[1].first != 's' || fields[2].first != 'i' ||
            !fields[0].second.starts_with(m_client_nonce) ||
            fields[0].second.size() == m_client_nonce.size()) {
            return fail(errc::auth_failed);
        }
        std::uint32_t iterations = 0;
        const std::string_view count = fields[2].second;
        const auto [ptr, ec] = std::from_chars(count.data(), count.data() + count.size(), iterations);
        auto salt = base64_decode(fields[1].second);
        if (ec != std::errc{} || ptr != count.data() + count.size() || iterations == 0 ||
            iterations > max_client_iterations || !salt || salt->empty()) {
            return fail(errc::auth_failed);
        }
        auto keys = keys_from_password(m_mechanism, m_password.view(), std::move(*salt), iterations);
        if (!keys) {
            return fail(errc::auth_failed);
        }
        const std::string without_proof =
            "c=" + base64_encode(m_gs2_header + m_binding_data) + ",r=" + std::string(fields[0].second);
        const std::string auth_message = m_bare + "," + std::string(server_first) + "," + without_proof;
        std::string proof = hmac(m_mechanism, keys->stored_key, auth_message);
        for (std::size_t i = 0; i < proof.size(); ++i) {
            proof[i] = static_cast<char>(proof[i] ^ keys->client_key[i]);
        }
        m_server_signature = hmac(m_mechanism, keys->server_key, auth_message);
        wipe(keys->client_key);
        wipe(keys->server_key);
        m_state = State::sent_final;
        std::string out = without_proof + ",p=" + base64_encode(proof);
        wipe(proof);
        return out;
    }

    std::string m_mechanism;
    std::string m_authzid;
    std::string m_authcid;
    SecretString m_password;
    std::string m_binding_data;
    std::string m_gs2_header;
    std::string m_bare;
    std::string m_client_nonce;
    std::string m_server_signature;
    State m_state = State::start;
};

} // namespace

std::string tls_server_end_point(std::string_view certificate_der)
{
    const auto* bytes = reinterpret_cast<const unsigned char*>(certificate_der.data());
    X509* certificate = d2i_X509(nullptr, &bytes, static_cast<long>(certificate_der.size()));
    if (certificate == nullptr) {
        return {};
    }
    int md_nid = NID_undef;
    const EVP_MD* md = nullptr;
    if (X509_get_signature_info(certificate, &md_nid, nullptr, nullptr, nullptr) == 1) {
        // RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256.
        md = md_nid == NID_md5 || md_nid == NID_sha1 ? EVP_sha256() : EVP_get_digestbynid(md_nid);
    }
    std::string out;
    if (md != nullptr) {
        std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
        unsigned int length = 0;
        if (X509_digest(certificate, md, hash.data(), &length) == 1) {
            out.assign(reinterpret_cast<const char*>(hash.data()), length);
        }
    }
    X509_free(certificate);
    return out;
}

std::unique_ptr<ServerMechanism> make_endpoint_scram_server(std::string_view mechanism,
                                                            std::string binding_data)
{
    return std::make_unique<EndpointScramServer>(std::string(mechanism), std::move(binding_data));
}

std::unique_ptr<ClientMechanism> make_endpoint_scram_client(std::string_view mechanism, std::string authzid,
                                                            std::string authcid, SecretString password,
                                                            std::string binding_data)
{
    return std::make_unique<EndpointScramClient>(std::string(mechanism), std::move(authzid),
                                                 std::move(authcid), std::move(password),
                                                 std::move(binding_data));
}

} // namespace pigeon::sasl
