#include "sasl/mechanism.hpp"

#include <gtest/gtest.h>

namespace pigeon::sasl {
namespace {

TEST(Plain, ServerAcceptsRfc4616Message)
{
    auto plain = make_server_mechanism("plain");
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->name(), "PLAIN");
    const std::string message("\0tim\0tanstaaftanstaaf", 21); // RFC 4616 §4 example
    auto result = plain->start(std::string_view(message));
    ASSERT_TRUE(std::holds_alternative<Verify>(result));
    const auto& credentials = std::get<PasswordCredentials>(std::get<Verify>(result).credentials);
    EXPECT_EQ(credentials.authcid, "tim");
    EXPECT_EQ(credentials.authzid, "");
    EXPECT_EQ(credentials.password.view(), "tanstaaftanstaaf");
}

TEST(Plain, ServerWithoutInitialResponseSendsEmptyChallenge)
{
    auto plain = make_server_mechanism("PLAIN");
    auto first = plain->start(std::nullopt);
    ASSERT_TRUE(std::holds_alternative<Challenge>(first));
    EXPECT_EQ(std::get<Challenge>(first).data, "");
    auto second = plain->step(std::string_view("Ursel\0Kurt\0xipj3plmq", 20));
    // authzid "Ursel" differs from authcid "Kurt": proxy authorisation is refused.
    ASSERT_TRUE(std::holds_alternative<Failure>(second));
}

TEST(Plain, ServerRejectsMalformedMessages)
{
    for (const std::string& message :
         {std::string(""), std::string("alice"), std::string("\0alice", 6), std::string("\0alice\0", 7),
          std::string("\0\0secret", 8), std::string("\0alice\0sec\0ret", 14), std::string("\0\xc3\0x", 5),
          std::string("\0", 1) + std::string(256, 'a') + std::string("\0x", 2)}) {
        auto plain = make_server_mechanism("PLAIN");
        EXPECT_TRUE(std::holds_alternative<Failure>(plain->start(std::string_view(message))));
    }
    auto same = make_server_mechanism("PLAIN");
    EXPECT_TRUE(std::holds_alternative<Verify>(same->start(std::string_view("alice\0alice\0pw", 14))));
}

TEST(Plain, ClientBuildsTheMessage)
{
    auto client = make_plain_client("", "tim", SecretString("tanstaaftanstaaf"));
    EXPECT_EQ(client->name(), "PLAIN");
    EXPECT_EQ(client->initial_response(), std::string("\0tim\0tanstaaftanstaaf", 21));
    auto again = make_plain_client("", "tim", SecretString("x"));
    auto response = again->respond("");
    ASSERT_TRUE(response);
    EXPECT_EQ(*response, std::string("\0tim\0x", 6));
    EXPECT_FALSE(again->respond("")); // PLAIN has one message only
}

TEST(Plain, UnknownMechanismsAndPlaintextClassification)
{
    EXPECT_FALSE(make_server_mechanism("GSSAPI"));
    EXPECT_TRUE(is_plaintext_mechanism("plain"));
    EXPECT_TRUE(is_plaintext_mechanism("LOGIN"));
    EXPECT_FALSE(is_plaintext_mechanism("SCRAM-SHA-256"));
}

} // namespace
} // namespace pigeon::sasl

namespace pigeon::sasl {
namespace {

TEST(Login, ServerAsksForUserThenPassword)
{
    auto login = make_server_mechanism("login");
    ASSERT_TRUE(login);
    auto first = login->start(std::nullopt);
    ASSERT_TRUE(std::holds_alternative<Challenge>(first));
    EXPECT_EQ(std::get<Challenge>(first).data, "Username:");
    auto second = login->step("alice");
    ASSERT_TRUE(std::holds_alternative<Challenge>(second));
    EXPECT_EQ(std::get<Challenge>(second).data, "Password:");
    auto third = login->step("two words");
    ASSERT_TRUE(std::holds_alternative<Verify>(third));
    const auto& credentials = std::get<PasswordCredentials>(std::get<Verify>(third).credentials);
    EXPECT_EQ(credentials.authcid, "alice");
    EXPECT_EQ(credentials.password.view(), "two words");
}

TEST(Login, InitialResponseCarriesTheUser)
{
    auto login = make_server_mechanism("LOGIN");
    auto first = login->start(std::string_view("alice"));
    ASSERT_TRUE(std::holds_alternative<Challenge>(first));
    EXPECT_EQ(std::get<Challenge>(first).data, "Password:");
    EXPECT_TRUE(std::holds_alternative<Failure>(login->step(std::string_view("pw\0x", 4))));
}

TEST(Login, ClientAnswersByPosition)
{
    auto client = make_login_client("alice", SecretString("secret"));
    EXPECT_FALSE(client->initial_response());
    EXPECT_EQ(client->respond("Username:").value(), "alice");
    EXPECT_EQ(client->respond("Password:").value(), "secret");
    EXPECT_FALSE(client->respond("more?"));
}

} // namespace
} // namespace pigeon::sasl
