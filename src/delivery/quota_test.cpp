#include "delivery/quota.hpp"

#include "auth/passdb.hpp"
#include "config/config.hpp"

#include <gtest/gtest.h>

namespace pigeon::delivery {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

constexpr std::uint64_t kib = 1024;
constexpr std::uint64_t mib = kib * 1024;
constexpr std::uint64_t gib = mib * 1024;

Quota quota_of(const Fields& fields, const Quota& defaults = {})
{
    auto quota = quota_from_fields(fields, defaults);
    EXPECT_TRUE(quota) << (quota ? "" : quota.error());
    return quota ? *quota : Quota{};
}

std::string error_of(const Fields& fields)
{
    auto quota = quota_from_fields(fields, {});
    EXPECT_FALSE(quota) << "accepted";
    return quota ? std::string() : quota.error();
}

TEST(QuotaSize, UnitsAsDovecotReadsThem)
{
    EXPECT_EQ(parse_quota_size("0").value(), 0U);
    EXPECT_EQ(parse_quota_size("100").value(), 100U);
    EXPECT_EQ(parse_quota_size("100", 1024).value(), 100 * kib); // storage= without a unit: KiB
    EXPECT_EQ(parse_quota_size("10B", 1024).value(), 10U);
    EXPECT_EQ(parse_quota_size("10b").value(), 10U);
    EXPECT_EQ(parse_quota_size("512k").value(), 512 * kib);
    EXPECT_EQ(parse_quota_size("512K").value(), 512 * kib);
    EXPECT_EQ(parse_quota_size("100M").value(), 100 * mib);
    EXPECT_EQ(parse_quota_size("100m").value(), 100 * mib);
    EXPECT_EQ(parse_quota_size("1G").value(), gib);
    EXPECT_EQ(parse_quota_size("2T").value(), std::uint64_t{2} * 1024 * gib);
    EXPECT_FALSE(parse_quota_size(""));
    EXPECT_FALSE(parse_quota_size("G"));
    EXPECT_FALSE(parse_quota_size("1X"));
    EXPECT_FALSE(parse_quota_size("1GB"));
    EXPECT_FALSE(parse_quota_size("-1"));
    EXPECT_FALSE(parse_quota_size("1 G"));
    EXPECT_FALSE(parse_quota_size("99999999999999999999"));
    EXPECT_FALSE(parse_quota_size("20000000T")); // overflows 64 bits
}

TEST(QuotaRules, StorageAndMessagesFromBothRuleFields)
{
    const Quota quota =
        quota_of({{"userdb_quota_rule", "*:storage=1G"}, {"userdb_quota_rule2", "*:messages=1000"}});
    EXPECT_EQ(quota.bytes, gib);
    EXPECT_EQ(quota.messages, 1000U);
}

TEST(QuotaRules, WithoutTheUserdbPrefixAndSeveralLimitsInOneRule)
{
    EXPECT_EQ(quota_of({{"quota_rule", "*:storage=100M:messages=50"}}), (Quota{100 * mib, 50U}));
    EXPECT_EQ(quota_of({{"quota_rule", "*:bytes=12345"}}), (Quota{12345U, std::nullopt}));
    EXPECT_EQ(quota_of({{"quota_rule", "*:bytes=1k"}}), (Quota{kib, std::nullopt}));
    EXPECT_EQ(quota_of({{"quota_rule", "*:storage=100"}}), (Quota{100 * kib, std::nullopt})); // KiB
    EXPECT_EQ(quota_of({{"quota_rule", "?:messages=7"}}), (Quota{std::nullopt, 7U}));
}

TEST(QuotaRules, ZeroIsUnlimitedAndOverridesTheDefault)
{
    const Quota defaults{gib, 1000U};
    EXPECT_EQ(quota_of({{"quota_rule", "*:storage=0"}}, defaults), (Quota{std::nullopt, 1000U}));
    EXPECT_EQ(quota_of({{"quota_rule", "*:messages=0"}}, defaults), (Quota{gib, std::nullopt}));
    EXPECT_TRUE(quota_of({{"quota_rule", "*:storage=0:messages=0"}}, defaults).unlimited());
}

TEST(QuotaRules, ServerDefaultsForUsersWithoutRules)
{
    const Quota defaults{gib, 1000U};
    EXPECT_EQ(quota_of({}, defaults), defaults);
    EXPECT_EQ(quota_of({{"nologin", ""}, {"userdb_mail", "maildir:~/Maildir"}}, defaults), defaults);
    // A rule naming one limit keeps the default of the other.
    EXPECT_EQ(quota_of({{"userdb_quota_rule", "*:storage=2G"}}, defaults), (Quota{2 * gib, 1000U}));
    EXPECT_EQ(quota_of({{"userdb_quota_rule", "*:messages=5"}}, defaults), (Quota{gib, 5U}));
    EXPECT_TRUE(quota_of({}).unlimited());
    // An empty value sets nothing, as Dovecot reads an empty setting.
    EXPECT_EQ(quota_of({{"userdb_quota_rule", ""}}, defaults), defaults);
}

TEST(QuotaRules, AppliedInRuleOrderWithTheUserdbFieldLast)
{
    EXPECT_EQ(quota_of({{"quota_rule2", "*:storage=2G"}, {"quota_rule", "*:storage=1G"}}).bytes, 2 * gib);
    EXPECT_EQ(quota_of({{"userdb_quota_rule", "*:storage=3G"}, {"quota_rule", "*:storage=1G"}}).bytes,
              3 * gib);
    EXPECT_EQ(quota_of({{"quota_rule10", "*:storage=5G"}, {"quota_rule9", "*:storage=1G"}}).bytes, 5 * gib);
}

TEST(QuotaRules, InboxRulesAddToTheDefaultAndOthersAreSkipped)
{
    EXPECT_EQ(quota_of({{"quota_rule", "*:storage=1G"}, {"quota_rule2", "INBOX:storage=+100M"}}).bytes,
              gib + 100 * mib);
    EXPECT_EQ(quota_of({{"quota_rule", "*:storage=1G"}, {"quota_rule2", "inbox:storage=-100M"}}).bytes,
              gib - 100 * mib);
    EXPECT_EQ(quota_of({{"quota_rule", "*:messages=1000"}, {"quota_rule2", "INBOX:messages=+10%"}}).messages,
              1100U);
    EXPECT_EQ(quota_of({{"quota_rule", "*:messages=1000"}, {"quota_rule2", "INBOX:messages=+1k"}}).messages,
              2024U);
    EXPECT_EQ(quota_of({{"quota_rule", "*:storage=1G"},
                        {"quota_rule2", "Trash:storage=+100M"},
                        {"quota_rule3", "SPAM:ignore"}}),
              (Quota{gib, std::nullopt}));
    // A wildcard mask that matches INBOX is an INBOX rule; the first matching mask wins.
    EXPECT_EQ(quota_of({{"quota_rule", "*:storage=1G"},
                        {"quota_rule2", "INB*:storage=+1G"},
                        {"quota_rule3", "INBOX:storage=+5G"}})
                  .bytes,
              2 * gib);
    // Dovecot: with no default limit at all, mailbox rules are not consulted.
    EXPECT_TRUE(quota_of({{"quota_rule", "INBOX:storage=+100M"}}).unlimited());
    // A sum of zero or less is unlimited.
    EXPECT_EQ(quota_of({{"quota_rule", "*:storage=1G:messages=5"}, {"quota_rule2", "INBOX:storage=-2G"}}),
              (Quota{std::nullopt, 5U}));
}

TEST(QuotaRules, IgnoreLiftsTheLimits)
{
    const Quota defaults{gib, 1000U};
    EXPECT_TRUE(quota_of({{"quota_rule", "INBOX:ignore"}}, defaults).unlimited());
    EXPECT_TRUE(quota_of({{"quota_rule", "*:ignore"}}, defaults).unlimited());
    EXPECT_EQ(quota_of({{"quota_rule", "Trash:ignore"}}, defaults), defaults);
}

TEST(QuotaRules, BadRulesAreErrorsThatNameTheField)
{
    EXPECT_NE(error_of({{"userdb_quota_rule2", "*:storage=1X"}}).find("userdb_quota_rule2"),
              std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "*:storage=1X"}}).find("unknown unit"), std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "storage=1G"}}).find("<mailbox>:<limits>"), std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "*:size=1G"}}).find("unknown limit"), std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "*:storage"}}).find("not a number"), std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "*:storage="}}).find("not a number"), std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "*:storage=+1G"}}).find("no sign"), std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "*:storage=-1G"}}).find("no sign"), std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "*:storage=10%"}}).find("percentage"), std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "*:storage=99999999999999999T"}}).find("too large"),
              std::string::npos);
    EXPECT_NE(error_of({{"quota_rule", "*:backend=1000S"}}).find("backend"), std::string::npos);
    // A bad rule for another mailbox is still an error: Dovecot refuses the whole configuration.
    EXPECT_FALSE(error_of({{"quota_rule", "*:storage=1G"}, {"quota_rule2", "Trash:storage=+1Q"}}).empty());
}

TEST(QuotaRules, FromAUserRecord)
{
    auth::UserRecord record;
    record.name = "alice";
    record.extra_fields = {{"userdb_quota_rule", "*:storage=10M"}};
    QuotaPolicy policy;
    policy.defaults.messages = 100;
    EXPECT_EQ(quota_for(record, policy).value(), (Quota{10 * mib, 100U}));
}

TEST(QuotaFits, MessagesLimitAdmitsOneMoreWhileUnder)
{
    const Quota quota{std::nullopt, 3U};
    EXPECT_TRUE(fits(quota, {2, 0}, 1'000'000, 0));
    EXPECT_FALSE(fits(quota, {3, 0}, 1, 0));
    EXPECT_FALSE(fits(quota, {4, 0}, 0, 0));
    EXPECT_TRUE(fits(Quota{}, {1'000'000, 1'000'000'000}, 1'000'000, 0));
}

TEST(QuotaFits, StorageLimitWithGraceForTheLastMessage)
{
    const Quota quota{1000U, std::nullopt};
    EXPECT_TRUE(fits(quota, {0, 0}, 1000, 0));
    EXPECT_FALSE(fits(quota, {0, 0}, 1001, 0));
    EXPECT_TRUE(fits(quota, {0, 900}, 100, 0));
    EXPECT_FALSE(fits(quota, {0, 900}, 101, 0));
    // Grace: under the limit, one message may end up to `grace` octets past it...
    EXPECT_TRUE(fits(quota, {0, 900}, 200, 100));
    EXPECT_FALSE(fits(quota, {0, 900}, 201, 100));
    // ...but nothing more once the limit is reached.
    EXPECT_FALSE(fits(quota, {0, 1000}, 1, 100));
    EXPECT_FALSE(fits(quota, {0, 1050}, 1, 100));
    // Size not known yet (RCPT without SIZE): only "under the limit?".
    EXPECT_TRUE(fits(quota, {0, 999}, 0, 0));
    EXPECT_FALSE(fits(quota, {0, 1000}, 0, 0));
}

TEST(QuotaFits, GraceIsAPercentageOfTheLimitOrFixed)
{
    QuotaPolicy policy; // Dovecot's default: 10%
    EXPECT_EQ(grace_octets(Quota{1000U, std::nullopt}, policy), 100U);
    EXPECT_EQ(grace_octets(Quota{gib, std::nullopt}, policy), gib / 10);
    EXPECT_EQ(grace_octets(Quota{std::nullopt, 10U}, policy), 0U);
    policy.grace_percent = 0;
    EXPECT_EQ(grace_octets(Quota{1000U, std::nullopt}, policy), 0U);
    policy.grace_octets = 5000;
    EXPECT_EQ(grace_octets(Quota{1000U, std::nullopt}, policy), 5000U);
}

// The [quota] and [delivery] keys of pigeond.toml (src/config) that feed DeliveryOptions.
TEST(QuotaConfig, KeysAndTheirErrors)
{
    const std::string base = "[[listen]]\naddress = \"127.0.0.1:110\"\ntls = \"none\"\n";
    auto config = config::parse(base + R"(
[quota]
default_storage = "1G"
default_messages = 1000
grace = "5%"
full_tempfail = true
[delivery]
recipient_delimiter = "+-"
max_message_size = "20M"
)",
                                "/etc/pigeon/pigeond.toml");
    ASSERT_TRUE(config) << config.error();
    EXPECT_EQ(config->quota.default_storage, gib);
    EXPECT_EQ(config->quota.default_messages, 1000U);
    EXPECT_EQ(config->quota.grace_percent, 5U);
    EXPECT_FALSE(config->quota.grace_octets);
    EXPECT_TRUE(config->quota.full_tempfail);
    EXPECT_EQ(config->delivery.recipient_delimiter, "+-");
    EXPECT_EQ(config->delivery.max_message_size, 20 * mib);

    config = config::parse(base + "[quota]\ndefault_storage = 1048576\ngrace = \"10M\"\n", "/p.toml");
    ASSERT_TRUE(config) << config.error();
    EXPECT_EQ(config->quota.default_storage, mib);
    EXPECT_EQ(config->quota.grace_octets, 10 * mib);

    config = config::parse(base, "/p.toml");
    ASSERT_TRUE(config);
    EXPECT_EQ(config->quota.default_storage, 0U);
    EXPECT_EQ(config->quota.grace_percent, 10U);
    EXPECT_EQ(config->delivery.recipient_delimiter, "+");
    EXPECT_EQ(config->delivery.max_message_size, 50 * mib);

    for (const std::string bad :
         {"[quota]\ndefault_storage = \"1Q\"\n", "[quota]\ndefault_storage = -1\n",
          "[quota]\ndefault_messages = \"many\"\n", "[quota]\ngrace = \"ten%\"\n", "[quota]\nsize = 1\n",
          "[delivery]\nrecipient_delimiter = \"@\"\n", "[delivery]\nmax_message_size = \"big\"\n"}) {
        config = config::parse(base + bad, "/p.toml");
        ASSERT_FALSE(config) << bad;
        EXPECT_NE(config.error().find("/p.toml:"), std::string::npos) << config.error();
    }
}

} // namespace
} // namespace pigeon::delivery
