#include "sasl/mechanism.hpp"

#include <gtest/gtest.h>

namespace pigeon::sasl {
namespace {

TEST(External, CertificateIdentityIsTheUser)
{
    EXPECT_FALSE(make_server_mechanism("EXTERNAL")); // no client certificate
    const MechanismContext context{{}, "alice"};
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
