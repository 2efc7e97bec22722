#include "core/base64.hpp"
#include "sasl/mechanism.hpp"
#include "sasl/scram_endpoint.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include <array>

namespace pigeon::sasl {
namespace {

// Dovecot's stored form of a SCRAM secret, computed here independently with OpenSSL (RFC 5802
// §3: SaltedPassword = Hi(password, salt, i); StoredKey = H(HMAC(SaltedPassword, "Client Key"));
// ServerKey = HMAC(SaltedPassword, "Server Key")).
std::string stored_scram(const EVP_MD* md, std::string_view password, std::string_view salt, int iterations)
{
    const auto size = static_cast<std::size_t>(EVP_MD_get_size(md));
    std::array<unsigned char, EVP_MAX_MD_SIZE> salted{};
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                      iterations, md, static_cast<int>(size), salted.data());
    std::array<unsigned char, EVP_MAX_MD_SIZE> client_key{};
    std::array<unsigned char, EVP_MAX_MD_SIZE> server_key{};
    std::array<unsigned char, EVP_MAX_MD_SIZE> stored_key{};
    unsigned int length = 0;
    HMAC(md, salted.data(), static_cast<int>(size), reinterpret_cast<const unsigned char*>("Client Key"), 10,
         client_key.data(), &length);
    HMAC(md, salted.data(), static_cast<int>(size), reinterpret_cast<const unsigned char*>("Server Key"), 10,
         server_key.data(), &length);
    EVP_Digest(client_key.data(), size, stored_key.data(), &length, md, nullptr);
    const auto text = [&](const std::array<unsigned char, EVP_MAX_MD_SIZE>& bytes) {
        return base64_encode(std::string_view(reinterpret_cast<const char*>(bytes.data()), size));
    };
    return std::to_string(iterations) + "," + base64_encode(salt) + "," + text(stored_key) + "," +
           text(server_key);
}

struct Outcome {
    bool authenticated = false;
    std::string user;
    bool client_verified_server = false;
};

// Runs a whole exchange between a server and a client mechanism.
Outcome run_exchange(const std::unique_ptr<ServerMechanism>& server,
                     const std::unique_ptr<ClientMechanism>& client, std::optional<StoredSecret> secret,
                     std::string_view client_user)
{
    Outcome outcome;
    EXPECT_TRUE(server && client);
    if (!server || !client) {
        return outcome;
    }
    auto first = client->initial_response();
    EXPECT_TRUE(first);
    auto step = server->start(*first);
    for (int round = 0; round < 5; ++round) {
        if (auto* need = std::get_if<NeedSecret>(&step)) {
            EXPECT_EQ(need->user, client_user);
            step = server->provide_secret(std::move(secret));
            secret.reset();
        } else if (auto* challenge = std::get_if<Challenge>(&step)) {
            auto answer = client->respond(challenge->data);
            if (!answer) {
                return outcome;
            }
            step = server->step(*answer);
        } else if (auto* done = std::get_if<Authenticated>(&step)) {
            outcome.authenticated = true;
            outcome.user = done->user;
            // RFC 4422 §3.6: the client checks the server's final message (its signature).
            outcome.client_verified_server =
                done->final_data && client->respond(*done->final_data).has_value();
            return outcome;
        } else {
            return outcome;
        }
    }
    ADD_FAILURE() << "exchange did not end";
    return outcome;
}

// Runs a whole exchange between Pigeon's server and client mechanisms.
Outcome exchange(std::string_view mechanism, std::optional<StoredSecret> secret, std::string_view client_user,
                 std::string_view client_password, const MechanismContext& server_context = {},
                 const MechanismContext& client_context = {})
{
    auto server = make_server_mechanism(mechanism, server_context);
    auto client = make_scram_client(mechanism, "", std::string(client_user),
                                    SecretString(std::string(client_password)), client_context);
    return run_exchange(server, client, std::move(secret), client_user);
}

StoredSecret secret_for(std::string user, std::string stored)
{
    return StoredSecret{std::move(user), SecretString(std::move(stored))};
}

TEST(Scram, Sha256WithStoredKeys)
{
    // RFC 7677 §3's user, password and salt.
    const std::string salt = *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
    const auto stored = "{SCRAM-SHA-256}" + stored_scram(EVP_sha256(), "pencil", salt, 4096);
    const auto outcome = exchange("SCRAM-SHA-256", secret_for("user", stored), "user", "pencil");
    EXPECT_TRUE(outcome.authenticated);
    EXPECT_EQ(outcome.user, "user");
    EXPECT_TRUE(outcome.client_verified_server);
}

TEST(Scram, Sha1WithStoredKeys)
{
    // RFC 5802 §5's user, password and salt.
    const std::string salt = *base64_decode("QSXCR+Q6sek8bf92");
    const auto stored = "{SCRAM-SHA-1}" + stored_scram(EVP_sha1(), "pencil", salt, 4096);
    EXPECT_TRUE(exchange("scram-sha-1", secret_for("user", stored), "user", "pencil").authenticated);
}

TEST(Scram, PlainStoredPasswordWorksToo)
{
    EXPECT_TRUE(
        exchange("SCRAM-SHA-256", secret_for("alice", "{PLAIN}secret"), "alice", "secret").authenticated);
}

TEST(Scram, WrongPasswordUnknownUserAndUnusableSchemeFail)
{
    const std::string salt = "0123456789abcdef";
    const auto stored = "{SCRAM-SHA-256}" + stored_scram(EVP_sha256(), "pencil", salt, 4096);
    EXPECT_FALSE(exchange("SCRAM-SHA-256", secret_for("user", stored), "user", "pencil2").authenticated);
    EXPECT_FALSE(exchange("SCRAM-SHA-256", std::nullopt, "nobody", "pencil").authenticated);
    EXPECT_FALSE(exchange("SCRAM-SHA-256", secret_for("user", "{SHA512-CRYPT}$6$x$y"), "user", "pencil")
                     .authenticated);
    // A SCRAM-SHA-1 secret cannot serve SCRAM-SHA-256.
    const auto sha1 = "{SCRAM-SHA-1}" + stored_scram(EVP_sha1(), "pencil", salt, 4096);
    EXPECT_FALSE(exchange("SCRAM-SHA-256", secret_for("user", sha1), "user", "pencil").authenticated);
}

TEST(Scram, UnknownUserStillGetsAChallenge)
{
    auto server = make_server_mechanism("SCRAM-SHA-256");
    auto step = server->start(std::string_view("n,,n=nobody,r=abcdefghijklmnop"));
    ASSERT_TRUE(std::holds_alternative<NeedSecret>(step));
    step = server->provide_secret(std::nullopt);
    ASSERT_TRUE(std::holds_alternative<Challenge>(step)); // indistinguishable from a real user
    EXPECT_NE(std::get<Challenge>(step).data.find("s="), std::string::npos);
}

TEST(Scram, ChannelBindingWithTlsExporter)
{
    const MechanismContext tls{std::string(32, '\x42'), {}, {}};
    const MechanismContext other{std::string(32, '\x43'), {}, {}};
    EXPECT_FALSE(make_server_mechanism("SCRAM-SHA-256-PLUS")); // no TLS, no -PLUS
    EXPECT_TRUE(
        exchange("SCRAM-SHA-256-PLUS", secret_for("alice", "{PLAIN}secret"), "alice", "secret", tls, tls)
            .authenticated);
    // A man in the middle terminates TLS twice: the exporters differ and the exchange fails.
    EXPECT_FALSE(
        exchange("SCRAM-SHA-256-PLUS", secret_for("alice", "{PLAIN}secret"), "alice", "secret", tls, other)
            .authenticated);
}

MechanismContext end_point_only(std::string data)
{
    MechanismContext context;
    context.tls_server_end_point = std::move(data);
    return context;
}

TEST(Scram, ChannelBindingWithTlsServerEndPoint)
{
    // RFC 5929: a TLS session without an exporter (TLS 1.2 without extended master secret) still
    // binds -PLUS to the server's certificate hash. GNU SASL lacks this binding; scram_endpoint
    // frames it.
    const std::string salt = "0123456789abcdef";
    const auto stored = "{SCRAM-SHA-256}" + stored_scram(EVP_sha256(), "pencil", salt, 4096);
    const auto hash = std::string(32, '\x5a');
    auto outcome = exchange("SCRAM-SHA-256-PLUS", secret_for("user", stored), "user", "pencil",
                            end_point_only(hash), end_point_only(hash));
    EXPECT_TRUE(outcome.authenticated);
    EXPECT_TRUE(outcome.client_verified_server);
    EXPECT_TRUE(exchange("SCRAM-SHA-1-PLUS", secret_for("alice", "{PLAIN}secret"), "alice", "secret",
                         end_point_only(hash), end_point_only(hash))
                    .authenticated);
    // A man in the middle terminates TLS with another certificate: the hashes differ.
    EXPECT_FALSE(exchange("SCRAM-SHA-256-PLUS", secret_for("user", stored), "user", "pencil",
                          end_point_only(hash), end_point_only(std::string(32, '\x5b')))
                     .authenticated);
    // Wrong password and unknown user fail as without binding.
    EXPECT_FALSE(exchange("SCRAM-SHA-256-PLUS", secret_for("user", stored), "user", "pencil2",
                          end_point_only(hash), end_point_only(hash))
                     .authenticated);
    EXPECT_FALSE(exchange("SCRAM-SHA-256-PLUS", std::nullopt, "user", "pencil", end_point_only(hash),
                          end_point_only(hash))
                     .authenticated);
    // A server that has no end-point data refuses the binding rather than ignoring it.
    MechanismContext exporter_only;
    exporter_only.tls_exporter = std::string(32, '\x01');
    EXPECT_FALSE(exchange("SCRAM-SHA-256-PLUS", secret_for("user", stored), "user", "pencil", exporter_only,
                          end_point_only(hash))
                     .authenticated);
}

TEST(Scram, EndPointFramingInteroperatesWithGnuSasl)
{
    // The hand-framed exchange without channel binding, against GNU SASL's SCRAM in both
    // directions: the messages and proofs agree with an independent implementation.
    const std::string salt = "fedcba9876543210";
    for (const auto* name : {"SCRAM-SHA-256", "SCRAM-SHA-1"}) {
        const auto* md = std::string_view(name) == "SCRAM-SHA-1" ? EVP_sha1() : EVP_sha256();
        const auto stored = std::string("{") + name + "}" + stored_scram(md, "pencil", salt, 4096);
        auto ours_to_gnu =
            run_exchange(make_server_mechanism(name, {}),
                         make_endpoint_scram_client(name, "", "user", SecretString("pencil"), ""),
                         secret_for("user", stored), "user");
        EXPECT_TRUE(ours_to_gnu.authenticated) << name;
        EXPECT_TRUE(ours_to_gnu.client_verified_server) << name;
        auto gnu_to_ours = run_exchange(make_endpoint_scram_server(name, ""),
                                        make_scram_client(name, "", "user", SecretString("pencil"), {}),
                                        secret_for("user", stored), "user");
        EXPECT_TRUE(gnu_to_ours.authenticated) << name;
        EXPECT_TRUE(gnu_to_ours.client_verified_server) << name;
        auto wrong = run_exchange(make_endpoint_scram_server(name, ""),
                                  make_scram_client(name, "", "user", SecretString("pencil!"), {}),
                                  secret_for("user", stored), "user");
        EXPECT_FALSE(wrong.authenticated) << name;
    }
}

TEST(Scram, TlsServerEndPointHashFollowsTheSignatureAlgorithm)
{
    const auto der_of = [](const EVP_MD* md) {
        EVP_PKEY* key = EVP_EC_gen("P-256");
        X509* cert = X509_new();
        X509_set_version(cert, 2);
        X509_gmtime_adj(X509_getm_notBefore(cert), 0);
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_set_pubkey(cert, key);
        X509_sign(cert, key, md);
        std::string der(static_cast<std::size_t>(i2d_X509(cert, nullptr)), '\0');
        auto* cursor = reinterpret_cast<unsigned char*>(der.data());
        i2d_X509(cert, &cursor);
        X509_free(cert);
        EVP_PKEY_free(key);
        return der;
    };
    const auto hash = [](const EVP_MD* md, std::string_view data) {
        std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
        unsigned int length = 0;
        EVP_Digest(data.data(), data.size(), out.data(), &length, md, nullptr);
        return std::string(reinterpret_cast<const char*>(out.data()), length);
    };
    const auto sha384_cert = der_of(EVP_sha384());
    EXPECT_EQ(tls_server_end_point(sha384_cert), hash(EVP_sha384(), sha384_cert));
    const auto sha1_cert = der_of(EVP_sha1()); // SHA-1 is replaced by SHA-256 (RFC 5929 §4.1)
    EXPECT_EQ(tls_server_end_point(sha1_cert), hash(EVP_sha256(), sha1_cert));
    EXPECT_EQ(tls_server_end_point("not a certificate"), "");
}

TEST(Scram, MalformedClientFirstFails)
{
    for (const std::string_view message : {"", "n,,", "x", "n,,m=user,r=x", "n,,n=,r=x", "n,,n=a=ZZb,r=x"}) {
        auto server = make_server_mechanism("SCRAM-SHA-256");
        auto step = message.empty() ? server->step(message) : server->start(message);
        EXPECT_TRUE(std::holds_alternative<Failure>(step)) << message;
    }
    auto escaped = make_server_mechanism("SCRAM-SHA-256");
    auto step = escaped->start(std::string_view("n,,n=a=2Cb=3Dc,r=nonce"));
    ASSERT_TRUE(std::holds_alternative<NeedSecret>(step));
    EXPECT_EQ(std::get<NeedSecret>(step).user, "a,b=c");
}

TEST(Scram, ParseStoredSecret)
{
    const auto secret = parse_scram_secret(stored_scram(EVP_sha256(), "pencil", "salt", 4096));
    ASSERT_TRUE(secret);
    EXPECT_EQ(secret->iterations, 4096U);
    EXPECT_EQ(secret->salt, "salt");
    EXPECT_EQ(secret->stored_key.size(), 32U);
    for (const char* bad : {"", "4096", "4096,c2FsdA==,AAAA", "0,c2FsdA==,AAAA,AAAA", "x,c2FsdA==,AAAA,AAAA",
                            "4096,c2FsdA==,AAAA,AAAA,extra", "4096,!!,AAAA,AAAA"}) {
        EXPECT_FALSE(parse_scram_secret(bad)) << bad;
    }
}

} // namespace
} // namespace pigeon::sasl
