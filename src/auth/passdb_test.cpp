#include "auth/memory/memory_passdb.hpp"
#include "auth/passdb.hpp"

#include <gtest/gtest.h>

namespace pigeon::auth {
namespace {

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

TEST(MemoryPassDb, VerifiesPasswordsAndApop)
{
    MemoryPassDb db;
    db.add_user("mrose", "tanstaaf");
    const auto ok = db.verify(sasl::PasswordCredentials{{}, "mrose", SecretString("tanstaaf")});
    ASSERT_TRUE(ok);
    EXPECT_EQ(*ok, "mrose");
    EXPECT_EQ(db.verify(sasl::PasswordCredentials{{}, "mrose", SecretString("wrong")}).error(),
              make_error_code(errc::auth_failed));
    EXPECT_EQ(db.verify(sasl::PasswordCredentials{{}, "nobody", SecretString("tanstaaf")}).error(),
              make_error_code(errc::auth_failed));
    EXPECT_TRUE(db.verify(sasl::ApopCredentials{"mrose", "<1896.697170952@dbc.mtview.ca.us>",
                                                "c4c9334bac560ecc979e58001b3e22fb"}));
    EXPECT_FALSE(
        db.verify(sasl::ApopCredentials{"mrose", "<other@host>", "c4c9334bac560ecc979e58001b3e22fb"}));
}

TEST(MemoryPassDb, InjectedFailure)
{
    MemoryPassDb db;
    db.add_user("a", "b");
    db.fail_next(make_error_code(errc::auth_temporary_failure));
    EXPECT_EQ(db.verify(sasl::PasswordCredentials{{}, "a", SecretString("b")}).error(),
              make_error_code(errc::auth_temporary_failure));
    EXPECT_TRUE(db.verify(sasl::PasswordCredentials{{}, "a", SecretString("b")}));
}

} // namespace
} // namespace pigeon::auth
