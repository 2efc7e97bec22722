#include "sasl/mechanism.hpp"

#include <gtest/gtest.h>

namespace pigeon::sasl {
namespace {

TEST(External, CertificateIdentityIsTheUser)
{
    EXPECT_FALSE(make_server_mechanism("EXTERNAL")); // no client certificate
    const MechanismContext context{{}, "alice", {}};
    auto empty = make_server_mechanism("external", context);
    ASSERT_TRUE(empty);
    auto result = empty->start(std::string_view(""));
    ASSERT_TRUE(std::holds_alternative<Authenticated>(result));
    EXPECT_EQ(std::get<Authenticated>(result).user, "alice");
    EXPECT_TRUE(
        std::holds_alternative<Authenticated>(make_server_mechanism("EXTERNAL", context)->start("alice")));
    EXPECT_TRUE(std::holds_alternative<Failure>(make_server_mechanism("EXTERNAL", context)->start("bob")));
    EXPECT_EQ(make_external_client("")->initial_response(), "");
}

TEST(Bearer, OauthbearerRoundTrip)
{
    const std::string token(2500, 't'); // longer than 2,000: real Microsoft tokens are
    auto client =
        make_bearer_client("OAUTHBEARER", "alice@example.org", SecretString(token), "mail.example.org", 995);
    auto server = make_server_mechanism("oauthbearer");
    const auto message = client->initial_response();
    ASSERT_TRUE(message);
    EXPECT_TRUE(message->starts_with("n,a=alice@example.org,\x01host=mail.example.org\x01port=995\x01"));
    auto result = server->start(*message);
    ASSERT_TRUE(std::holds_alternative<Verify>(result));
    const auto& bearer = std::get<BearerCredentials>(std::get<Verify>(result).credentials);
    EXPECT_EQ(bearer.user, "alice@example.org");
    EXPECT_EQ(bearer.token.view(), token);
    EXPECT_EQ(client->respond("{\"status\":\"invalid_token\"}").value(), "\x01");
}

TEST(Bearer, Xoauth2RoundTrip)
{
    auto client = make_bearer_client("XOAUTH2", "bob@example.org", SecretString("ya29.token"), "", 0);
    const auto message = client->initial_response();
    EXPECT_EQ(*message, "user=bob@example.org\x01"
                        "auth=Bearer ya29.token\x01\x01");
    auto result = make_server_mechanism("XOAUTH2")->start(*message);
    ASSERT_TRUE(std::holds_alternative<Verify>(result));
    EXPECT_EQ(std::get<BearerCredentials>(std::get<Verify>(result).credentials).token.view(), "ya29.token");
    EXPECT_EQ(client->respond("eyJzdGF0dXMiOiI0MDEifQ==").value(), "");
}

TEST(Bearer, MalformedMessagesFail)
{
    for (const std::string_view message : {std::string_view(""),
                                           std::string_view("user=a\x01"
                                                            "auth=Bearer t\x01"),
                                           std::string_view("user=a\x01"
                                                            "auth=Basic t\x01\x01"),
                                           std::string_view("auth=Bearer t\x01\x01"),
                                           std::string_view("user=\x01"
                                                            "auth=Bearer t\x01\x01")}) {
        EXPECT_TRUE(std::holds_alternative<Failure>(make_server_mechanism("XOAUTH2")->start(message)));
    }
    for (const std::string_view message : {std::string_view("a=x,\x01"
                                                            "auth=Bearer t\x01\x01"),
                                           std::string_view("n,a=x\x01"
                                                            "auth=Bearer t\x01\x01"),
                                           std::string_view("n,,\x01"
                                                            "auth=Bearer t\x01\x01")}) {
        EXPECT_TRUE(std::holds_alternative<Failure>(make_server_mechanism("OAUTHBEARER")->start(message)));
    }
    const std::string huge = "user=a\x01"
                             "auth=Bearer " +
                             std::string(9000, 'x') + "\x01\x01";
    EXPECT_TRUE(std::holds_alternative<Failure>(make_server_mechanism("XOAUTH2")->start(huge)));
}

} // namespace
} // namespace pigeon::sasl

namespace pigeon::sasl {
namespace {

// RFC 2195 §2's example.
TEST(CramMd5, ClientMatchesRfc2195)
{
    auto client = make_cram_md5_client("tim", SecretString("tanstaaftanstaaf"));
    EXPECT_FALSE(client->initial_response());
    EXPECT_EQ(client->respond("<1896.697170952@postoffice.reston.mci.net>").value(),
              "tim b913a602c7eda7a495b4e6e7334d3890");
}

bool cram_exchange(std::string_view stored, std::string_view password)
{
    auto server = make_server_mechanism("CRAM-MD5");
    auto client = make_cram_md5_client("alice", SecretString(std::string(password)));
    auto challenge = server->start(std::nullopt);
    if (!std::holds_alternative<Challenge>(challenge)) {
        return false;
    }
    auto need = server->step(client->respond(std::get<Challenge>(challenge).data).value());
    if (!std::holds_alternative<NeedSecret>(need) || std::get<NeedSecret>(need).user != "alice") {
        return false;
    }
    auto done = server->provide_secret(StoredSecret{"alice", SecretString(std::string(stored))});
    return std::holds_alternative<Authenticated>(done);
}

TEST(CramMd5, ServerChecksPlainAndDovecotStoredContexts)
{
    EXPECT_TRUE(cram_exchange("{PLAIN}secret", "secret"));
    EXPECT_FALSE(cram_exchange("{PLAIN}secret", "Secret"));
    // `doveadm pw -s CRAM-MD5 -p secret`: the server answers without knowing the password.
    const std::string dovecot = "{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56";
    EXPECT_TRUE(cram_exchange(dovecot, "secret"));
    EXPECT_FALSE(cram_exchange(dovecot, "wrong"));
    EXPECT_FALSE(cram_exchange("{SHA512-CRYPT}$6$x$y", "secret"));
    EXPECT_FALSE(cram_exchange("{CRAM-MD5}zz", "secret"));
}

TEST(CramMd5, ChallengesAreUniqueAndMalformedAnswersFail)
{
    auto first = make_server_mechanism("CRAM-MD5")->start(std::nullopt);
    auto second = make_server_mechanism("CRAM-MD5")->start(std::nullopt);
    EXPECT_NE(std::get<Challenge>(first).data, std::get<Challenge>(second).data);
    for (const std::string_view answer : {"", "alice", "alice 123", " b913a602c7eda7a495b4e6e7334d3890"}) {
        auto server = make_server_mechanism("CRAM-MD5");
        (void)server->start(std::nullopt);
        EXPECT_TRUE(std::holds_alternative<Failure>(server->step(answer))) << answer;
    }
}

} // namespace
} // namespace pigeon::sasl
