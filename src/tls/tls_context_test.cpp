#include "tls/tls_context.hpp"

#include <gtest/gtest.h>

namespace pigeon::tls {
namespace {

TEST(TlsContext, HostMatchingFollowsRfc6125)
{
    EXPECT_TRUE(host_matches("mail.example.org", "mail.example.org"));
    EXPECT_TRUE(host_matches("*.example.org", "mail.example.org"));
    EXPECT_FALSE(host_matches("*.example.org", "example.org"));     // the wildcard needs a label
    EXPECT_FALSE(host_matches("*.example.org", "a.b.example.org")); // and only one
    EXPECT_FALSE(host_matches("mail.example.org", "mail.example.com"));
    EXPECT_FALSE(host_matches("*", "anything"));
}

TEST(TlsContext, LoadErrorsNameTheFile)
{
    TlsOptions options;
    EXPECT_FALSE(ServerTlsContext::load(options)); // no certificate
    options.certificates.push_back({"/nonexistent/cert.pem", "/nonexistent/key.pem"});
    auto context = ServerTlsContext::load(options);
    ASSERT_FALSE(context);
    EXPECT_NE(context.error().find("/nonexistent/cert.pem"), std::string::npos) << context.error();
    options.min_version = "SSLv3";
    EXPECT_NE(ServerTlsContext::load(options).error().find("unknown TLS version"), std::string::npos);
}

} // namespace
} // namespace pigeon::tls
