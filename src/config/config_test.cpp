#include "config/config.hpp"

#include <gtest/gtest.h>

namespace pigeon::config {
namespace {

constexpr std::string_view minimal = R"(
[[listen]]
address = "127.0.0.1:110"
tls = "none"
)";

TEST(Config, DefaultsFromAMinimalFile)
{
    auto config = parse(minimal, "/etc/pigeon/pigeond.toml");
    ASSERT_TRUE(config) << config.error();
    ASSERT_EQ(config->listeners.size(), 1U);
    EXPECT_EQ(config->listeners[0].address, "127.0.0.1");
    EXPECT_EQ(config->listeners[0].port, 110);
    EXPECT_EQ(config->listeners[0].tls, ListenerTls::none);
    EXPECT_EQ(config->storage.driver, "maildir");
    EXPECT_EQ(config->passdb.driver, "sqlite");
    EXPECT_EQ(config->auth.plaintext, "loopback");
    EXPECT_EQ(config->limits.idle_timeout, std::chrono::seconds(600));
    EXPECT_EQ(config->limits.login_timeout, std::chrono::seconds(60));
    EXPECT_EQ(config->limits.refusal_delay, std::chrono::milliseconds(1000));
}

TEST(Config, EveryKeyIsRead)
{
    constexpr std::string_view text = R"(
[server]
user = "vmail"
group = "mail"
threads = 2
worker_threads = 4
host_name = "mail.example.org"

[[listen]]
address = "[::1]:995"
tls = "implicit"

[[listen]]
address = "*:110"

[tls]
certificate = "cert.pem"
key = "/etc/ssl/key.pem"
certificates = [ { certificate = "other.pem", key = "other.key" } ]
min_version = "TLSv1.3"
ciphers = "HIGH"
client_ca = "ca.pem"

[storage]
driver = "mbox"
location = "/var/mail/%u"
index_directory = "/var/lib/pigeon/index/%u"
dotlock = false
takeover = false

[passdb]
driver = "passwd-file"
path = "users"
default_scheme = "SHA512-CRYPT"
lowercase_usernames = true

[auth]
mechanisms = ["plain", "SCRAM-SHA-256"]
plaintext = "never"
apop = true
unknown_user_scheme = "ARGON2ID"
failure_delay = "100ms"
max_failure_delay = "30s"
forget_failures_after = "1h"
max_concurrent = 16
max_failures_per_connection = 5

[pop3]
greeting = "Hello there."
implementation = "Pigeon test"
login_delay = 300
expire = 30
enable_last = true
utf8 = false

[limits]
max_connections = 500
max_connections_per_ip = 5
max_bad_commands = 3
login_timeout = "30s"
idle_timeout = "15m"
output_buffer = 8192
shutdown_grace = 5
refusal_delay = "250ms"

[log]
level = "debug"
destination = "syslog"
)";
    auto config = parse(text, "/etc/pigeon/pigeond.toml");
    ASSERT_TRUE(config) << config.error();
    EXPECT_EQ(config->server.user, "vmail");
    EXPECT_EQ(config->server.threads, 2U);
    ASSERT_EQ(config->listeners.size(), 2U);
    EXPECT_EQ(config->listeners[0].address, "::1");
    EXPECT_EQ(config->listeners[0].port, 995);
    EXPECT_EQ(config->listeners[1].address, "0.0.0.0");
    EXPECT_EQ(config->listeners[1].tls, ListenerTls::starttls);
    ASSERT_EQ(config->tls.certificates.size(), 2U);
    EXPECT_EQ(config->tls.certificates[0].certificate, "/etc/pigeon/cert.pem"); // relative to the file
    EXPECT_EQ(config->tls.certificates[0].key, "/etc/ssl/key.pem");
    EXPECT_EQ(config->tls.certificates[1].certificate, "/etc/pigeon/other.pem");
    EXPECT_EQ(config->tls.client_ca, "/etc/pigeon/ca.pem");
    EXPECT_EQ(config->storage.driver, "mbox");
    EXPECT_FALSE(config->storage.dotlock);
    EXPECT_EQ(config->passdb.path, "/etc/pigeon/users");
    EXPECT_TRUE(config->passdb.lowercase_usernames);
    EXPECT_EQ(config->auth.mechanisms, (std::vector<std::string>{"PLAIN", "SCRAM-SHA-256"}));
    EXPECT_EQ(config->auth.failure_delay, std::chrono::milliseconds(100));
    EXPECT_EQ(config->auth.max_failure_delay, std::chrono::milliseconds(30'000));
    EXPECT_EQ(config->auth.forget_failures_after, std::chrono::seconds(3600));
    EXPECT_EQ(config->pop3.login_delay, 300U);
    EXPECT_EQ(config->pop3.expire, "30");
    EXPECT_TRUE(config->pop3.enable_last);
    EXPECT_EQ(config->limits.idle_timeout, std::chrono::seconds(900));
    EXPECT_EQ(config->limits.shutdown_grace, std::chrono::seconds(5));
    EXPECT_EQ(config->limits.refusal_delay, std::chrono::milliseconds(250));
    EXPECT_EQ(config->log.destination, "syslog");
}

struct BadCase {
    std::string_view text;
    std::string_view error;
};

TEST(Config, ErrorsNameTheFileTheLineAndTheKey)
{
    const BadCase cases[] = {
        {"[[listen]]\naddress = \"127.0.0.1:110\"\ntls = \"none\"\n[limits]\nmax_conections = 5\n",
         "/p.toml:5: limits.max_conections: unknown key"},
        {"[[listen]]\naddress = \"127.0.0.1:110\"\ntls = \"none\"\n[limits]\nidle_timeout = \"5m\"\n",
         "/p.toml:5: limits.idle_timeout: must be a duration from 10m to 24h"},
        {"[[listen]]\naddress = \"127.0.0.1\"\n", "/p.toml:2: listen.address: must be \"host:port\""},
        {"[[listen]]\naddress = \"127.0.0.1:110\"\n", "/p.toml: tls.certificate: a listener uses TLS"},
        {"[[listen]]\naddress = \"127.0.0.1:110\"\ntls = \"yes\"\n", "/p.toml:3: listen.tls: must be one of"},
        {"[[listen]]\naddress = \"127.0.0.1:110\"\ntls = \"none\"\n[storage]\nlocation = \"/var/mail\"\n",
         "/p.toml:5: storage.location: must contain %u, %n or %d"},
        {"[[listen]]\naddress = \"127.0.0.1:110\"\ntls = \"none\"\n[limits]\nmax_connections = 0\n",
         "/p.toml:5: limits.max_connections: must be a whole number from 1"},
        {"[[listen]]\naddress = \"127.0.0.1:110\"\ntls = \"none\"\n[auth]\nplaintext = true\n",
         "/p.toml:5: auth.plaintext: must be one of"},
        {"[[listen]]\naddress = \"127.0.0.1:110\"\ntls = \"none\"\n[auth.oauth]\nissuer = \"https://id\"\n"
         "audience = \"pop\"\n",
         "/p.toml:4: auth.oauth.key_file: is required"},
        {"[[listen]]\naddress = \"127.0.0.1:110\"\ntls = \"none\"\n[auth.oauth]\nissuer = \"https://id\"\n"
         "audience = \"pop\"\nkey_file = \"k.pem\"\nalgorithms = [\"HS256\"]\n",
         "/p.toml:8: auth.oauth.algorithms: \"HS256\" is not supported"},
        {"[[listen]\n", "/p.toml:1:"},
        {"", "/p.toml: listen: at least one [[listen]] is needed"},
    };
    for (const auto& c : cases) {
        auto config = parse(c.text, "/p.toml");
        ASSERT_FALSE(config) << c.text;
        EXPECT_TRUE(config.error().starts_with(c.error))
            << "got: " << config.error() << "\nwanted: " << c.error;
    }
}

TEST(Config, OAuthSection)
{
    auto plain = parse(minimal, "/etc/pigeon/pigeond.toml");
    ASSERT_TRUE(plain) << plain.error();
    EXPECT_FALSE(plain->auth.oauth);
    const std::string text = std::string(minimal) + R"(
[auth.oauth]
issuer = "https://login.example.org/"
audience = "pop3.example.org"
user_claim = "preferred_username"
key_file = "jwks.json"
leeway = "2m"
algorithms = ["ES256"]
)";
    auto config = parse(text, "/etc/pigeon/pigeond.toml");
    ASSERT_TRUE(config) << config.error();
    ASSERT_TRUE(config->auth.oauth);
    EXPECT_EQ(config->auth.oauth->issuer, "https://login.example.org/");
    EXPECT_EQ(config->auth.oauth->audience, "pop3.example.org");
    EXPECT_EQ(config->auth.oauth->user_claim, "preferred_username");
    EXPECT_EQ(config->auth.oauth->key_file, "/etc/pigeon/jwks.json");
    EXPECT_EQ(config->auth.oauth->leeway, std::chrono::seconds(120));
    EXPECT_EQ(config->auth.oauth->algorithms, std::vector<std::string>{"ES256"});
}

TEST(Config, SandboxSection)
{
    auto defaults = parse(minimal, "/etc/pigeon/pigeond.toml");
    ASSERT_TRUE(defaults) << defaults.error();
    EXPECT_TRUE(defaults->sandbox.seccomp); // both on unless turned off
    EXPECT_TRUE(defaults->sandbox.landlock);

    const std::string text = std::string(minimal) + R"(
[sandbox]
seccomp = false
landlock = false
read_paths = ["/srv/keys", "extra"]
write_paths = ["/home"]
)";
    auto config = parse(text, "/etc/pigeon/pigeond.toml");
    ASSERT_TRUE(config) << config.error();
    EXPECT_FALSE(config->sandbox.seccomp);
    EXPECT_FALSE(config->sandbox.landlock);
    EXPECT_EQ(config->sandbox.read_paths, (std::vector<std::string>{"/srv/keys", "/etc/pigeon/extra"}));
    EXPECT_EQ(config->sandbox.write_paths, (std::vector<std::string>{"/home"}));

    auto wrong = parse(std::string(minimal) + "\n[sandbox]\nseccmp = false\n", "/etc/pigeon/pigeond.toml");
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().find("sandbox.seccmp"), std::string::npos) << wrong.error();
}

TEST(Config, AMissingFileIsNamed)
{
    auto config = load("/nonexistent/pigeond.toml");
    ASSERT_FALSE(config);
    EXPECT_TRUE(config.error().starts_with("/nonexistent/pigeond.toml: cannot be read")) << config.error();
}

} // namespace
} // namespace pigeon::config
