#include "client/account.hpp"

#include "config/toml_reader.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace pigeon::client {
namespace {

std::string environment(const char* name)
{
    const char* value = std::getenv(name);
    return value != nullptr ? std::string(value) : std::string();
}

std::string home()
{
    std::string value = environment("HOME");
    return value.empty() ? std::string("/") : value;
}

void read_account(config::TomlReader& reader, const toml::table& table, const std::string& prefix,
                  Account& account)
{
    reader.known_keys(table, prefix,
                      {"host",
                       "port",
                       "tls",
                       "allow_plaintext",
                       "auth",
                       "user",
                       "password_command",
                       "oauth_token_command",
                       "sasl_initial_response",
                       "ca_file",
                       "fingerprints",
                       "client_certificate",
                       "client_key",
                       "tls_min_version",
                       "deliver_to",
                       "imap_user",
                       "imap_password_command",
                       "imap_oauth_token_command",
                       "imap_ca_file",
                       "imap_allow_plaintext",
                       "imap_mark_seen",
                       "keep",
                       "delete_after_days",
                       "size_limit",
                       "size_action",
                       "received_header",
                       "pipeline_window",
                       "connect_timeout",
                       "timeout",
                       "state_file"});
    reader.string(table, prefix, "host", account.host);
    std::uint32_t port = account.port;
    reader.number(table, prefix, "port", port, 1, 65535);
    account.port = static_cast<std::uint16_t>(port);
    std::string tls = account.tls == TlsMode::implicit   ? "implicit"
                      : account.tls == TlsMode::starttls ? "starttls"
                                                         : "none";
    reader.one_of(table, prefix, "tls", tls, {"implicit", "starttls", "none"});
    account.tls = tls == "implicit"   ? TlsMode::implicit
                  : tls == "starttls" ? TlsMode::starttls
                                      : TlsMode::none;
    reader.boolean(table, prefix, "allow_plaintext", account.allow_plaintext);
    reader.one_of(table, prefix, "auth", account.auth,
                  {"auto", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1",
                   "CRAM-MD5", "APOP", "PLAIN", "LOGIN", "USER", "XOAUTH2", "OAUTHBEARER", "EXTERNAL"});
    reader.string(table, prefix, "user", account.user);
    reader.string(table, prefix, "password_command", account.password_command);
    reader.string(table, prefix, "oauth_token_command", account.oauth_token_command);
    reader.boolean(table, prefix, "sasl_initial_response", account.sasl_initial_response);
    reader.string(table, prefix, "ca_file", account.ca_file);
    reader.strings(table, prefix, "fingerprints", account.fingerprints);
    reader.string(table, prefix, "client_certificate", account.client_certificate);
    reader.string(table, prefix, "client_key", account.client_key);
    reader.one_of(table, prefix, "tls_min_version", account.tls_min_version,
                  {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"});
    reader.string(table, prefix, "deliver_to", account.deliver_to);
    reader.string(table, prefix, "imap_user", account.imap_user);
    reader.string(table, prefix, "imap_password_command", account.imap_password_command);
    reader.string(table, prefix, "imap_oauth_token_command", account.imap_oauth_token_command);
    reader.string(table, prefix, "imap_ca_file", account.imap_ca_file);
    reader.boolean(table, prefix, "imap_allow_plaintext", account.imap_allow_plaintext);
    reader.boolean(table, prefix, "imap_mark_seen", account.imap_mark_seen);
    reader.boolean(table, prefix, "keep", account.keep);
    reader.number(table, prefix, "delete_after_days", account.delete_after_days, 0, 36500);
    if (const auto* node = table.get("size_limit")) {
        const auto* value = node->as_integer();
        if (value == nullptr || value->get() < 0) {
            reader.fail(node, config::TomlReader::join(prefix, "size_limit"),
                        "must be a whole number of octets, 0 for none");
        } else {
            account.size_limit = static_cast<std::uint64_t>(value->get());
        }
    }
    std::string size_action = account.size_action == SizeAction::skip ? "skip" : "delete";
    reader.one_of(table, prefix, "size_action", size_action, {"skip", "delete"});
    account.size_action = size_action == "skip" ? SizeAction::skip : SizeAction::remove;
    reader.boolean(table, prefix, "received_header", account.received_header);
    reader.number(table, prefix, "pipeline_window", account.pipeline_window, 1, 1000);
    reader.duration(table, prefix, "connect_timeout", account.connect_timeout, std::chrono::milliseconds(100),
                    std::chrono::milliseconds(std::chrono::hours(1)));
    reader.duration(table, prefix, "timeout", account.timeout, std::chrono::milliseconds(100),
                    std::chrono::milliseconds(std::chrono::hours(1)));
    reader.string(table, prefix, "state_file", account.state_file);
}

} // namespace

std::string expand_home(const std::string& path)
{
    if (path == "~") {
        return home();
    }
    if (path.starts_with("~/")) {
        return home() + path.substr(1);
    }
    return path;
}

std::string default_accounts_file()
{
    std::string base = environment("XDG_CONFIG_HOME");
    if (base.empty()) {
        base = home() + "/.config";
    }
    return base + "/pigeon/fetch.toml";
}

std::string default_state_directory()
{
    std::string base = environment("XDG_STATE_HOME");
    if (base.empty()) {
        base = home() + "/.local/state";
    }
    return base + "/pigeon/fetch";
}

tl::expected<void, std::string> validate(const Account& account)
{
    const auto fail = [&account](std::string_view what) {
        return tl::unexpected(fmt::format("account {}: {}", account.name, what));
    };
    if (account.host.empty()) {
        return fail("no host");
    }
    if (account.user.empty()) {
        return fail("no user");
    }
    if (account.deliver_to.empty()) {
        return fail("no deliver_to (maildir:PATH, mbox:PATH, command:COMMAND or imap:URL)");
    }
    if (!account.deliver_to.starts_with("maildir:") && !account.deliver_to.starts_with("mbox:") &&
        !account.deliver_to.starts_with("command:") && !account.deliver_to.starts_with("imap:")) {
        return fail(fmt::format("deliver_to \"{}\" must start with maildir:, mbox:, command: or imap:",
                                account.deliver_to));
    }
    if (account.deliver_to.starts_with("imap:")) {
        if (account.imap_user.empty()) {
            return fail("an imap: target needs imap_user");
        }
        if (account.imap_password_command.empty() == account.imap_oauth_token_command.empty()) {
            return fail("an imap: target needs one of imap_password_command and imap_oauth_token_command");
        }
    }
    if (account.tls == TlsMode::none && !account.allow_plaintext) {
        return fail(
            "tls = \"none\" sends the password and the mail in the clear: set allow_plaintext = true to "
            "allow it");
    }
    if (!account.keep && account.delete_after_days > 0) {
        return fail("delete_after_days needs keep = true (keep = false deletes at once)");
    }
    const bool oauth = account.auth == "XOAUTH2" || account.auth == "OAUTHBEARER";
    if (oauth && account.oauth_token_command.empty()) {
        return fail(fmt::format("auth = \"{}\" needs oauth_token_command", account.auth));
    }
    return {};
}

tl::expected<std::vector<Account>, std::string> load_accounts(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return tl::unexpected(fmt::format("{}: cannot read it", path));
    }
    std::stringstream text;
    text << in.rdbuf();
    toml::table root;
    try {
        root = toml::parse(text.str(), path);
    } catch (const toml::parse_error& error) {
        return tl::unexpected(fmt::format("{}:{}: {}", path, error.source().begin.line, error.description()));
    }
    config::TomlReader reader(path);
    reader.known_keys(root, "", {"defaults", "account"});
    Account defaults;
    if (const auto* table = reader.table(root, "defaults")) {
        read_account(reader, *table, "defaults", defaults);
    }
    std::vector<Account> accounts;
    if (const auto* table = reader.table(root, "account")) {
        for (const auto& [name, node] : *table) {
            const auto* account_table = node.as_table();
            const std::string prefix = "account." + std::string(name.str());
            if (account_table == nullptr) {
                reader.fail(&node, prefix, "must be a table ([account.NAME])");
                break;
            }
            Account account = defaults;
            account.name = std::string(name.str());
            read_account(reader, *account_table, prefix, account);
            if (reader.failed()) {
                break;
            }
            account.deliver_to =
                account.deliver_to.starts_with("command:")
                    ? account.deliver_to
                    : account.deliver_to.substr(0, account.deliver_to.find(':') + 1) +
                          expand_home(account.deliver_to.substr(account.deliver_to.find(':') + 1));
            account.state_file = expand_home(account.state_file);
            account.ca_file = expand_home(account.ca_file);
            if (auto valid = validate(account); !valid) {
                reader.fail(&node, prefix, valid.error().substr(valid.error().find(": ") + 2));
                break;
            }
            accounts.push_back(std::move(account));
        }
    }
    if (reader.failed()) {
        return tl::unexpected(reader.error());
    }
    if (accounts.empty()) {
        return tl::unexpected(fmt::format("{}: no accounts ([account.NAME] tables)", path));
    }
    return accounts;
}

} // namespace pigeon::client
