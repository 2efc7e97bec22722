// What pigeond's Landlock ruleset opens to (server/sandbox.hpp); the confinement itself is
// checked on the running process by tests/interop/pigeond_process_test.py.
#include "server/sandbox.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace pigeon::server {
namespace {

bool has(const std::vector<std::string>& paths, const std::string& path)
{
    return std::find(paths.begin(), paths.end(), path) != paths.end();
}

config::Config base_config()
{
    config::Config config;
    config.file = "/etc/pigeon/pigeond.toml";
    config.storage.location = "/var/vmail/%d/%n";
    config.passdb.driver = "passwd-file";
    config.passdb.path = "/etc/pigeon/users";
    return config;
}

TEST(SandboxPaths, MaildropsBeneathTheTemplatesFixedDirectory)
{
    auto config = base_config();
    config.storage.driver = "mbox";
    config.storage.location = "/var/mail/%u";
    config.storage.index_directory = "/var/lib/pigeon/mbox/%u";
    auto paths = sandbox_paths(config);
    ASSERT_TRUE(paths) << paths.error();
    EXPECT_TRUE(has(paths->write, "/var/mail"));
    EXPECT_TRUE(has(paths->write, "/var/lib/pigeon/mbox"));
    EXPECT_FALSE(has(paths->write, "/var"));
    EXPECT_FALSE(has(paths->write, "/"));
    EXPECT_TRUE(has(paths->read, "/etc/pigeon")); // the passwd-file's and the configuration's
    EXPECT_FALSE(has(paths->write, "/etc/pigeon"));
}

TEST(SandboxPaths, SqliteLogAndLmtpSocketDirectoriesAreWritable)
{
    auto config = base_config();
    config.passdb.driver = "sqlite";
    config.passdb.path = "/var/lib/pigeon/users.db";
    config.log.destination = "/var/log/pigeon/pigeond.log";
    config.lmtp.listen = {"unix:/run/pigeon/lmtp", "127.0.0.1:24"};
    auto paths = sandbox_paths(config);
    ASSERT_TRUE(paths) << paths.error();
    EXPECT_TRUE(has(paths->write, "/var/vmail"));
    EXPECT_TRUE(has(paths->write, "/var/lib/pigeon"));
    EXPECT_TRUE(has(paths->write, "/var/log/pigeon"));
    EXPECT_TRUE(has(paths->write, "/run/pigeon"));
}

TEST(SandboxPaths, ACertificateLinkOpensItsTargetsDirectoryToo)
{
    const auto root =
        std::filesystem::temp_directory_path() / ("pigeon-sandbox-" + std::to_string(::getpid()));
    std::filesystem::remove_all(root);
    std::filesystem::create_directories(root / "live");
    std::filesystem::create_directories(root / "archive");
    std::ofstream(root / "archive" / "cert1.pem") << "x";
    std::filesystem::create_symlink(root / "archive" / "cert1.pem", root / "live" / "cert.pem");
    auto config = base_config();
    config.tls.certificates.push_back(
        {(root / "live" / "cert.pem").string(), (root / "live" / "cert.pem").string()});
    auto paths = sandbox_paths(config);
    std::filesystem::remove_all(root);
    ASSERT_TRUE(paths) << paths.error();
    EXPECT_TRUE(has(paths->read, (root / "live").string()));
    EXPECT_TRUE(has(paths->read, (root / "archive").string()));
}

TEST(SandboxPaths, ATemplateWithoutAFixedDirectoryNeedsWritePaths)
{
    auto config = base_config();
    config.storage.location = "%h/Maildir";
    auto refused = sandbox_paths(config);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("sandbox.write_paths"), std::string::npos) << refused.error();

    config.sandbox.write_paths = {"/home"};
    auto paths = sandbox_paths(config);
    ASSERT_TRUE(paths) << paths.error();
    EXPECT_TRUE(has(paths->write, "/home"));
}

} // namespace
} // namespace pigeon::server
