#include "protocol/reply.hpp"

#include <gtest/gtest.h>

namespace pigeon::protocol {
namespace {

TEST(Reply, StatusLines)
{
    auto ok = parse_reply("+OK 2 320");
    ASSERT_TRUE(ok);
    EXPECT_TRUE(ok->ok());
    EXPECT_EQ(ok->text, "2 320");
    EXPECT_EQ(ok->code, "");

    auto bare = parse_reply("+OK");
    ASSERT_TRUE(bare);
    EXPECT_EQ(bare->text, "");

    auto err = parse_reply("-ERR [SYS/TEMP] try later");
    ASSERT_TRUE(err);
    EXPECT_EQ(err->kind, Reply::Kind::err);
    EXPECT_EQ(err->code, "SYS/TEMP");
    EXPECT_EQ(err->text, "try later");
    EXPECT_EQ(err->known_code(), ResponseCode::sys_temp);

    EXPECT_FALSE(parse_reply("+OKAY"));
    EXPECT_FALSE(parse_reply("OK"));
    EXPECT_FALSE(parse_reply(""));
    EXPECT_FALSE(parse_reply("-ERRor"));
}

TEST(Reply, ResponseCodesAreHierarchical)
{
    const auto code_of = [](std::string_view line) { return parse_reply(line)->known_code(); };
    EXPECT_EQ(code_of("-ERR [IN-USE] locked"), ResponseCode::in_use);
    EXPECT_EQ(code_of("-ERR [LOGIN-DELAY] wait"), ResponseCode::login_delay);
    EXPECT_EQ(code_of("-ERR [SYS/PERM] gone"), ResponseCode::sys_perm);
    EXPECT_EQ(code_of("-ERR [SYS/TEMP/DISK] busy"), ResponseCode::sys_temp);
    EXPECT_EQ(code_of("-ERR [AUTH] bad"), ResponseCode::auth);
    EXPECT_EQ(code_of("-ERR [AUTHX] bad"), ResponseCode::none);
    EXPECT_EQ(code_of("-ERR [SYS] vague"), ResponseCode::none);
    EXPECT_EQ(code_of("-ERR no code"), ResponseCode::none);
}

TEST(Reply, Continuations)
{
    auto empty = parse_reply("+ ");
    ASSERT_TRUE(empty);
    EXPECT_EQ(empty->kind, Reply::Kind::continuation);
    EXPECT_EQ(empty->text, "");
    auto bare = parse_reply("+");
    ASSERT_TRUE(bare);
    EXPECT_EQ(bare->kind, Reply::Kind::continuation);
    auto challenge = parse_reply("+ PDQ1Njc4QGV4YW1wbGU+");
    ASSERT_TRUE(challenge);
    EXPECT_EQ(challenge->text, "PDQ1Njc4QGV4YW1wbGU+");
}

TEST(Reply, ApopTimestamp)
{
    EXPECT_EQ(apop_timestamp("POP3 server ready <1896.697170952@dbc.mtview.ca.us>"),
              "<1896.697170952@dbc.mtview.ca.us>");
    EXPECT_FALSE(apop_timestamp("Dovecot ready."));
    EXPECT_FALSE(apop_timestamp("ready <no-at-sign>"));
    EXPECT_FALSE(apop_timestamp("ready <a b@c>"));
    EXPECT_EQ(apop_timestamp("x <junk> <1.2@h>"), "<1.2@h>");
}

TEST(Reply, StatListUidlLines)
{
    const auto stat = parse_stat("2 320");
    ASSERT_TRUE(stat);
    EXPECT_EQ(stat->messages, 2U);
    EXPECT_EQ(stat->octets, 320U);
    EXPECT_TRUE(parse_stat("2 320 extra text"));
    EXPECT_FALSE(parse_stat("2"));
    EXPECT_FALSE(parse_stat("x 1"));

    const auto scan = parse_scan_listing("1 120");
    ASSERT_TRUE(scan);
    EXPECT_EQ(scan->message, MessageNumber{1});
    EXPECT_EQ(scan->octets, 120U);
    EXPECT_FALSE(parse_scan_listing("0 120"));

    const auto uid = parse_unique_id_listing("1 whqtswO00WBw418f9t5JxYwZ");
    ASSERT_TRUE(uid);
    EXPECT_EQ(uid->unique_id, "whqtswO00WBw418f9t5JxYwZ");
    EXPECT_FALSE(parse_unique_id_listing("1 " + std::string(71, 'x'))); // RFC 1939 §7: 70 max
    EXPECT_FALSE(parse_unique_id_listing("1"));
}

TEST(Reply, Capabilities)
{
    Capabilities caps;
    for (const char* line : {"TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS",
                             "SASL PLAIN scram-sha-256 CRAM-MD5", "LOGIN-DELAY 900", "EXPIRE 30",
                             "IMPLEMENTATION Shlemazle-Plotz-v302", "UTF8 USER", "X-UNKNOWN thing"}) {
        add_capability_line(caps, line);
    }
    EXPECT_TRUE(caps.top && caps.uidl && caps.user && caps.resp_codes && caps.auth_resp_code &&
                caps.pipelining && caps.stls && caps.utf8);
    EXPECT_TRUE(caps.has_mechanism("SCRAM-SHA-256"));
    EXPECT_TRUE(caps.has_mechanism("plain"));
    EXPECT_FALSE(caps.has_mechanism("LOGIN"));
    EXPECT_EQ(caps.login_delay_seconds, 900U);
    EXPECT_EQ(caps.expire_days, 30U);
    EXPECT_EQ(caps.implementation, "Shlemazle-Plotz-v302");
    add_capability_line(caps, "EXPIRE NEVER");
    EXPECT_TRUE(caps.expire_never);
    EXPECT_FALSE(caps.expire_days);
}

} // namespace
} // namespace pigeon::protocol
