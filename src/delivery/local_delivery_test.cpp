#include "delivery/local_delivery.hpp"

#include "auth/memory/memory_passdb.hpp"
#include "core/error.hpp"
#include "session_driver.hpp"
#include "storage/maildir/maildir_store.hpp"
#include "storage/memory/memory_maildrop.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

namespace pigeon::delivery {
namespace {

namespace fs = std::filesystem;

auth::UserRecord user(std::string name, std::vector<std::pair<std::string, std::string>> fields = {})
{
    auth::UserRecord record;
    record.name = std::move(name);
    record.password = SecretString(std::string("{PLAIN}secret"));
    record.extra_fields = std::move(fields);
    return record;
}

// Everything in memory: the user database, the store, its usage.
struct MemoryWorld {
    auth::MemoryPassDb passdb;
    storage::MemoryMaildropStore store;
    MemoryUsage usage{store};
    std::vector<std::string> log;
    std::mutex log_mutex;

    DeliveryOptions options(DeliveryOptions base = {})
    {
        base.log = [this](std::string_view line) {
            const std::lock_guard lock(log_mutex);
            log.emplace_back(line);
        };
        return base;
    }
};

// Stores a whole message for `address`; the unique-id, or the refusal.
Verdicted<std::string> deliver(LocalDelivery& delivery, std::string_view address, std::string_view sender,
                               std::string_view message, TraceHeaders trace = TraceHeaders::add)
{
    auto recipient = delivery.check_recipient(address);
    if (!recipient) {
        return tl::unexpected(recipient.error());
    }
    auto pending = delivery.begin(*recipient, sender, trace);
    if (!pending) {
        return tl::unexpected(pending.error());
    }
    if (auto written = (*pending)->write(message); !written) {
        return tl::unexpected(written.error());
    }
    return (*pending)->commit();
}

TEST(LocalDeliveryAddress, Candidates)
{
    using V = std::vector<std::string>;
    EXPECT_EQ(LocalDelivery::lookup_candidates("alice@example.org", "+"), (V{"alice@example.org", "alice"}));
    EXPECT_EQ(LocalDelivery::lookup_candidates("<Alice+news@Example.org>", "+"),
              (V{"Alice@Example.org", "Alice"}));
    EXPECT_EQ(LocalDelivery::lookup_candidates("alice", "+"), (V{"alice"}));
    EXPECT_EQ(LocalDelivery::lookup_candidates("alice+x+y@example.org", "+"),
              (V{"alice@example.org", "alice"}));
    EXPECT_EQ(LocalDelivery::lookup_candidates("a-b+c@x", "-+"), (V{"a@x", "a"}));
    EXPECT_EQ(LocalDelivery::lookup_candidates("alice+tag@x", ""), (V{"alice+tag@x", "alice+tag"}));
    EXPECT_EQ(LocalDelivery::lookup_candidates("+tag@x", "+"), (V{"+tag@x", "+tag"})); // no user before it
    EXPECT_EQ(LocalDelivery::lookup_candidates("\"a b\"@x", "+"), (V{"a b@x", "a b"}));
    EXPECT_EQ(LocalDelivery::lookup_candidates("", "+"), V{});
    EXPECT_EQ(LocalDelivery::lookup_candidates("<>", "+"), V{});
}

TEST(LocalDelivery, ResolvesFullAddressThenLocalPartWithoutDetail)
{
    MemoryWorld world;
    world.passdb.add_record(user("alice@example.org"));
    world.passdb.add_record(user("bob"));
    world.passdb.add_record(user("carol+x")); // "+x" is a detail: Dovecot could not reach her either
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options());

    auto alice = delivery.check_recipient("alice@example.org");
    ASSERT_TRUE(alice);
    EXPECT_EQ(alice->user, "alice@example.org");
    EXPECT_EQ(alice->address, "alice@example.org");
    EXPECT_TRUE(alice->quota.unlimited());
    EXPECT_EQ(delivery.check_recipient("<alice+news@example.org>").value().user, "alice@example.org");
    EXPECT_EQ(delivery.check_recipient("<alice+news@example.org>").value().address, "alice+news@example.org");
    EXPECT_EQ(delivery.check_recipient("bob@example.org").value().user, "bob");
    EXPECT_EQ(delivery.check_recipient("bob+lists@elsewhere.net").value().user, "bob");
    EXPECT_EQ(delivery.check_recipient("bob").value().user, "bob");

    for (const std::string_view unknown :
         {"dave@example.org", "carol+x@example.org", "alice@other.org", ""}) {
        auto refused = delivery.check_recipient(unknown);
        ASSERT_FALSE(refused) << unknown;
        EXPECT_EQ(refused.error().verdict, Verdict::unknown_user);
        EXPECT_EQ(reply_code(refused.error(), false).code, 550U);
        EXPECT_EQ(reply_code(refused.error(), false).status, "5.1.1");
    }
    EXPECT_EQ(delivery.check_recipient("dave@example.org").error().detail,
              "User doesn't exist: dave@example.org");
}

TEST(LocalDelivery, NamedUserIsLookedUpAsGiven)
{
    MemoryWorld world;
    world.passdb.add_record(user("bob"));
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options());
    EXPECT_EQ(delivery.check_user("bob", "", 0).value().address, "bob");
    EXPECT_EQ(delivery.check_user("bob", "<bob@example.org>", 0).value().address, "bob@example.org");
    EXPECT_EQ(delivery.check_user("bob+x", "", 0).error().verdict, Verdict::unknown_user);
    EXPECT_EQ(delivery.check_user("Bob", "", 0).error().verdict, Verdict::unknown_user); // exact, as the db
}

TEST(LocalDelivery, UserDatabaseFailureIsTemporary)
{
    MemoryWorld world;
    world.passdb.add_record(user("bob"));
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options());
    world.passdb.fail_next(make_error_code(errc::auth_temporary_failure));
    auto refused = delivery.check_recipient("bob@example.org");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().verdict, Verdict::temporary);
    EXPECT_EQ(refused.error().detail, "Temporary internal error");
    EXPECT_EQ(reply_code(refused.error(), false).code, 451U);
    EXPECT_EQ(reply_code(refused.error(), false).status, "4.3.0");
    EXPECT_EQ(exit_status(refused.error(), false), 75);
    ASSERT_EQ(world.log.size(), 1U);
    EXPECT_NE(world.log[0].find("user database"), std::string::npos) << world.log[0];
}

TEST(LocalDelivery, BadQuotaRuleIsTemporaryAndLogged)
{
    MemoryWorld world;
    world.passdb.add_record(user("bob", {{"userdb_quota_rule", "*:storage=lots"}}));
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options());
    auto refused = delivery.check_recipient("bob");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().verdict, Verdict::temporary);
    ASSERT_EQ(world.log.size(), 1U);
    EXPECT_NE(world.log[0].find("invalid quota rule"), std::string::npos) << world.log[0];
    EXPECT_NE(world.log[0].find("userdb_quota_rule"), std::string::npos) << world.log[0];
}

TEST(LocalDelivery, QuotaAtRcpt)
{
    MemoryWorld world;
    world.passdb.add_record(user("bob", {{"userdb_quota_rule", "*:messages=2"}}));
    world.passdb.add_record(user("carol", {{"userdb_quota_rule", "*:bytes=1000"}}));
    DeliveryOptions options;
    options.quota.grace_percent = 0;
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options(options));

    EXPECT_TRUE(delivery.check_recipient("bob"));
    world.store.add_message("bob", {"u1", "one\n"});
    world.store.add_message("bob", {"u2", "two\n"});
    auto refused = delivery.check_recipient("bob");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().verdict, Verdict::over_quota);
    EXPECT_EQ(refused.error().detail, "Quota exceeded (mailbox for user is full)");
    EXPECT_EQ(reply_code(refused.error(), false).code, 552U);
    EXPECT_EQ(reply_code(refused.error(), false).status, "5.2.2");
    EXPECT_EQ(exit_status(refused.error(), false), 77);
    EXPECT_EQ(reply_code(refused.error(), true).code, 452U); // quota_full_tempfail
    EXPECT_EQ(reply_code(refused.error(), true).status, "4.2.2");
    EXPECT_EQ(exit_status(refused.error(), true), 75);

    // SIZE= at MAIL FROM is checked against the room left.
    EXPECT_TRUE(delivery.check_recipient("carol", 1000));
    EXPECT_EQ(delivery.check_recipient("carol", 1001).error().verdict, Verdict::over_quota);
    world.store.add_message("carol", {"u1", std::string(600, 'x')});
    EXPECT_TRUE(delivery.check_recipient("carol", 400));
    EXPECT_TRUE(delivery.check_recipient("carol")); // size unknown: under the limit is enough
    EXPECT_EQ(delivery.check_recipient("carol", 401).error().verdict, Verdict::over_quota);
}

TEST(LocalDelivery, ServerDefaultQuotaAndGrace)
{
    MemoryWorld world;
    world.passdb.add_record(user("bob"));
    DeliveryOptions options;
    options.quota.defaults.bytes = 1000; // grace 10% (Dovecot's default): up to 1100 with the last one
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options(options));
    EXPECT_EQ(delivery.check_recipient("bob").value().quota, (Quota{1000U, std::nullopt}));
    EXPECT_TRUE(delivery.check_recipient("bob", 1100));
    EXPECT_FALSE(delivery.check_recipient("bob", 1101));
}

TEST(LocalDelivery, QuotaAgainAtCommitWithTheRealSize)
{
    MemoryWorld world;
    world.passdb.add_record(user("bob", {{"userdb_quota_rule", "*:bytes=100"}}));
    DeliveryOptions options;
    options.quota.grace_percent = 0;
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options(options));
    auto recipient = delivery.check_recipient("bob");
    ASSERT_TRUE(recipient);
    auto pending = delivery.begin(*recipient, "sender@example.org");
    ASSERT_TRUE(pending);
    ASSERT_TRUE((*pending)->write(std::string(200, 'x') + "\n"));
    auto refused = (*pending)->commit();
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().verdict, Verdict::over_quota);
    EXPECT_TRUE(world.store.messages("bob").empty());
    // The trace headers count: 100 octets of body do not fit either.
    auto second = delivery.begin(*recipient, "");
    ASSERT_TRUE(second);
    ASSERT_TRUE((*second)->write(std::string(99, 'x') + "\n"));
    EXPECT_FALSE((*second)->commit());
    // A small one does.
    auto third = delivery.begin(*recipient, "");
    ASSERT_TRUE(third);
    ASSERT_TRUE((*third)->write("x\n"));
    EXPECT_TRUE((*third)->commit());
    EXPECT_EQ(world.store.messages("bob").size(), 1U);
}

TEST(LocalDelivery, TraceHeadersExact)
{
    MemoryWorld world;
    world.passdb.add_record(user("bob"));
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options());
    const auto stored = [&] { return world.store.messages("bob").back().content; };

    ASSERT_TRUE(deliver(delivery, "bob+x@example.org", "alice@example.net", "Subject: hi\n\nbody\n"));
    EXPECT_EQ(stored(),
              "Return-Path: <alice@example.net>\nDelivered-To: bob+x@example.org\nSubject: hi\n\nbody\n");
    // CRLF messages get CRLF trace headers; the null sender is <>; brackets are not doubled.
    ASSERT_TRUE(deliver(delivery, "<bob@example.org>", "", "Subject: hi\r\n\r\nbody\r\n"));
    EXPECT_EQ(stored(), "Return-Path: <>\r\nDelivered-To: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n");
    ASSERT_TRUE(deliver(delivery, "bob@example.org", "<a@b>", "x"));
    EXPECT_EQ(stored(), "Return-Path: <a@b>\nDelivered-To: bob@example.org\nx");
    ASSERT_TRUE(deliver(delivery, "bob@example.org", "a@b", ""));
    EXPECT_EQ(stored(), "Return-Path: <a@b>\nDelivered-To: bob@example.org\n");
    // No header injection through the envelope.
    ASSERT_TRUE(deliver(delivery, "bob@example.org", "a@b>\r\nX-Evil: 1", "Subject: s\n\nb\n"));
    EXPECT_EQ(stored(), "Return-Path: <a@b>__X-Evil: 1>\nDelivered-To: bob@example.org\nSubject: s\n\nb\n");
    // 8-bit data and NUL octets are stored as given.
    const std::string binary("Subject: \xe9t\xe9\n\n\x00\xff\x80 end\n", 18);
    ASSERT_TRUE(deliver(delivery, "bob@example.org", "a@b", binary));
    EXPECT_EQ(stored(), "Return-Path: <a@b>\nDelivered-To: bob@example.org\n" + binary);
}

TEST(LocalDelivery, TraceHeadersTheMessageAlreadyHasAreNotRepeated)
{
    MemoryWorld world;
    world.passdb.add_record(user("bob"));
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options());
    const auto stored = [&] { return world.store.messages("bob").back().content; };
    // As Postfix's local(8) pipes it to a mailbox_command.
    const std::string postfix =
        "Return-Path: <alice@example.net>\nX-Original-To: bob@example.org\nDelivered-To: bob@example.org\n"
        "Subject: hi\n\nbody\n";
    ASSERT_TRUE(
        deliver(delivery, "bob@example.org", "alice@example.net", postfix, TraceHeaders::add_missing));
    EXPECT_EQ(stored(), postfix);
    auto recipient = delivery.check_user("bob", "", 0);
    ASSERT_TRUE(recipient);
    auto pending = delivery.begin(*recipient, "alice@example.net", TraceHeaders::add_missing);
    ASSERT_TRUE(pending && (*pending)->write(postfix) && (*pending)->commit());
    EXPECT_EQ(stored(), postfix); // "bob" is the local part of the Delivered-To address
    // ... with a "+detail" too: local(8) writes the address the mail was sent to.
    const std::string tagged =
        "Return-Path: <alice@example.net>\nDelivered-To: bob+lists@example.org\nSubject: tag\n\nbody\n";
    auto tagged_pending = delivery.begin(*recipient, "alice@example.net", TraceHeaders::add_missing);
    ASSERT_TRUE(tagged_pending && (*tagged_pending)->write(tagged) && (*tagged_pending)->commit());
    EXPECT_EQ(stored(), tagged);
    // Another recipient's Delivered-To (a forwarded message) and a Return-Path in the body do not count.
    const std::string forwarded = "Delivered-To: carol@example.com\nSubject: fwd\n\nReturn-Path: <x@y>\n";
    ASSERT_TRUE(
        deliver(delivery, "bob@example.org", "carol@example.com", forwarded, TraceHeaders::add_missing));
    EXPECT_EQ(stored(), "Return-Path: <carol@example.com>\nDelivered-To: bob@example.org\n" + forwarded);
    // With add, Dovecot's LMTP way, they are added whatever the message holds.
    ASSERT_TRUE(deliver(delivery, "bob@example.org", "alice@example.net", postfix));
    EXPECT_EQ(stored(), "Return-Path: <alice@example.net>\nDelivered-To: bob@example.org\n" + postfix);
}

TEST(LocalDelivery, SameResultAtEveryChunking)
{
    const std::string message = "Return-Path: <x@y>\r\nSubject: chunks\r\n\r\nline 1\r\nline 2\r\n";
    std::string whole;
    for (const TraceHeaders trace : {TraceHeaders::add, TraceHeaders::add_missing}) {
        for (std::size_t chunk = 1; chunk <= message.size(); ++chunk) {
            MemoryWorld world;
            world.passdb.add_record(user("bob"));
            LocalDelivery delivery(world.passdb, world.store, world.usage, world.options());
            auto recipient = delivery.check_recipient("bob@example.org");
            ASSERT_TRUE(recipient);
            auto pending = delivery.begin(*recipient, "a@b", trace);
            ASSERT_TRUE(pending);
            for (std::size_t at = 0; at < message.size(); at += chunk) {
                ASSERT_TRUE((*pending)->write(std::string_view(message).substr(at, chunk)));
            }
            ASSERT_TRUE((*pending)->commit());
            const std::string stored = world.store.messages("bob").back().content;
            if (chunk == 1) {
                whole = stored;
            }
            EXPECT_EQ(stored, whole) << "chunk " << chunk;
            EXPECT_EQ(stored, (trace == TraceHeaders::add ? "Return-Path: <a@b>\r\n" : "") +
                                  std::string("Delivered-To: bob@example.org\r\n") + message);
        }
    }
}

TEST(LocalDelivery, TooBig)
{
    MemoryWorld world;
    world.passdb.add_record(user("bob"));
    DeliveryOptions options;
    options.max_message_octets = 10;
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options(options));
    auto early = delivery.check_recipient("bob", 11);
    ASSERT_FALSE(early);
    EXPECT_EQ(early.error().verdict, Verdict::too_big);
    EXPECT_EQ(reply_code(early.error(), false).code, 552U);
    EXPECT_EQ(reply_code(early.error(), false).status, "5.3.4");
    EXPECT_EQ(exit_status(early.error(), false), 77);

    auto recipient = delivery.check_recipient("bob", 10); // the limit itself is allowed
    ASSERT_TRUE(recipient);
    auto pending = delivery.begin(*recipient, "");
    ASSERT_TRUE(pending);
    EXPECT_TRUE((*pending)->write("0123456"));
    auto refused = (*pending)->write("7890"); // 11 octets received: the trace headers do not count
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().verdict, Verdict::too_big);
    EXPECT_EQ((*pending)->write("x").error().verdict, Verdict::too_big);
    EXPECT_EQ((*pending)->commit().error().verdict, Verdict::too_big);
    EXPECT_TRUE(world.store.messages("bob").empty());
}

class LocalDeliveryMaildir : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_dir = fs::temp_directory_path() / ("pigeon-local-delivery-" + std::to_string(::getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
    }
    void TearDown() override { fs::remove_all(m_dir); }

    [[nodiscard]] std::string location() const { return (m_dir / "%u").string(); }
    [[nodiscard]] const fs::path& dir() const noexcept { return m_dir; }

private:
    fs::path m_dir;
};

std::string read_message(storage::Maildrop& maildrop, std::uint32_t index)
{
    auto reader = maildrop.open_message(MessageIndex{index});
    EXPECT_TRUE(reader);
    std::string out;
    std::array<char, 256> buffer{};
    while (reader) {
        auto got = (*reader)->read(buffer);
        if (!got || *got == 0) {
            break;
        }
        out.append(buffer.data(), *got);
    }
    return out;
}

TEST_F(LocalDeliveryMaildir, DeliveryIsVisibleToPop3)
{
    auth::MemoryPassDb passdb;
    passdb.add_record(user("alice@example.org"));
    storage::MaildirStore store(storage::MaildirOptions{location(), false, "host"});
    MaildirUsage usage(location());
    LocalDelivery delivery(passdb, store, usage, {});
    auto unique_id = deliver(delivery, "alice@example.org", "bob@example.net", "Subject: hi\n\nbody\n");
    ASSERT_TRUE(unique_id) << unique_id.error().detail;

    auto maildrop = store.open("alice@example.org");
    ASSERT_TRUE(maildrop);
    ASSERT_EQ((*maildrop)->message_count(), 1U);
    const std::string expected =
        "Return-Path: <bob@example.net>\nDelivered-To: alice@example.org\nSubject: hi\n\nbody\n";
    EXPECT_EQ((*maildrop)->unique_id(MessageIndex{0}), *unique_id);
    EXPECT_EQ(read_message(**maildrop, 0), expected);
    EXPECT_EQ((*maildrop)->message_octets(MessageIndex{0}), expected.size() + 5); // CRLF on the wire
}

TEST_F(LocalDeliveryMaildir, FullMaildropTakesMailAgainAfterPop3Deletes)
{
    auth::MemoryPassDb passdb;
    passdb.add_record(user("alice", {{"userdb_quota_rule", "*:messages=3"}}));
    storage::MaildirStore store(storage::MaildirOptions{location(), false, "host"});
    MaildirUsage usage(location());
    LocalDelivery delivery(passdb, store, usage, {});
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(deliver(delivery, "alice", "", "Subject: x\n\nbody\n"));
    }
    EXPECT_EQ(deliver(delivery, "alice", "", "Subject: x\n\nbody\n").error().verdict, Verdict::over_quota);
    EXPECT_EQ(delivery.check_recipient("alice").error().verdict, Verdict::over_quota);
    {
        // The owner logs in (the snapshot of a full maildrop opens as any other) and deletes one.
        auto maildrop = store.open("alice");
        ASSERT_TRUE(maildrop);
        EXPECT_EQ((*maildrop)->message_count(), 3U);
        const std::array<MessageIndex, 1> deletions{MessageIndex{0}};
        ASSERT_TRUE((*maildrop)->commit(deletions));
    }
    EXPECT_TRUE(delivery.check_recipient("alice"));
    EXPECT_TRUE(deliver(delivery, "alice", "", "Subject: x\n\nbody\n"));
    EXPECT_EQ(deliver(delivery, "alice", "", "Subject: x\n\nbody\n").error().verdict, Verdict::over_quota);
}

TEST_F(LocalDeliveryMaildir, ConcurrentDeliveriesToOneUserRespectTheQuota)
{
    auth::MemoryPassDb passdb;
    passdb.add_record(user("alice", {{"userdb_quota_rule", "*:messages=5"}}));
    passdb.add_record(user("bob"));
    storage::MaildirStore store(storage::MaildirOptions{location(), false, "host"});
    MaildirUsage usage(location());
    LocalDelivery delivery(passdb, store, usage, {});
    std::atomic<int> accepted{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    threads.reserve(6);
    for (int t = 0; t < 6; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 3; ++i) {
                // Every message passes RCPT first (the maildrop is empty), then races to commit.
                auto result = deliver(delivery, "alice", "", "Subject: x\n\nbody\n");
                (result ? accepted : refused)++;
                EXPECT_TRUE(deliver(delivery, "bob", "", "Subject: y\n\nbody\n"));
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(accepted.load(), 5);
    EXPECT_EQ(refused.load(), 13);
    EXPECT_EQ(MaildirUsage::count((dir() / "alice").string()).value().messages, 5U);
    EXPECT_EQ(MaildirUsage::count((dir() / "bob").string()).value().messages, 18U);
}

TEST_F(LocalDeliveryMaildir, UnwritableMaildropIsTemporary)
{
    auth::MemoryPassDb passdb;
    passdb.add_record(user("alice"));
    storage::MaildirStore store(storage::MaildirOptions{location(), false, "host"});
    MaildirUsage usage(location());
    std::vector<std::string> log;
    DeliveryOptions options;
    options.log = [&log](std::string_view line) { log.emplace_back(line); };
    LocalDelivery delivery(passdb, store, usage, options);
    fs::create_directories(dir() / "alice/new");
    fs::create_directories(dir() / "alice/cur");
    {
        std::ofstream(dir() / "alice/tmp") << "a file where tmp/ should be";
    }
    auto refused = deliver(delivery, "alice", "", "Subject: x\n\nbody\n");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().verdict, Verdict::temporary);
    ASSERT_FALSE(log.empty());
    EXPECT_NE(log.back().find((dir() / "alice").string()), std::string::npos) << log.back();
}

// A full maildrop still lets its owner log in over POP3 and delete, and then takes mail again:
// the POP3 session (SessionDriver, the real ServerSession) and delivery share the store.
TEST(LocalDeliveryPop3, FullMaildropOwnerLogsInAndDeletes)
{
    MemoryWorld world;
    world.passdb.add_user("alice", "secret");
    {
        auto record = world.passdb.lookup("alice").value().value();
        record.extra_fields = {{"userdb_quota_rule", "*:messages=2"}};
        world.passdb.add_record(std::move(record));
    }
    LocalDelivery delivery(world.passdb, world.store, world.usage, world.options());
    ASSERT_TRUE(deliver(delivery, "alice", "", "Subject: 1\n\none\n"));
    ASSERT_TRUE(deliver(delivery, "alice", "", "Subject: 2\n\ntwo\n"));
    ASSERT_EQ(deliver(delivery, "alice", "", "Subject: 3\n\nthree\n").error().verdict, Verdict::over_quota);

    protocol::ServerPolicy policy;
    policy.plaintext_auth_without_tls = true;
    test::SessionDriver driver(policy, world.store, world.passdb);
    std::string out = driver.run();
    out += driver.feed("USER alice\r\nPASS secret\r\nSTAT\r\nDELE 1\r\nQUIT\r\n");
    EXPECT_NE(out.find("+OK Logged in"), std::string::npos) << out;
    EXPECT_NE(out.find("+OK 2 "), std::string::npos) << out;
    EXPECT_EQ(out.find("-ERR"), std::string::npos) << out;
    EXPECT_TRUE(driver.closed());
    ASSERT_EQ(world.store.messages("alice").size(), 1U);

    EXPECT_TRUE(deliver(delivery, "alice", "", "Subject: 3\n\nthree\n"));
    EXPECT_EQ(world.store.messages("alice").size(), 2U);
}

} // namespace
} // namespace pigeon::delivery
