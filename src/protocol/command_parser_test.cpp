#include "protocol/command_parser.hpp"

#include <gtest/gtest.h>

namespace pigeon::protocol {
namespace {

template <class T>
T parse_as(std::string_view line)
{
    auto parsed = parse_command(line);
    EXPECT_TRUE(parsed) << line;
    if (!parsed) {
        return T{};
    }
    EXPECT_TRUE(std::holds_alternative<T>(*parsed)) << line << " parsed as " << command_keyword(*parsed);
    return std::holds_alternative<T>(*parsed) ? std::move(std::get<T>(*parsed)) : T{};
}

std::error_code error_of(std::string_view line)
{
    auto parsed = parse_command(line);
    EXPECT_FALSE(parsed) << line;
    return parsed ? std::error_code{} : parsed.error();
}

TEST(CommandParser, EveryCommandOfRfc1939)
{
    EXPECT_EQ(parse_as<command::User>("USER mrose").name, "mrose");
    EXPECT_EQ(parse_as<command::Pass>("PASS secret").password.view(), "secret");
    const auto apop = parse_as<command::Apop>("APOP mrose c4c9334bac560ecc979e58001b3e22fb");
    EXPECT_EQ(apop.name, "mrose");
    EXPECT_EQ(apop.digest, "c4c9334bac560ecc979e58001b3e22fb");
    parse_as<command::Quit>("QUIT");
    parse_as<command::Stat>("STAT");
    EXPECT_FALSE(parse_as<command::List>("LIST").message);
    EXPECT_EQ(parse_as<command::List>("LIST 2").message, MessageNumber{2});
    EXPECT_EQ(parse_as<command::Retr>("RETR 1").message, MessageNumber{1});
    EXPECT_EQ(parse_as<command::Dele>("DELE 7").message, MessageNumber{7});
    parse_as<command::Noop>("NOOP");
    parse_as<command::Rset>("RSET");
    const auto top = parse_as<command::Top>("TOP 1 10");
    EXPECT_EQ(top.message, MessageNumber{1});
    EXPECT_EQ(top.body_lines, 10U);
    EXPECT_EQ(parse_as<command::Top>("TOP 3 0").body_lines, 0U);
    EXPECT_FALSE(parse_as<command::Uidl>("UIDL").message);
    EXPECT_EQ(parse_as<command::Uidl>("UIDL 3").message, MessageNumber{3});
}

TEST(CommandParser, ExtensionCommands)
{
    parse_as<command::Capa>("CAPA");
    parse_as<command::Stls>("STLS");
    parse_as<command::Utf8>("UTF8");
    parse_as<command::Last>("LAST");
    const auto bare = parse_as<command::Auth>("AUTH");
    EXPECT_FALSE(bare.mechanism);
    const auto plain = parse_as<command::Auth>("AUTH plain");
    EXPECT_EQ(plain.mechanism, "PLAIN");
    EXPECT_FALSE(plain.initial_response);
    const auto initial = parse_as<command::Auth>("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
    EXPECT_EQ(initial.initial_response, "AGFsaWNlAHNlY3JldA==");
    EXPECT_EQ(parse_as<command::Auth>("AUTH PLAIN =").initial_response, "=");
}

TEST(CommandParser, KeywordsAreCaseInsensitive)
{
    EXPECT_EQ(parse_as<command::Retr>("retr 4").message, MessageNumber{4});
    EXPECT_EQ(parse_as<command::User>("uSeR Alice").name, "Alice"); // arguments keep their case
    parse_as<command::Capa>("capa");
}

TEST(CommandParser, PassKeepsSpacesInThePassword)
{
    // RFC 1939 §7: PASS has exactly one argument; spaces may be part of it.
    EXPECT_EQ(parse_as<command::Pass>("PASS correct horse battery staple").password.view(),
              "correct horse battery staple");
    EXPECT_EQ(parse_as<command::Pass>("PASS  leading").password.view(), " leading");
    EXPECT_EQ(error_of("PASS"), make_error_code(errc::syntax_error));
}

TEST(CommandParser, MessageNumbersAreStrict)
{
    for (const char* line : {"RETR 0", "RETR -1", "RETR +1", "RETR 1x", "RETR 4294967296", "DELE 99999999999",
                             "LIST 0", "UIDL abc", "TOP 0 1"}) {
        EXPECT_EQ(error_of(line), make_error_code(errc::invalid_message_number)) << line;
    }
    EXPECT_EQ(parse_as<command::Retr>("RETR 4294967295").message, MessageNumber{4294967295U});
    EXPECT_EQ(error_of("TOP 1 -1"), make_error_code(errc::syntax_error));
    EXPECT_EQ(error_of("TOP 1 x"), make_error_code(errc::syntax_error));
}

TEST(CommandParser, ArgumentCounts)
{
    for (const char* line : {"RETR", "DELE", "TOP 1", "USER", "APOP mrose", "STAT 1", "QUIT now", "LIST 1 2",
                             "NOOP x", "UIDL 1 2", "RETR 1 2", "AUTH PLAIN a b", "CAPA x", "STLS x"}) {
        EXPECT_EQ(error_of(line), make_error_code(errc::syntax_error)) << line;
    }
}

TEST(CommandParser, Rfc2449ArgumentLimit)
{
    const std::string forty(40, 'a');
    EXPECT_EQ(parse_as<command::User>("USER " + forty).name, forty);
    EXPECT_EQ(error_of("USER " + forty + "a"), make_error_code(errc::argument_too_long));
    // The AUTH initial response is bounded by the line, not by the argument limit.
    const std::string long_response(200, 'A');
    EXPECT_EQ(parse_as<command::Auth>("AUTH PLAIN " + long_response).initial_response, long_response);
}

TEST(CommandParser, UnknownAndMalformed)
{
    for (const char* line : {"", " ", "RETRIEVE 1", "HELO", "XUSER a", " USER a", "USER\ta"}) {
        EXPECT_EQ(error_of(line), make_error_code(errc::unknown_command)) << line;
    }
    EXPECT_EQ(error_of(std::string_view("USER a\0b", 8)), make_error_code(errc::syntax_error));
    EXPECT_EQ(error_of("PASS a\x01"), make_error_code(errc::syntax_error));
}

TEST(CommandParser, RunsOfSpacesSeparateArguments)
{
    EXPECT_EQ(parse_as<command::Top>("TOP  1   5").body_lines, 5U);
    EXPECT_FALSE(parse_as<command::List>("LIST ").message);
}

} // namespace
} // namespace pigeon::protocol
