// verify_credentials() and its helpers, over the memory backend. What every backend must do
// alike is in passdb_conformance_test.cpp.
#include "auth/memory/memory_passdb.hpp"
#include "auth/passdb.hpp"
#include "auth/password_scheme.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

namespace pigeon::auth {
namespace {

Result<std::string> login(PassDb& db, std::string user, std::string password)
{
    return verify_credentials(
        db, sasl::PasswordCredentials{{}, std::move(user), SecretString(std::move(password))});
}

// RFC 1939 §7's example.
TEST(Apop, Rfc1939Vector)
{
    EXPECT_EQ(apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf"),
              "c4c9334bac560ecc979e58001b3e22fb");
}

TEST(ConstantTimeEquals, ComparesContentAndLength)
{
    EXPECT_TRUE(constant_time_equals("secret", "secret"));
    EXPECT_FALSE(constant_time_equals("secret", "secreT"));
    EXPECT_FALSE(constant_time_equals("secret", "secret2"));
    EXPECT_TRUE(constant_time_equals("", ""));
}

TEST(UserRecord, ExtraFieldAndCopy)
{
    UserRecord record;
    record.name = "alice";
    record.password = SecretString("{PLAIN}x");
    record.uid = 1000;
    record.extra_fields = {{"nologin", ""}, {"reason", "moved"}};
    EXPECT_EQ(record.extra_field("reason"), "moved");
    EXPECT_EQ(record.extra_field("nologin"), "");
    EXPECT_FALSE(record.extra_field("Reason")); // keys are exact, as in Dovecot
    const UserRecord copy = record.copy();
    EXPECT_EQ(copy.name, "alice");
    EXPECT_EQ(copy.password.view(), "{PLAIN}x");
    EXPECT_EQ(copy.uid, 1000U);
    EXPECT_EQ(copy.extra_fields, record.extra_fields);
}

TEST(MemoryPassDb, AddUserStoresPlain)
{
    MemoryPassDb db;
    db.add_user("mrose", "tanstaaf");
    const auto record = db.lookup("mrose");
    ASSERT_TRUE(record && *record);
    EXPECT_EQ((*record)->password.view(), "{PLAIN}tanstaaf");
}

TEST(MemoryPassDb, VerifiesPasswordsAndApop)
{
    MemoryPassDb db;
    db.add_user("mrose", "tanstaaf");
    const auto ok = login(db, "mrose", "tanstaaf");
    ASSERT_TRUE(ok);
    EXPECT_EQ(*ok, "mrose");
    EXPECT_EQ(login(db, "mrose", "wrong").error(), make_error_code(errc::auth_failed));
    EXPECT_EQ(login(db, "nobody", "tanstaaf").error(), make_error_code(errc::auth_failed));
    EXPECT_TRUE(verify_credentials(db, sasl::ApopCredentials{"mrose", "<1896.697170952@dbc.mtview.ca.us>",
                                                             "c4c9334bac560ecc979e58001b3e22fb"}));
    EXPECT_FALSE(verify_credentials(
        db, sasl::ApopCredentials{"mrose", "<other@host>", "c4c9334bac560ecc979e58001b3e22fb"}));
}

TEST(MemoryPassDb, InjectedFailure)
{
    MemoryPassDb db;
    db.add_user("a", "b");
    db.fail_next(make_error_code(errc::auth_temporary_failure));
    EXPECT_EQ(login(db, "a", "b").error(), make_error_code(errc::auth_temporary_failure));
    EXPECT_TRUE(login(db, "a", "b"));
}

TEST(VerifyCredentials, UnreadableStoredValueIsTheOperatorsProblem)
{
    MemoryPassDb db;
    UserRecord record;
    record.name = "alice";
    record.password = SecretString("{NO-SUCH-SCHEME}x");
    db.add_record(std::move(record));
    EXPECT_EQ(login(db, "alice", "x").error(), make_error_code(errc::auth_temporary_failure));
}

TEST(VerifyCredentials, BearerTokensAndForeignAuthzidAreRefused)
{
    MemoryPassDb db;
    db.add_user("alice", "secret");
    db.add_user("bob", "other");
    EXPECT_EQ(verify_credentials(db, sasl::BearerCredentials{"alice", SecretString("token")}).error(),
              make_error_code(errc::auth_failed));
    // PLAIN with authzid = authcid is the same user; another authzid asks for master-user rights.
    EXPECT_TRUE(verify_credentials(db, sasl::PasswordCredentials{"alice", "alice", SecretString("secret")}));
    EXPECT_FALSE(verify_credentials(db, sasl::PasswordCredentials{"bob", "alice", SecretString("secret")}));
}

// An unknown user costs a hash of the scheme the server names (its users' scheme), like a wrong
// password. Without the dummy hash the two differ by a factor of thousands; a factor of ten
// leaves room for a loaded machine.
TEST(VerifyCredentials, UnknownUserCostsAboutAWrongPassword)
{
    MemoryPassDb db;
    UserRecord record;
    record.name = "carol";
    record.password = SecretString(hash_password(PasswordScheme::argon2id, "c4r0l").value());
    db.add_record(std::move(record));
    const auto attempt = [&db](const std::string& user) {
        return verify_credentials(db, sasl::PasswordCredentials{{}, user, SecretString("wrong")}, "ARGON2ID");
    };
    static_cast<void>(attempt("nobody")); // the dummy hash is made on first use
    const auto fastest = [&](const std::string& user) {
        auto best = std::chrono::steady_clock::duration::max();
        for (int round = 0; round < 2; ++round) {
            const auto start = std::chrono::steady_clock::now();
            EXPECT_FALSE(attempt(user));
            best = std::min(best, std::chrono::steady_clock::now() - start);
        }
        return best;
    };
    const auto wrong_password = fastest("carol");
    const auto unknown_user = fastest("nobody");
    EXPECT_GT(unknown_user * 10, wrong_password);
}

} // namespace
} // namespace pigeon::auth

namespace pigeon::auth {
namespace {

TEST(LookupSecret, ObeysTheSameRulesAsVerification)
{
    MemoryPassDb db;
    db.add_user("alice", "secret");
    UserRecord barred;
    barred.name = "barred";
    barred.password = SecretString("{PLAIN}secret");
    barred.extra_fields.emplace_back("nologin", "");
    db.add_record(std::move(barred));
    const auto alice = lookup_secret(db, "alice");
    ASSERT_TRUE(alice && *alice);
    EXPECT_EQ((*alice)->stored.view(), "{PLAIN}secret");
    EXPECT_FALSE(*lookup_secret(db, "barred"));
    EXPECT_FALSE(*lookup_secret(db, "nobody"));
    db.fail_next(make_error_code(errc::auth_temporary_failure));
    EXPECT_EQ(lookup_secret(db, "alice").error(), make_error_code(errc::auth_temporary_failure));
}

} // namespace
} // namespace pigeon::auth
