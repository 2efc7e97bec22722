#include "auth/password_scheme.hpp"

#include "core/base64.hpp"
#include "core/secret.hpp"
#include "core/strings.hpp"
#include "sasl/mechanism.hpp"

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>

namespace pigeon::auth {
namespace {

struct SchemeName {
    PasswordScheme scheme;
    std::string_view name;
};

// Canonical names first (scheme_name() returns the first match), then Dovecot's aliases.
constexpr std::array<SchemeName, 13> scheme_names{{
    {PasswordScheme::argon2id, "ARGON2ID"},
    {PasswordScheme::argon2i, "ARGON2I"},
    {PasswordScheme::blf_crypt, "BLF-CRYPT"},
    {PasswordScheme::sha512_crypt, "SHA512-CRYPT"},
    {PasswordScheme::sha256_crypt, "SHA256-CRYPT"},
    {PasswordScheme::crypt, "CRYPT"},
    {PasswordScheme::plain, "PLAIN"},
    {PasswordScheme::cram_md5, "CRAM-MD5"},
    {PasswordScheme::scram_sha_1, "SCRAM-SHA-1"},
    {PasswordScheme::scram_sha_256, "SCRAM-SHA-256"},
    {PasswordScheme::plain, "CLEAR"},
    {PasswordScheme::plain, "CLEARTEXT"},
    {PasswordScheme::cram_md5, "HMAC-MD5"},
}};

constexpr std::array<PasswordScheme, 10> every_scheme{
    PasswordScheme::argon2id,      PasswordScheme::argon2i,      PasswordScheme::blf_crypt,
    PasswordScheme::sha512_crypt,  PasswordScheme::sha256_crypt, PasswordScheme::crypt,
    PasswordScheme::plain,         PasswordScheme::cram_md5,     PasswordScheme::scram_sha_1,
    PasswordScheme::scram_sha_256,
};

// Costs as Dovecot 2.3.19's `doveadm pw` writes them (its defaults are libsodium's "interactive"
// limits for ARGON2*, bcrypt's cost 5 for BLF-CRYPT and CRYPT, and libc's implicit 5000 rounds
// for SHA-crypt), so a hash made by `pigeon hash` looks and costs what doveadm's does.
constexpr std::uint32_t argon2id_t_cost = 3;
constexpr std::uint32_t argon2id_m_cost_kib = 65536;
constexpr std::uint32_t argon2i_t_cost = 4;
constexpr std::uint32_t argon2i_m_cost_kib = 32768;
constexpr std::uint32_t argon2_lanes = 1;
constexpr std::size_t argon2_salt_octets = 16;
constexpr std::size_t argon2_hash_octets = 32;
constexpr unsigned long bcrypt_cost = 5; // "$2y$05$"
// crypt_gensalt takes what it needs: bcrypt 16 octets, SHA-crypt 12 (16 salt characters).
constexpr std::size_t crypt_salt_octets = 16;
constexpr std::size_t scram_salt_octets = 16;
constexpr std::uint32_t scram_iterations = 4096; // RFC 7677 §4's minimum, doveadm's default

// Upper bounds on the costs a stored value may ask for. A stored value comes from a file or a
// database that a bug or an intruder may have changed; a cost beyond these would pin a worker
// for minutes (bcrypt cost 31 takes days) or exhaust memory, and no operator picks such a cost
// for a login check. Each allows roughly ten seconds of one core, or RFC 9106 §4's largest
// recommended memory (2 GiB).
constexpr std::uint32_t argon2_max_m_cost_kib = 2U * 1024U * 1024U;
constexpr std::uint32_t argon2_max_t_cost = 100;
constexpr std::uint32_t bcrypt_max_cost = 18;
constexpr std::uint32_t sha_crypt_max_rounds = 10'000'000;
constexpr std::uint32_t argon2_max_lanes = 16;
constexpr std::uint32_t scram_max_iterations = 10'000'000;

// libxcrypt refuses longer passphrases (CRYPT_MAX_PASSPHRASE_SIZE counts the terminating NUL).
constexpr std::size_t crypt_max_password_octets = CRYPT_MAX_PASSPHRASE_SIZE - 1;

// CRAM-MD5: two MD5 states (outer, inner) of four 32-bit words each (RFC 1321 §3.3's A, B, C, D).
constexpr std::size_t md5_state_octets = 16;
constexpr std::size_t cram_md5_context_octets = 2 * md5_state_octets;
constexpr std::size_t hmac_md5_block_octets = 64; // RFC 2104 §2's B for MD5
constexpr MD5_LONG hmac_md5_block_bits = 512;

using CramMd5Contexts = std::array<unsigned char, cram_md5_context_octets>;

bool equal(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

const unsigned char* octets(std::string_view text) noexcept
{
    return reinterpret_cast<const unsigned char*>(text.data());
}

std::optional<std::string> random_octets(std::size_t count)
{
    std::string bytes(count, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(count)) != 1) {
        return std::nullopt;
    }
    return bytes;
}

std::string with_scheme(PasswordScheme scheme, std::string_view data)
{
    std::string out;
    out.reserve(scheme_name(scheme).size() + 2 + data.size());
    out.append("{").append(scheme_name(scheme)).append("}").append(data);
    return out;
}

std::string to_hex(const unsigned char* data, std::size_t size)
{
    static constexpr std::string_view digits = "0123456789abcdef";
    std::string out;
    out.reserve(2 * size);
    for (std::size_t i = 0; i < size; ++i) {
        out.push_back(digits[data[i] >> 4U]);
        out.push_back(digits[data[i] & 0x0FU]);
    }
    return out;
}

// The decimal number after `key` in `text`, up to the next non-digit; nothing if absent or too big.
std::optional<std::uint32_t> number_after(std::string_view text, std::string_view key)
{
    const std::size_t at = text.find(key);
    if (at == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view digits = text.substr(at + key.size());
    digits = digits.substr(0, std::min(digits.size(), digits.find_first_not_of("0123456789")));
    return parse_u32(digits);
}

// ---- ARGON2ID, ARGON2I (libargon2; Dovecot uses libsodium, which writes the same strings) ----

Result<std::string> argon2_hash_password(PasswordScheme scheme, std::string_view password)
{
    const bool id = scheme == PasswordScheme::argon2id;
    const std::uint32_t t_cost = id ? argon2id_t_cost : argon2i_t_cost;
    const std::uint32_t m_cost = id ? argon2id_m_cost_kib : argon2i_m_cost_kib;
    const argon2_type type = id ? Argon2_id : Argon2_i;
    const auto salt = random_octets(argon2_salt_octets);
    if (!salt) {
        return fail(errc::auth_temporary_failure);
    }
    std::string encoded(
        argon2_encodedlen(t_cost, m_cost, argon2_lanes, argon2_salt_octets, argon2_hash_octets, type), '\0');
    const int status = argon2_hash(t_cost, m_cost, argon2_lanes, password.data(), password.size(),
                                   salt->data(), salt->size(), nullptr, argon2_hash_octets, encoded.data(),
                                   encoded.size(), type, ARGON2_VERSION_13);
    if (status != ARGON2_OK) {
        return fail(errc::auth_temporary_failure);
    }
    encoded.resize(std::char_traits<char>::length(encoded.c_str()));
    return with_scheme(scheme, encoded);
}

Result<bool> argon2_verify_password(std::string_view encoded, std::string_view password)
{
    // The type comes from the encoded string, not from the scheme name: Dovecot (libsodium)
    // verifies "{ARGON2I}$argon2id$..." too, so Pigeon does.
    argon2_type type = Argon2_id;
    if (encoded.starts_with("$argon2id$")) {
        type = Argon2_id;
    } else if (encoded.starts_with("$argon2i$")) {
        type = Argon2_i;
    } else {
        return fail(errc::auth_temporary_failure);
    }
    const auto m_cost = number_after(encoded, "m=");
    const auto t_cost = number_after(encoded, "t=");
    const auto lanes = number_after(encoded, "p=");
    // libargon2 starts a thread per lane: a damaged or hostile stored value must not start
    // hundreds (Dovecot reads p > 1, so a small number is allowed).
    if (!m_cost || !t_cost || !lanes || *m_cost > argon2_max_m_cost_kib || *t_cost > argon2_max_t_cost ||
        *lanes == 0 || *lanes > argon2_max_lanes) {
        return fail(errc::auth_temporary_failure);
    }
    const std::string terminated(encoded);
    const int status = argon2_verify(terminated.c_str(), password.data(), password.size(), type);
    if (status == ARGON2_OK) {
        return true;
    }
    if (status == ARGON2_VERIFY_MISMATCH) {
        return false;
    }
    return fail(errc::auth_temporary_failure);
}

// ---- BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT, CRYPT (libxcrypt) ----

bool crypt_can_take(std::string_view password) noexcept
{
    return password.size() <= crypt_max_password_octets && password.find('\0') == std::string_view::npos;
}

// crypt(3) of `password` with `setting` (a salt string or a whole stored hash); nothing if
// libxcrypt cannot read the setting. The work area holds password-derived state: wiped.
std::optional<std::string> run_crypt(std::string_view password, std::string_view setting)
{
    if (setting.find('\0') != std::string_view::npos) {
        return std::nullopt;
    }
    auto work = std::make_unique<crypt_data>();
    std::string phrase(password);
    const std::string terminated_setting(setting);
    const char* hashed = crypt_rn(phrase.c_str(), terminated_setting.c_str(), work.get(),
                                  static_cast<int>(sizeof(crypt_data)));
    // crypt_rn returns NULL on failure; "*" starts the failure tokens of the other entry points.
    std::optional<std::string> out;
    if (hashed != nullptr && hashed[0] != '*') {
        out = std::string(hashed);
    }
    wipe(phrase);
    OPENSSL_cleanse(work.get(), sizeof(crypt_data));
    return out;
}

bool crypt_cost_acceptable(std::string_view setting)
{
    // bcrypt: "$2a$", "$2b$", "$2x$", "$2y$" then two cost digits.
    if (setting.size() >= 7 && setting.starts_with("$2") && setting[3] == '$') {
        const auto cost = parse_u32(setting.substr(4, 2));
        return cost && *cost <= bcrypt_max_cost;
    }
    // SHA-crypt: "$5$" or "$6$", optionally "rounds=N$".
    if (setting.starts_with("$5$rounds=") || setting.starts_with("$6$rounds=")) {
        const auto rounds = number_after(setting, "rounds=");
        return rounds && *rounds <= sha_crypt_max_rounds;
    }
    // yescrypt and scrypt carry a memory cost that a stored value could set to gigabytes. Their
    // parameters are read only at Debian's default ("$y$j9T$", the cost of /etc/shadow hashes);
    // any other cost is an operator's problem, reported as a temporary failure.
    if (setting.starts_with("$y$") || setting.starts_with("$gy$")) {
        return setting.substr(setting.find('$', 1) + 1).starts_with("j9T$");
    }
    if (setting.starts_with("$7$")) {
        return false;
    }
    return true;
}

Result<std::string> crypt_hash_password(PasswordScheme scheme, std::string_view password)
{
    if (!crypt_can_take(password)) {
        return fail(errc::syntax_error);
    }
    const char* prefix = "$2y$";
    unsigned long count = bcrypt_cost;
    if (scheme == PasswordScheme::sha512_crypt || scheme == PasswordScheme::sha256_crypt) {
        prefix = scheme == PasswordScheme::sha512_crypt ? "$6$" : "$5$";
        count = 0; // the implicit 5000 rounds: "$6$salt$", as doveadm writes
    }
    const auto random = random_octets(crypt_salt_octets);
    if (!random) {
        return fail(errc::auth_temporary_failure);
    }
    std::array<char, CRYPT_GENSALT_OUTPUT_SIZE> setting{};
    if (crypt_gensalt_rn(prefix, count, random->data(), static_cast<int>(random->size()), setting.data(),
                         static_cast<int>(setting.size())) == nullptr) {
        return fail(errc::auth_temporary_failure);
    }
    auto hashed = run_crypt(password, setting.data());
    if (!hashed) {
        return fail(errc::auth_temporary_failure);
    }
    return with_scheme(scheme, *hashed);
}

Result<bool> crypt_verify_password(std::string_view stored, std::string_view password)
{
    if (!crypt_cost_acceptable(stored)) {
        return fail(errc::auth_temporary_failure);
    }
    if (!crypt_can_take(password)) {
        // No hash was made from such a password; still run crypt(3) once (with an empty one) to
        // tell an unreadable stored value from a mismatch and to spend the usual time.
        if (!run_crypt("", stored)) {
            return fail(errc::auth_temporary_failure);
        }
        return false;
    }
    auto hashed = run_crypt(password, stored);
    if (!hashed) {
        return fail(errc::auth_temporary_failure);
    }
    const bool match = equal(*hashed, stored);
    wipe(*hashed);
    return match;
}

// ---- CRAM-MD5 (Dovecot's HMAC-MD5 contexts) ----
//
// Dovecot's {CRAM-MD5} value is the MD5 state after hashing the outer pad block (key XOR opad),
// then the state after the inner pad block (key XOR ipad), RFC 2104 §2, each as the words A, B,
// C, D in little-endian byte order: 32 octets, 64 hex digits. Only the low-level MD5 interface
// exposes that state; OpenSSL 3 deprecates it but keeps it, and nothing else offers it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

void store_md5_state(const MD5_CTX& context, unsigned char* out) noexcept
{
    const std::array<MD5_LONG, 4> words{context.A, context.B, context.C, context.D};
    for (std::size_t word = 0; word < words.size(); ++word) {
        for (std::size_t octet = 0; octet < 4; ++octet) {
            out[4 * word + octet] = static_cast<unsigned char>((words[word] >> (8 * octet)) & 0xFFU);
        }
    }
}

// An MD5 context that has consumed exactly one 64-octet block and is in `state`.
void load_md5_state(MD5_CTX& context, const unsigned char* state) noexcept
{
    MD5_Init(&context);
    std::array<MD5_LONG, 4> words{};
    for (std::size_t word = 0; word < words.size(); ++word) {
        for (std::size_t octet = 0; octet < 4; ++octet) {
            words[word] |= static_cast<MD5_LONG>(state[4 * word + octet]) << (8 * octet);
        }
    }
    context.A = words[0];
    context.B = words[1];
    context.C = words[2];
    context.D = words[3];
    context.Nl = hmac_md5_block_bits;
    context.Nh = 0;
    context.num = 0;
}

CramMd5Contexts cram_md5_contexts(std::string_view password)
{
    // RFC 2104 §2: a key longer than the block is replaced by its hash.
    std::array<unsigned char, hmac_md5_block_octets> key{};
    if (password.size() > key.size()) {
        MD5(octets(password), password.size(), key.data());
    } else {
        std::copy(password.begin(), password.end(), key.begin());
    }
    CramMd5Contexts contexts{};
    constexpr std::array<unsigned char, 2> pads{0x5c, 0x36}; // opad (stored first), ipad
    for (std::size_t which = 0; which < pads.size(); ++which) {
        std::array<unsigned char, hmac_md5_block_octets> block{};
        for (std::size_t i = 0; i < block.size(); ++i) {
            block[i] = static_cast<unsigned char>(key[i] ^ pads[which]);
        }
        MD5_CTX context;
        MD5_Init(&context);
        MD5_Update(&context, block.data(), block.size());
        store_md5_state(context, contexts.data() + which * md5_state_octets);
        OPENSSL_cleanse(block.data(), block.size());
        OPENSSL_cleanse(&context, sizeof(context));
    }
    OPENSSL_cleanse(key.data(), key.size());
    return contexts;
}

std::string hmac_md5_from_contexts(const CramMd5Contexts& contexts, std::string_view message)
{
    std::array<unsigned char, MD5_DIGEST_LENGTH> inner_digest{};
    std::array<unsigned char, MD5_DIGEST_LENGTH> digest{};
    MD5_CTX inner;
    load_md5_state(inner, contexts.data() + md5_state_octets);
    MD5_Update(&inner, message.data(), message.size());
    MD5_Final(inner_digest.data(), &inner);
    MD5_CTX outer;
    load_md5_state(outer, contexts.data());
    MD5_Update(&outer, inner_digest.data(), inner_digest.size());
    MD5_Final(digest.data(), &outer);
    OPENSSL_cleanse(&inner, sizeof(inner));
    OPENSSL_cleanse(&outer, sizeof(outer));
    OPENSSL_cleanse(inner_digest.data(), inner_digest.size());
    return to_hex(digest.data(), digest.size());
}

#pragma GCC diagnostic pop

// 64 hex digits (either case) as the two contexts.
std::optional<CramMd5Contexts> decode_cram_md5(std::string_view hex)
{
    if (hex.size() != 2 * cram_md5_context_octets) {
        return std::nullopt;
    }
    CramMd5Contexts contexts{};
    for (std::size_t i = 0; i < contexts.size(); ++i) {
        const auto octet = parse_hex_byte(hex.substr(2 * i, 2));
        if (!octet) {
            return std::nullopt;
        }
        contexts[i] = *octet;
    }
    return contexts;
}

// ---- SCRAM-SHA-1, SCRAM-SHA-256 (RFC 5802 §3, RFC 7677) ----

// StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword,
// "Server Key"), SaltedPassword = PBKDF2-HMAC-H(password, salt, iterations).
struct ScramKeys {
    SecretString stored_key;
    SecretString server_key;
};

std::optional<ScramKeys> scram_keys(const EVP_MD* md, std::string_view password, std::string_view salt,
                                    std::uint32_t iterations)
{
    const int size = EVP_MD_get_size(md);
    const auto octet_count = static_cast<std::size_t>(size);
    std::array<unsigned char, EVP_MAX_MD_SIZE> salted{};
    std::array<unsigned char, EVP_MAX_MD_SIZE> client_key{};
    std::array<unsigned char, EVP_MAX_MD_SIZE> server_key{};
    std::array<unsigned char, EVP_MAX_MD_SIZE> stored_key{};
    constexpr std::string_view client_key_text = "Client Key";
    constexpr std::string_view server_key_text = "Server Key";
    unsigned int length = 0;
    const bool ok = PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), octets(salt),
                                      static_cast<int>(salt.size()), static_cast<int>(iterations), md, size,
                                      salted.data()) == 1 &&
                    HMAC(md, salted.data(), size, octets(client_key_text), client_key_text.size(),
                         client_key.data(), &length) != nullptr &&
                    HMAC(md, salted.data(), size, octets(server_key_text), server_key_text.size(),
                         server_key.data(), &length) != nullptr &&
                    EVP_Digest(client_key.data(), octet_count, stored_key.data(), &length, md, nullptr) == 1;
    std::optional<ScramKeys> keys;
    if (ok) {
        keys = ScramKeys{
            SecretString(std::string(reinterpret_cast<const char*>(stored_key.data()), octet_count)),
            SecretString(std::string(reinterpret_cast<const char*>(server_key.data()), octet_count))};
    }
    OPENSSL_cleanse(salted.data(), salted.size());
    OPENSSL_cleanse(client_key.data(), client_key.size());
    OPENSSL_cleanse(server_key.data(), server_key.size());
    OPENSSL_cleanse(stored_key.data(), stored_key.size());
    return keys;
}

const EVP_MD* scram_digest(PasswordScheme scheme) noexcept
{
    return scheme == PasswordScheme::scram_sha_1 ? EVP_sha1() : EVP_sha256();
}

Result<std::string> scram_hash_password(PasswordScheme scheme, std::string_view password)
{
    const auto salt = random_octets(scram_salt_octets);
    if (!salt) {
        return fail(errc::auth_temporary_failure);
    }
    const auto keys = scram_keys(scram_digest(scheme), password, *salt, scram_iterations);
    if (!keys) {
        return fail(errc::auth_temporary_failure);
    }
    return with_scheme(scheme, std::to_string(scram_iterations) + "," + base64_encode(*salt) + "," +
                                   base64_encode(keys->stored_key.view()) + "," +
                                   base64_encode(keys->server_key.view()));
}

Result<bool> scram_verify_password(PasswordScheme scheme, std::string_view data, std::string_view password)
{
    const auto secret = sasl::parse_scram_secret(data);
    const EVP_MD* md = scram_digest(scheme);
    if (!secret || secret->stored_key.size() != static_cast<std::size_t>(EVP_MD_get_size(md)) ||
        secret->iterations > scram_max_iterations) {
        return fail(errc::auth_temporary_failure);
    }
    const auto keys = scram_keys(md, password, secret->salt, secret->iterations);
    if (!keys) {
        return fail(errc::auth_temporary_failure);
    }
    return equal(keys->stored_key.view(), secret->stored_key);
}

} // namespace

std::span<const PasswordScheme> all_password_schemes() noexcept
{
    return every_scheme;
}

std::string_view scheme_name(PasswordScheme scheme) noexcept
{
    for (const auto& entry : scheme_names) {
        if (entry.scheme == scheme) {
            return entry.name;
        }
    }
    return {};
}

std::optional<PasswordScheme> scheme_from_name(std::string_view name) noexcept
{
    for (const auto& entry : scheme_names) {
        if (iequals(entry.name, name)) {
            return entry.scheme;
        }
    }
    return std::nullopt;
}

Result<StoredPassword> parse_stored_password(std::string_view stored) noexcept
{
    // Dovecot's passwd-file default: a value without "{SCHEME}" is a crypt(3) string.
    if (!stored.starts_with('{')) {
        return StoredPassword{PasswordScheme::crypt, stored};
    }
    const std::size_t close = stored.find('}');
    if (close == std::string_view::npos) {
        return fail(errc::auth_temporary_failure);
    }
    const auto scheme = scheme_from_name(stored.substr(1, close - 1));
    if (!scheme) {
        return fail(errc::auth_temporary_failure);
    }
    return StoredPassword{*scheme, stored.substr(close + 1)};
}

Result<std::string> hash_password(PasswordScheme scheme, std::string_view password)
{
    switch (scheme) {
    case PasswordScheme::argon2id:
    case PasswordScheme::argon2i: return argon2_hash_password(scheme, password);
    case PasswordScheme::blf_crypt:
    case PasswordScheme::sha512_crypt:
    case PasswordScheme::sha256_crypt:
    case PasswordScheme::crypt: return crypt_hash_password(scheme, password);
    case PasswordScheme::plain: return with_scheme(scheme, password);
    case PasswordScheme::cram_md5: {
        CramMd5Contexts contexts = cram_md5_contexts(password);
        std::string out = with_scheme(scheme, to_hex(contexts.data(), contexts.size()));
        OPENSSL_cleanse(contexts.data(), contexts.size());
        return out;
    }
    case PasswordScheme::scram_sha_1:
    case PasswordScheme::scram_sha_256: return scram_hash_password(scheme, password);
    }
    return fail(errc::auth_temporary_failure);
}

Result<bool> verify_password(std::string_view stored, std::string_view password)
{
    const auto parsed = parse_stored_password(stored);
    if (!parsed) {
        return fail(parsed.error());
    }
    const std::string_view data = parsed->data;
    switch (parsed->scheme) {
    case PasswordScheme::argon2id:
    case PasswordScheme::argon2i: return argon2_verify_password(data, password);
    case PasswordScheme::blf_crypt:
    case PasswordScheme::sha512_crypt:
    case PasswordScheme::sha256_crypt:
    case PasswordScheme::crypt: return crypt_verify_password(data, password);
    case PasswordScheme::plain: return equal(data, password);
    case PasswordScheme::cram_md5: {
        auto expected = decode_cram_md5(data);
        if (!expected) {
            return fail(errc::auth_temporary_failure);
        }
        CramMd5Contexts computed = cram_md5_contexts(password);
        const bool match = CRYPTO_memcmp(computed.data(), expected->data(), computed.size()) == 0;
        OPENSSL_cleanse(computed.data(), computed.size());
        OPENSSL_cleanse(expected->data(), expected->size());
        return match;
    }
    case PasswordScheme::scram_sha_1:
    case PasswordScheme::scram_sha_256: return scram_verify_password(parsed->scheme, data, password);
    }
    return fail(errc::auth_temporary_failure);
}

Result<std::string> cram_md5_digest(std::string_view stored, std::string_view challenge)
{
    const auto parsed = parse_stored_password(stored);
    if (!parsed) {
        return fail(parsed.error());
    }
    std::optional<CramMd5Contexts> contexts;
    if (parsed->scheme == PasswordScheme::cram_md5) {
        contexts = decode_cram_md5(parsed->data);
        if (!contexts) {
            return fail(errc::auth_temporary_failure);
        }
    } else if (parsed->scheme == PasswordScheme::plain) {
        contexts = cram_md5_contexts(parsed->data);
    } else {
        return fail(errc::auth_failed);
    }
    std::string digest = hmac_md5_from_contexts(*contexts, challenge);
    OPENSSL_cleanse(contexts->data(), contexts->size());
    return digest;
}

} // namespace pigeon::auth
