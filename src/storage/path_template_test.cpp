#include "storage/path_template.hpp"

#include <gtest/gtest.h>

namespace pigeon::storage {
namespace {

TEST(PathTemplate, ExpandsLikeDovecot)
{
    EXPECT_EQ(expand_path_template("/var/mail/%d/%n", "alice@example.org"), "/var/mail/example.org/alice");
    EXPECT_EQ(expand_path_template("/var/mail/%u", "alice@example.org"), "/var/mail/alice@example.org");
    EXPECT_EQ(expand_path_template("/var/mail/%u", "bob"), "/var/mail/bob");
    EXPECT_EQ(expand_path_template("/srv/%%/%n/%x", "bob"), "/srv/%/bob/%x");
}

TEST(PathTemplate, RefusesUserNamesThatEscapeTheTemplate)
{
    for (const char* user : {"", ".", "..", "../etc", "a/b", ".hidden", "alice@..", "alice@", "@example.org",
                             "al\nice", "alice@ex/ample"}) {
        const auto path = expand_path_template("/var/mail/%d/%n", user);
        ASSERT_FALSE(path) << user;
        EXPECT_EQ(path.error(), make_error_code(errc::invalid_user_name));
    }
    EXPECT_FALSE(expand_path_template("/var/mail/%u", std::string(256, 'a')));
    EXPECT_TRUE(expand_path_template("/var/mail/%u", "J\xc3\xbcrgen"));
}

} // namespace
} // namespace pigeon::storage
