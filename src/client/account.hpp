// pigeon fetch's accounts: what one POP3 account is (server, TLS, authentication, where its mail
// goes, what stays on the server), read from $XDG_CONFIG_HOME/pigeon/fetch.toml or built from the
// command line. Every error names the file, the line and the key; unknown keys are errors.
// docs/fetch.md documents every key with its default.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <tl/expected.hpp>
#include <vector>

namespace pigeon::client {

enum class TlsMode {
    implicit, // RFC 8314: TLS from the first byte (port 995)
    starttls, // RFC 2595: STLS after the greeting, required (no silent fall-back)
    none      // plaintext: only with allow_plaintext = true
};

enum class SizeAction {
    skip,  // leave it on the server, undownloaded
    remove // delete it on the server without downloading it
};

struct Account {
    std::string name;
    std::string host;
    std::uint16_t port = 0; // 0: 995 for implicit TLS, 110 otherwise
    TlsMode tls = TlsMode::implicit;
    bool allow_plaintext = false;

    // "auto", or a mechanism: SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-1,
    // CRAM-MD5, APOP, PLAIN, LOGIN, USER, XOAUTH2, OAUTHBEARER, EXTERNAL.
    std::string auth = "auto";
    std::string user;
    std::string password_command;       // its first line of output is the password
    std::string oauth_token_command;    // its first line of output is an OAuth 2.0 access token
    bool sasl_initial_response = false; // XOAUTH2/OAUTHBEARER in one line (Gmail) instead of two

    std::string ca_file;
    std::vector<std::string> fingerprints; // SHA-256 pins
    std::string client_certificate;
    std::string client_key;
    std::string tls_min_version = "TLSv1.2";

    // "maildir:PATH", "mbox:PATH", "command:SHELL COMMAND" (the message on its stdin) or
    // "imap:imaps://HOST[:PORT]/MAILBOX" (APPEND; imap:// uses STARTTLS).
    std::string deliver_to;
    // The IMAP target's login: a password from imap_password_command, or an OAuth 2.0 token from
    // imap_oauth_token_command (XOAUTH2/OAUTHBEARER).
    std::string imap_user;
    std::string imap_password_command;
    std::string imap_oauth_token_command;
    std::string imap_ca_file;
    bool imap_allow_plaintext = false;
    bool imap_mark_seen = false;
    bool keep = true;
    std::uint32_t delete_after_days = 0; // with keep: delete N days after the first download
    std::uint64_t size_limit = 0;        // octets; 0: none
    SizeAction size_action = SizeAction::skip;
    bool received_header = true;
    std::uint32_t pipeline_window = 32; // RETRs outstanding when the server offers PIPELINING

    std::chrono::milliseconds connect_timeout{30'000};
    std::chrono::milliseconds timeout{120'000}; // any one read or write

    std::string state_file; // empty: $XDG_STATE_HOME/pigeon/fetch/NAME.state

    [[nodiscard]] std::uint16_t effective_port() const noexcept
    {
        return port != 0 ? port : (tls == TlsMode::implicit ? 995 : 110);
    }
};

// Checks what every account needs (host, user, a delivery target, TLS or allow_plaintext...).
[[nodiscard]] tl::expected<void, std::string> validate(const Account& account);

// Reads every account of a fetch.toml.
[[nodiscard]] tl::expected<std::vector<Account>, std::string> load_accounts(const std::string& path);

// $XDG_CONFIG_HOME/pigeon/fetch.toml (~/.config/pigeon/fetch.toml).
[[nodiscard]] std::string default_accounts_file();
// $XDG_STATE_HOME/pigeon/fetch (~/.local/state/pigeon/fetch).
[[nodiscard]] std::string default_state_directory();
// "~/x" → "$HOME/x".
[[nodiscard]] std::string expand_home(const std::string& path);

} // namespace pigeon::client
