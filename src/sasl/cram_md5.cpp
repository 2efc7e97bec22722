// CRAM-MD5 (RFC 2195): the server sends a unique challenge "<random.time@host>"; the client
// answers "user hexdigest" with digest = HMAC-MD5(password, challenge). The server checks it
// against the user's stored secret: a {PLAIN} password, or Dovecot's {CRAM-MD5} value (the MD5
// states after the HMAC pads, outer first), which lets it answer without knowing the password.
#include "core/base64.hpp"
#include "core/strings.hpp"
#include "sasl/mechanism.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

// Only the low-level MD5 interface lets a state be restored; OpenSSL 3 deprecates it but keeps it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <openssl/md5.h>

#include <array>
#include <chrono>

namespace pigeon::sasl {
namespace {

std::string hex(const unsigned char* data, std::size_t size)
{
    static constexpr std::string_view digits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < size; ++i) {
        out.push_back(digits[data[i] >> 4U]);
        out.push_back(digits[data[i] & 0x0FU]);
    }
    return out;
}

std::string hmac_md5_hex(std::string_view key, std::string_view message)
{
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    HMAC(EVP_md5(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest.data(), &length);
    return hex(digest.data(), length);
}

// Restores an MD5 state saved after one 64-octet block (a, b, c, d little-endian, in hex).
std::optional<MD5_CTX> restore(std::string_view hex_state)
{
    MD5_CTX context;
    MD5_Init(&context);
    std::array<MD5_LONG, 4> words{};
    for (std::size_t word = 0; word < 4; ++word) {
        MD5_LONG value = 0;
        for (std::size_t byte = 0; byte < 4; ++byte) {
            const auto parsed = parse_hex_byte(hex_state.substr((word * 4 + byte) * 2, 2));
            if (!parsed) {
                return std::nullopt;
            }
            value |= static_cast<MD5_LONG>(*parsed) << (8 * byte);
        }
        words[word] = value;
    }
    context.A = words[0];
    context.B = words[1];
    context.C = words[2];
    context.D = words[3];
    context.Nl = 512; // one block (the pad) already processed, in bits
    return context;
}

std::optional<std::string> digest_from_contexts(std::string_view contexts, std::string_view challenge)
{
    if (contexts.size() != 64) {
        return std::nullopt;
    }
    auto outer = restore(contexts.substr(0, 32));
    auto inner = restore(contexts.substr(32, 32));
    if (!outer || !inner) {
        return std::nullopt;
    }
    std::array<unsigned char, MD5_DIGEST_LENGTH> inner_digest{};
    std::array<unsigned char, MD5_DIGEST_LENGTH> digest{};
    MD5_Update(&*inner, challenge.data(), challenge.size());
    MD5_Final(inner_digest.data(), &*inner);
    MD5_Update(&*outer, inner_digest.data(), inner_digest.size());
    MD5_Final(digest.data(), &*outer);
    return hex(digest.data(), digest.size());
}

class CramMd5Server final : public ServerMechanism {
public:
    [[nodiscard]] std::string_view name() const noexcept override { return "CRAM-MD5"; }

    [[nodiscard]] ServerStep start(std::optional<std::string_view> initial_response) override
    {
        if (initial_response && !initial_response->empty()) {
            return Failure{}; // RFC 2195: the server speaks first
        }
        // "<random.seconds@pigeon>": unique per exchange (64 random bits), as RFC 2195 §2 asks.
        std::array<unsigned char, 8> random{};
        RAND_bytes(random.data(), static_cast<int>(random.size()));
        const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
        m_challenge = "<" + hex(random.data(), random.size()) + "." + std::to_string(seconds) + "@pigeon>";
        return Challenge{m_challenge};
    }

    [[nodiscard]] ServerStep step(std::string_view response) override
    {
        const std::size_t space = response.rfind(' ');
        if (m_challenge.empty() || space == std::string_view::npos || space == 0 ||
            response.size() - space - 1 != 32) {
            return Failure{};
        }
        const std::string_view user = response.substr(0, space);
        if (user.size() > 255 || has_control_characters(user) || !is_valid_utf8(user)) {
            return Failure{};
        }
        m_digest = std::string(response.substr(space + 1));
        for (char& c : m_digest) {
            c = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
        }
        return NeedSecret{std::string(user)};
    }

    [[nodiscard]] ServerStep provide_secret(std::optional<StoredSecret> secret) override
    {
        if (!secret || m_digest.empty()) {
            return Failure{};
        }
        const std::string_view stored = secret->stored.view();
        std::optional<std::string> expected;
        if (stored.size() >= 7 && iequals(stored.substr(0, 7), "{PLAIN}")) {
            expected = hmac_md5_hex(stored.substr(7), m_challenge);
        } else if (stored.size() >= 10 && iequals(stored.substr(0, 10), "{CRAM-MD5}")) {
            expected = digest_from_contexts(stored.substr(10), m_challenge);
        }
        if (!expected || expected->size() != m_digest.size() ||
            CRYPTO_memcmp(expected->data(), m_digest.data(), m_digest.size()) != 0) {
            return Failure{};
        }
        return Authenticated{secret->user, std::nullopt};
    }

private:
    std::string m_challenge;
    std::string m_digest;
};

class CramMd5Client final : public ClientMechanism {
public:
    CramMd5Client(std::string user, SecretString password)
        : m_user(std::move(user)), m_password(std::move(password))
    {
    }
    [[nodiscard]] std::string_view name() const noexcept override { return "CRAM-MD5"; }
    [[nodiscard]] std::optional<std::string> initial_response() override { return std::nullopt; }
    [[nodiscard]] Result<std::string> respond(std::string_view challenge) override
    {
        if (m_answered || challenge.empty()) {
            return fail(errc::unexpected_reply);
        }
        m_answered = true;
        return m_user + " " + hmac_md5_hex(m_password.view(), challenge);
    }

private:
    std::string m_user;
    SecretString m_password;
    bool m_answered = false;
};

} // namespace

std::unique_ptr<ServerMechanism> make_cram_md5_server()
{
    return std::make_unique<CramMd5Server>();
}

std::unique_ptr<ClientMechanism> make_cram_md5_client(std::string user, SecretString password)
{
    return std::make_unique<CramMd5Client>(std::move(user), std::move(password));
}

} // namespace pigeon::sasl

#pragma GCC diagnostic pop
