// JWT bearer tokens (auth/jwt_validator) from a hostile client: the compact form, base64url, the
// JOSE header's JSON and the choice of key. Nothing may crash, and no input may be accepted: the
// only keys are the RFC 7515 appendix A.3 key (whose one signed token lacks "aud") and keys made
// here whose private halves are thrown away, so an accepted token would be a forgery.
#include "auth/jwt_validator.hpp"
#include "core/base64.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using pigeon::auth::JwtConfig;
using pigeon::auth::JwtValidator;

std::string public_pem(const char* type, const char* parameter)
{
    EVP_PKEY* key = std::string_view(type) == "RSA"
                        ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, std::size_t{2048})
                        : EVP_PKEY_Q_keygen(nullptr, nullptr, type, parameter);
    BIO* bio = BIO_new(BIO_s_mem());
    if (key == nullptr || bio == nullptr || PEM_write_bio_PUBKEY(bio, key) != 1) {
        std::abort();
    }
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(length));
    BIO_free(bio);
    EVP_PKEY_free(key);
    return pem;
}

JwtValidator load(const std::string& name, const std::string& text)
{
    const auto path = std::filesystem::temp_directory_path() /
                      ("pigeon-fuzz-jwt-" + std::to_string(::getpid()) + "-" + name);
    std::ofstream(path, std::ios::binary) << text;
    JwtConfig config;
    config.issuer = "joe"; // RFC 7515 appendix A's
    config.audience = "pop3.example.com";
    config.user_claim = "iss";
    auto validator = JwtValidator::load(config, path);
    std::filesystem::remove(path);
    if (!validator) {
        std::abort();
    }
    return std::move(*validator);
}

const std::vector<JwtValidator>& validators()
{
    static const std::vector<JwtValidator> all = [] {
        std::vector<JwtValidator> made;
        made.push_back(load("a3.json", R"({"keys":[{"kty":"EC","crv":"P-256","kid":"a3",)"
                                       R"("x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
                                       R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})"));
        made.push_back(load("keys.pem", public_pem("RSA", nullptr) + public_pem("EC", "P-256")));
        return made;
    }();
    return all;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    // The decoder is strict: whatever it accepts encodes back to the same text.
    if (auto decoded = pigeon::base64url_decode(input)) {
        if (pigeon::base64url_encode(*decoded) != input) {
            std::abort();
        }
    }
    // Before the A.3 token's "exp", so only its missing "aud" refuses it.
    const std::chrono::system_clock::time_point now{std::chrono::seconds(1300819000)};
    for (const JwtValidator& validator : validators()) {
        std::string_view reason;
        if (validator.validate(input, "", now, &reason) || reason.empty()) {
            std::abort();
        }
    }
    return 0;
}
