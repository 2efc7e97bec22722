// pigeond's configuration: a TOML file (toml++) read into typed, validated values. Every error
// names the file, the line and the key ("pigeond.toml:12: limits.max_connections: must be ...").
// An unknown key is an error too: a typo must not silently leave a default in force.
// docs/configuration.md documents every key with its default.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <tl/expected.hpp>
#include <vector>

namespace pigeon::config {

enum class ListenerTls {
    none,
    starttls,
    implicit
};

struct Listener {
    std::string address; // "127.0.0.1", "::1", "0.0.0.0", "::"
    std::uint16_t port = 110;
    ListenerTls tls = ListenerTls::starttls;
};

struct Certificate {
    std::string certificate;
    std::string key;
};

struct Tls {
    std::vector<Certificate> certificates;
    std::string min_version = "TLSv1.2";
    std::string ciphers;
    std::string client_ca;
};

struct Storage {
    std::string driver = "maildir"; // "maildir" or "mbox"
    std::string location = "/var/vmail/%d/%n";
    std::string index_directory; // mbox
    bool dotlock = true;         // mbox
    bool takeover = true;        // a new login replaces a vanished session's lock
};

struct PassDb {
    std::string driver = "sqlite"; // "sqlite" or "passwd-file"
    std::string path = "/var/lib/pigeon/users.db";
    std::string default_scheme = "CRYPT"; // passwd-file entries without {SCHEME}
    bool lowercase_usernames = false;     // Dovecot's auth_username_format = %Lu
};

// [auth.oauth]: local validation of OAuth 2.0 bearer tokens (JWTs) for OAUTHBEARER and XOAUTH2.
struct OAuth {
    std::string issuer;               // the "iss" every token must carry
    std::string audience;             // a value "aud" must contain
    std::string user_claim = "email"; // the claim naming the user
    std::string key_file;             // public keys: a JWK Set or PEM (absolute after load)
    std::chrono::seconds leeway{60};  // tolerated clock difference for exp, nbf, iat
    std::vector<std::string> algorithms = {"RS256", "ES256"};
};

struct Auth {
    // SASL mechanisms offered. SCRAM and CRAM-MD5 need users stored with a matching scheme (a SCRAM
    // or PLAIN secret), so they are not on by default: a client would pick them and fail.
    std::vector<std::string> mechanisms = {"PLAIN", "LOGIN"};
    std::string plaintext = "loopback"; // "never", "loopback", "always"
    bool apop = false;
    // What an unknown user's password is hashed with, so that timing does not tell unknown users
    // apart: the scheme most users' hashes use (ARGON2ID is what `pigeon user add` writes; set
    // SHA512-CRYPT for a passwd-file moved from Dovecot's defaults).
    std::string unknown_user_scheme = "ARGON2ID";
    std::chrono::milliseconds failure_delay{250};
    std::chrono::milliseconds max_failure_delay{15'000};
    std::chrono::seconds forget_failures_after{900};
    std::uint32_t max_concurrent = 128;
    std::uint32_t max_concurrent_per_ip = 0; // checks of one address at once; 0: half the workers
    std::uint32_t max_failures_per_connection = 3;
    std::optional<OAuth> oauth; // present when [auth.oauth] is
};

struct Pop3 {
    std::string greeting = "Pigeon POP3 server ready.";
    std::string implementation = "Pigeon";
    std::optional<std::uint32_t> login_delay; // seconds between logins of one user
    std::string expire;                       // "", "never" or a number of days (advertised)
    bool enable_last = false;
    bool utf8 = true;
};

struct Limits {
    std::uint32_t max_connections = 10'000;
    std::uint32_t max_connections_per_ip = 50;
    std::uint32_t max_bad_commands = 10;
    std::chrono::seconds login_timeout{60};
    std::chrono::seconds idle_timeout{600};
    std::uint32_t output_buffer = 64 * 1024;
    std::chrono::seconds shutdown_grace{30};
    // A connection refused over max_connections(_per_ip) is answered after this long (0: at once).
    std::chrono::milliseconds refusal_delay{1000};
};

struct Log {
    std::string level = "info";         // trace, debug, info, warn, error
    std::string destination = "stderr"; // "stderr", "syslog" or a file path
};

// [quota]: limits for users whose record in the user database sets none (Dovecot's quota_rule
// extra fields set them per user), and how a full maildrop refuses mail (src/delivery/quota.hpp).
struct Quota {
    std::uint64_t default_storage = 0;  // octets; 0: unlimited
    std::uint64_t default_messages = 0; // 0: unlimited
    // Dovecot's quota_grace: a user still under the storage limit may go over it with one last
    // message by this much: a percentage of the limit, or grace_octets when set.
    std::uint32_t grace_percent = 10;
    std::optional<std::uint64_t> grace_octets;
    bool full_tempfail = false; // Dovecot's quota_full_tempfail: a full maildrop defers (4.2.2)
};

// [delivery]: local delivery, shared by LMTP and `pigeon deliver`.
struct Delivery {
    std::string recipient_delimiter = "+"; // Dovecot's recipient_delimiter: user+tag is user; "" off
    std::uint64_t max_message_size = std::uint64_t{50} * 1024 * 1024; // octets as received; 0: none
};

// [lmtp]: mail in from the MTA (RFC 2033). No listen entries: no LMTP.
struct Lmtp {
    std::vector<std::string> listen; // "unix:/run/pigeon/lmtp", "127.0.0.1:24", "[::1]:24"
    std::string socket_user;         // owner of the Unix sockets (when started as root)
    std::string socket_group;
    std::uint32_t socket_mode = 0660;
    std::uint32_t max_recipients = 100;
    std::uint32_t max_connections = 1000;
    std::chrono::seconds timeout{300};   // any one read or write
    std::uint32_t delivery_threads = 16; // deliveries syncing at once (they wait on the disk)
};

struct Server {
    std::string user;                 // drop privileges to this user after binding (when started as root)
    std::string group;                // default: the user's primary group
    std::uint32_t threads = 0;        // event loops; 0: one per core
    std::uint32_t worker_threads = 0; // hashing and storage pool; 0: one per core, at least 2
    std::string host_name;            // APOP timestamps; default: the machine's name
};

// [sandbox]: what pigeond confines itself to once started (server/sandbox.hpp).
struct Sandbox {
    bool seccomp = true;                  // only the system calls pigeond makes
    bool landlock = true;                 // file access only where the configuration points
    std::vector<std::string> read_paths;  // more directories or files to read (absolute after load)
    std::vector<std::string> write_paths; // more directories to read and write (absolute after load)
};

struct Config {
    std::filesystem::path file;
    Server server;
    std::vector<Listener> listeners;
    Tls tls;
    Storage storage;
    PassDb passdb;
    Auth auth;
    Pop3 pop3;
    Limits limits;
    Log log;
    Quota quota;
    Delivery delivery;
    Lmtp lmtp;
    Sandbox sandbox;
};

// Reads and checks the file; relative paths in it are taken from the file's directory.
[[nodiscard]] tl::expected<Config, std::string> load(const std::filesystem::path& file);
[[nodiscard]] tl::expected<Config, std::string> parse(std::string_view text,
                                                      const std::filesystem::path& file);

} // namespace pigeon::config
