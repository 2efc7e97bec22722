#include "config/config.hpp"
#include "config/toml_reader.hpp"

#include <fmt/format.h>

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>

namespace pigeon::config {
namespace {

using Reader = TomlReader;

// "127.0.0.1:110", "[::1]:995", "*:110" (every IPv4 address), "[::]:110".
bool parse_address(std::string_view text, std::string& host, std::uint16_t& port)
{
    std::string_view host_part;
    std::string_view port_part;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return false;
        }
        host_part = text.substr(1, close - 1);
        port_part = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            return false;
        }
        host_part = text.substr(0, colon);
        port_part = text.substr(colon + 1);
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port_part.data(), port_part.data() + port_part.size(), value);
    if (ec != std::errc() || end != port_part.data() + port_part.size() || value > 65535 ||
        host_part.empty()) {
        return false;
    }
    host = host_part == "*" ? std::string("0.0.0.0") : std::string(host_part);
    port = static_cast<std::uint16_t>(value);
    return true;
}

std::string resolve(const std::filesystem::path& base, const std::string& path)
{
    if (path.empty() || std::filesystem::path(path).is_absolute()) {
        return path;
    }
    return (base / path).lexically_normal().string();
}

void read_listeners(Reader& r, const toml::table& root, Config& config)
{
    const toml::node* node = root.get("listen");
    if (node == nullptr) {
        r.fail(nullptr, "listen", "at least one [[listen]] is needed");
        return;
    }
    const auto* array = node->as_array();
    if (array == nullptr || array->empty()) {
        r.fail(node, "listen", "must be one or more [[listen]] tables");
        return;
    }
    for (const auto& item : *array) {
        const auto* table = item.as_table();
        if (table == nullptr) {
            r.fail(&item, "listen", "must be one or more [[listen]] tables");
            return;
        }
        r.known_keys(*table, "listen", {"address", "tls"});
        std::string address;
        std::string tls = "starttls";
        r.string(*table, "listen", "address", address);
        r.one_of(*table, "listen", "tls", tls, {"none", "starttls", "implicit"});
        Listener listener;
        if (!parse_address(address, listener.address, listener.port)) {
            r.fail(table->get("address") != nullptr ? table->get("address") : &item, "listen.address",
                   R"(must be "host:port" ("127.0.0.1:110", "[::1]:995", "*:110"))");
            return;
        }
        listener.tls = tls == "none"       ? ListenerTls::none
                       : tls == "implicit" ? ListenerTls::implicit
                                           : ListenerTls::starttls;
        config.listeners.push_back(std::move(listener));
    }
}

void read_tls(Reader& r, const toml::table& root, Config& config, const std::filesystem::path& base)
{
    const auto* table = r.table(root, "tls");
    if (table == nullptr) {
        return;
    }
    r.known_keys(*table, "tls",
                 {"certificate", "key", "certificates", "min_version", "ciphers", "client_ca"});
    Certificate first;
    r.string(*table, "tls", "certificate", first.certificate);
    r.string(*table, "tls", "key", first.key);
    if (first.certificate.empty() != first.key.empty()) {
        r.fail(table, "tls", "certificate and key go together");
    }
    if (!first.certificate.empty()) {
        config.tls.certificates.push_back(first);
    }
    if (const toml::node* node = table->get("certificates")) {
        const auto* array = node->as_array();
        if (array == nullptr) {
            r.fail(node, "tls.certificates", "must be a list of { certificate = ..., key = ... }");
            return;
        }
        for (const auto& item : *array) {
            const auto* entry = item.as_table();
            if (entry == nullptr) {
                r.fail(&item, "tls.certificates", "must be a list of { certificate = ..., key = ... }");
                return;
            }
            r.known_keys(*entry, "tls.certificates", {"certificate", "key"});
            Certificate cert;
            r.string(*entry, "tls.certificates", "certificate", cert.certificate);
            r.string(*entry, "tls.certificates", "key", cert.key);
            if (cert.certificate.empty() || cert.key.empty()) {
                r.fail(&item, "tls.certificates", "each entry needs certificate and key");
                return;
            }
            config.tls.certificates.push_back(cert);
        }
    }
    for (auto& cert : config.tls.certificates) {
        cert.certificate = resolve(base, cert.certificate);
        cert.key = resolve(base, cert.key);
    }
    r.one_of(*table, "tls", "min_version", config.tls.min_version,
             {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"});
    r.string(*table, "tls", "ciphers", config.tls.ciphers);
    r.string(*table, "tls", "client_ca", config.tls.client_ca);
    config.tls.client_ca = resolve(base, config.tls.client_ca);
}

// A size in octets: a TOML integer (octets), or a string of digits and a unit, B, k, M, G or T
// (powers of 1024, as in Dovecot's quota rules): 0, "512k", "100M", "1G".
std::optional<std::uint64_t> parse_size(const toml::node& node)
{
    if (const auto* number = node.as_integer()) {
        return number->get() >= 0 ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(number->get()))
                                  : std::nullopt;
    }
    const auto* text = node.as_string();
    if (text == nullptr) {
        return std::nullopt;
    }
    const std::string_view value = text->get();
    std::uint64_t amount = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), amount);
    if (ec != std::errc() || end == value.data()) {
        return std::nullopt;
    }
    const std::string_view unit(end, static_cast<std::size_t>(value.data() + value.size() - end));
    std::uint64_t multiplier = 0;
    if (unit.size() == 1) {
        switch (unit.front()) {
        case 'B':
        case 'b': multiplier = 1; break;
        case 'K':
        case 'k': multiplier = std::uint64_t{1} << 10; break;
        case 'M':
        case 'm': multiplier = std::uint64_t{1} << 20; break;
        case 'G':
        case 'g': multiplier = std::uint64_t{1} << 30; break;
        case 'T':
        case 't': multiplier = std::uint64_t{1} << 40; break;
        default: break;
        }
    }
    if (multiplier == 0 || amount > std::numeric_limits<std::uint64_t>::max() / multiplier) {
        return std::nullopt;
    }
    return amount * multiplier;
}

void read_size(Reader& r, const toml::table& table, std::string_view prefix, std::string_view key,
               std::uint64_t& out)
{
    if (const toml::node* node = table.get(key)) {
        if (const auto size = parse_size(*node)) {
            out = *size;
        } else {
            r.fail(node, Reader::join(prefix, key),
                   R"(must be a size: octets, or a number with a unit B, k, M, G or T ("100M", "1G"))");
        }
    }
}

void read_quota_and_delivery(Reader& r, const toml::table& root, Config& config)
{
    if (const auto* t = r.table(root, "quota")) {
        r.known_keys(*t, "quota", {"default_storage", "default_messages", "grace", "full_tempfail"});
        read_size(r, *t, "quota", "default_storage", config.quota.default_storage);
        if (const toml::node* node = t->get("default_messages")) {
            const auto* number = node->as_integer();
            if (number != nullptr && number->get() >= 0) {
                config.quota.default_messages = static_cast<std::uint64_t>(number->get());
            } else {
                r.fail(node, "quota.default_messages", "must be a number of messages (0: unlimited)");
            }
        }
        if (const toml::node* node = t->get("grace")) {
            const auto* text = node->as_string();
            std::uint32_t percent = 0;
            if (text != nullptr && text->get().ends_with('%')) {
                const std::string_view digits =
                    std::string_view(text->get()).substr(0, text->get().size() - 1);
                const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), percent);
                if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() ||
                    percent > 1000) {
                    r.fail(node, "quota.grace",
                           R"(must be a percentage of the storage limit ("10%") or a size)");
                }
                config.quota.grace_percent = percent;
                config.quota.grace_octets.reset();
            } else if (const auto size = parse_size(*node)) {
                config.quota.grace_octets = *size;
            } else {
                r.fail(node, "quota.grace", R"(must be a percentage of the storage limit ("10%") or a size)");
            }
        }
        r.boolean(*t, "quota", "full_tempfail", config.quota.full_tempfail);
    }
    if (const auto* t = r.table(root, "delivery")) {
        r.known_keys(*t, "delivery", {"recipient_delimiter", "max_message_size"});
        r.string(*t, "delivery", "recipient_delimiter", config.delivery.recipient_delimiter);
        const auto& delimiter = config.delivery.recipient_delimiter;
        if (std::any_of(delimiter.begin(), delimiter.end(), [](unsigned char c) {
                return c <= 0x20 || c >= 0x7f || c == '@' || c == '"' || c == '<' || c == '>';
            })) {
            r.fail(t->get("recipient_delimiter"), "delivery.recipient_delimiter",
                   R"(must be printable ASCII characters other than '@', '"', '<', '>' and space)");
        }
        read_size(r, *t, "delivery", "max_message_size", config.delivery.max_message_size);
    }
}

void read_lmtp(Reader& r, const toml::table& root, Config& config)
{
    const auto* t = r.table(root, "lmtp");
    if (t == nullptr) {
        return;
    }
    using namespace std::chrono_literals;
    r.known_keys(*t, "lmtp",
                 {"listen", "socket_user", "socket_group", "socket_mode", "max_recipients", "max_connections",
                  "timeout", "delivery_threads"});
    r.strings(*t, "lmtp", "listen", config.lmtp.listen);
    for (const auto& entry : config.lmtp.listen) {
        const bool unix_socket = entry.starts_with("unix:/");
        const bool tcp = !entry.starts_with("unix:") && entry.find(':') != std::string::npos;
        if (!unix_socket && !tcp) {
            r.fail(t->get("listen"), "lmtp.listen",
                   fmt::format(R"("{}": must be "unix:/absolute/path", "ADDRESS:PORT" or "[ADDRESS]:PORT")",
                               entry));
        }
    }
    r.string(*t, "lmtp", "socket_user", config.lmtp.socket_user);
    r.string(*t, "lmtp", "socket_group", config.lmtp.socket_group);
    if (const toml::node* node = t->get("socket_mode")) {
        const auto* text = node->as_string();
        unsigned mode = 0;
        const std::string_view digits = text != nullptr ? std::string_view(text->get()) : std::string_view();
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), mode, 8);
        if (text == nullptr || ec != std::errc() || end != digits.data() + digits.size() || mode > 0777) {
            r.fail(node, "lmtp.socket_mode", R"(must be an octal mode in a string ("0660"))");
        } else {
            config.lmtp.socket_mode = mode;
        }
    }
    r.number(*t, "lmtp", "max_recipients", config.lmtp.max_recipients, 1, 10'000);
    r.number(*t, "lmtp", "max_connections", config.lmtp.max_connections, 1, 100'000);
    r.duration(*t, "lmtp", "timeout", config.lmtp.timeout, 1s, 3600s);
    r.number(*t, "lmtp", "delivery_threads", config.lmtp.delivery_threads, 1, 256);
}

void read_sections(Reader& r, const toml::table& root, Config& config, const std::filesystem::path& base)
{
    r.known_keys(root, "",
                 {"server", "listen", "tls", "storage", "passdb", "auth", "pop3", "limits", "log", "quota",
                  "delivery", "lmtp", "sandbox"});
    if (const auto* t = r.table(root, "server")) {
        r.known_keys(*t, "server", {"user", "group", "threads", "worker_threads", "host_name"});
        r.string(*t, "server", "user", config.server.user);
        r.string(*t, "server", "group", config.server.group);
        r.number(*t, "server", "threads", config.server.threads, 0, 256);
        r.number(*t, "server", "worker_threads", config.server.worker_threads, 0, 256);
        r.string(*t, "server", "host_name", config.server.host_name);
    }
    read_listeners(r, root, config);
    read_tls(r, root, config, base);
    if (const auto* t = r.table(root, "storage")) {
        r.known_keys(*t, "storage", {"driver", "location", "index_directory", "dotlock", "takeover"});
        r.one_of(*t, "storage", "driver", config.storage.driver, {"maildir", "mbox"});
        r.string(*t, "storage", "location", config.storage.location);
        r.string(*t, "storage", "index_directory", config.storage.index_directory);
        r.boolean(*t, "storage", "dotlock", config.storage.dotlock);
        r.boolean(*t, "storage", "takeover", config.storage.takeover);
        if (config.storage.location.find('%') == std::string::npos) {
            r.fail(t->get("location") != nullptr ? t->get("location") : t, "storage.location",
                   "must contain %u, %n or %d (one maildrop per user)");
        }
        config.storage.location = resolve(base, config.storage.location);
        config.storage.index_directory = resolve(base, config.storage.index_directory);
    }
    if (const auto* t = r.table(root, "passdb")) {
        r.known_keys(*t, "passdb", {"driver", "path", "default_scheme", "lowercase_usernames"});
        r.one_of(*t, "passdb", "driver", config.passdb.driver, {"sqlite", "passwd-file"});
        r.string(*t, "passdb", "path", config.passdb.path);
        r.string(*t, "passdb", "default_scheme", config.passdb.default_scheme);
        r.boolean(*t, "passdb", "lowercase_usernames", config.passdb.lowercase_usernames);
        config.passdb.path = resolve(base, config.passdb.path);
    }
    if (const auto* t = r.table(root, "auth")) {
        r.known_keys(*t, "auth",
                     {"mechanisms", "plaintext", "apop", "unknown_user_scheme", "failure_delay",
                      "max_failure_delay", "forget_failures_after", "max_concurrent", "max_concurrent_per_ip",
                      "max_failures_per_connection", "oauth"});
        r.strings(*t, "auth", "mechanisms", config.auth.mechanisms);
        for (auto& mechanism : config.auth.mechanisms) {
            std::transform(mechanism.begin(), mechanism.end(), mechanism.begin(),
                           [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        }
        r.one_of(*t, "auth", "plaintext", config.auth.plaintext, {"never", "loopback", "always"});
        r.boolean(*t, "auth", "apop", config.auth.apop);
        r.one_of(*t, "auth", "unknown_user_scheme", config.auth.unknown_user_scheme,
                 {"SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID", "ARGON2I"});
        using namespace std::chrono_literals;
        r.duration(*t, "auth", "failure_delay", config.auth.failure_delay, 0ms, 60'000ms);
        r.duration(*t, "auth", "max_failure_delay", config.auth.max_failure_delay, 0ms, 3'600'000ms);
        r.duration(*t, "auth", "forget_failures_after", config.auth.forget_failures_after, 1s, 86'400s);
        r.number(*t, "auth", "max_concurrent", config.auth.max_concurrent, 1, 100'000);
        r.number(*t, "auth", "max_concurrent_per_ip", config.auth.max_concurrent_per_ip, 0, 100'000);
        if (const auto* o = r.table(*t, "oauth")) {
            auto& oauth = config.auth.oauth.emplace();
            r.known_keys(*o, "auth.oauth",
                         {"issuer", "audience", "user_claim", "key_file", "leeway", "algorithms"});
            r.string(*o, "auth.oauth", "issuer", oauth.issuer);
            r.string(*o, "auth.oauth", "audience", oauth.audience);
            r.string(*o, "auth.oauth", "user_claim", oauth.user_claim);
            r.string(*o, "auth.oauth", "key_file", oauth.key_file);
            r.duration(*o, "auth.oauth", "leeway", oauth.leeway, 0s, 3600s);
            r.strings(*o, "auth.oauth", "algorithms", oauth.algorithms);
            for (const std::string_view key : {"issuer", "audience", "key_file"}) {
                if (o->get(key) == nullptr) {
                    r.fail(o, fmt::format("auth.oauth.{}", key), "is required");
                }
            }
            for (const auto& algorithm : oauth.algorithms) {
                if (algorithm != "RS256" && algorithm != "ES256") {
                    r.fail(o->get("algorithms"), "auth.oauth.algorithms",
                           fmt::format("\"{}\" is not supported (RS256, ES256)", algorithm));
                }
            }
            oauth.key_file = resolve(base, oauth.key_file);
        }
        r.number(*t, "auth", "max_failures_per_connection", config.auth.max_failures_per_connection, 1, 1000);
    }
    if (const auto* t = r.table(root, "pop3")) {
        r.known_keys(*t, "pop3",
                     {"greeting", "implementation", "login_delay", "expire", "enable_last", "utf8"});
        r.string(*t, "pop3", "greeting", config.pop3.greeting);
        r.string(*t, "pop3", "implementation", config.pop3.implementation);
        if (t->get("login_delay") != nullptr) {
            std::uint32_t delay = 0;
            r.number(*t, "pop3", "login_delay", delay, 0, std::int64_t{86'400} * 7);
            if (delay > 0) {
                config.pop3.login_delay = delay;
            }
        }
        if (const toml::node* node = t->get("expire")) {
            if (const auto* days = node->as_integer();
                days != nullptr && days->get() >= 0 && days->get() <= 36500) {
                config.pop3.expire = std::to_string(days->get());
            } else if (const auto* text = node->as_string(); text != nullptr && text->get() == "never") {
                config.pop3.expire = "never";
            } else {
                r.fail(node, "pop3.expire", "must be \"never\" or a number of days from 0 to 36500");
            }
        }
        r.boolean(*t, "pop3", "enable_last", config.pop3.enable_last);
        r.boolean(*t, "pop3", "utf8", config.pop3.utf8);
        const auto printable = [](const std::string& s) {
            return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
        };
        if (!printable(config.pop3.greeting) || !printable(config.pop3.implementation)) {
            r.fail(t, "pop3", "greeting and implementation must be one line of printable text");
        }
    }
    if (const auto* t = r.table(root, "limits")) {
        r.known_keys(*t, "limits",
                     {"max_connections", "max_connections_per_ip", "max_bad_commands", "login_timeout",
                      "idle_timeout", "output_buffer", "shutdown_grace", "refusal_delay"});
        using namespace std::chrono_literals;
        r.number(*t, "limits", "max_connections", config.limits.max_connections, 1, 1'000'000);
        r.number(*t, "limits", "max_connections_per_ip", config.limits.max_connections_per_ip, 1, 1'000'000);
        r.number(*t, "limits", "max_bad_commands", config.limits.max_bad_commands, 1, 1000);
        r.duration(*t, "limits", "login_timeout", config.limits.login_timeout, 1s, 3600s);
        // RFC 1939 §3: "the timer MUST be of at least 10 minutes' duration".
        r.duration(*t, "limits", "idle_timeout", config.limits.idle_timeout, 600s, 86'400s);
        r.number(*t, "limits", "output_buffer", config.limits.output_buffer, 4096,
                 std::int64_t{16} * 1024 * 1024);
        r.duration(*t, "limits", "shutdown_grace", config.limits.shutdown_grace, 0s, 3600s);
        r.duration(*t, "limits", "refusal_delay", config.limits.refusal_delay, 0ms, 60'000ms);
    }
    if (const auto* t = r.table(root, "log")) {
        r.known_keys(*t, "log", {"level", "destination"});
        r.one_of(*t, "log", "level", config.log.level, {"trace", "debug", "info", "warn", "error"});
        r.string(*t, "log", "destination", config.log.destination);
        if (config.log.destination != "stderr" && config.log.destination != "syslog") {
            config.log.destination = resolve(base, config.log.destination);
        }
    }
    read_quota_and_delivery(r, root, config);
    read_lmtp(r, root, config);
    if (const auto* t = r.table(root, "sandbox")) {
        r.known_keys(*t, "sandbox", {"seccomp", "landlock", "read_paths", "write_paths"});
        r.boolean(*t, "sandbox", "seccomp", config.sandbox.seccomp);
        r.boolean(*t, "sandbox", "landlock", config.sandbox.landlock);
        r.strings(*t, "sandbox", "read_paths", config.sandbox.read_paths);
        r.strings(*t, "sandbox", "write_paths", config.sandbox.write_paths);
        for (auto* paths : {&config.sandbox.read_paths, &config.sandbox.write_paths}) {
            for (auto& path : *paths) {
                path = resolve(base, path);
            }
        }
    }
    if (!r.failed()) {
        const bool needs_tls = std::any_of(config.listeners.begin(), config.listeners.end(),
                                           [](const Listener& l) { return l.tls != ListenerTls::none; });
        if (needs_tls && config.tls.certificates.empty()) {
            r.fail(root.get("tls"), "tls.certificate",
                   R"(a listener uses TLS (tls = "starttls" or "implicit"), so a certificate is needed)");
        }
    }
}

} // namespace

tl::expected<Config, std::string> parse(std::string_view text, const std::filesystem::path& file)
{
    toml::table root;
    try {
        root = toml::parse(text, file.string());
    } catch (const toml::parse_error& error) {
        return tl::unexpected(
            fmt::format("{}:{}: {}", file.string(), error.source().begin.line, error.description()));
    }
    Config config;
    config.file = file;
    Reader reader(file.string());
    read_sections(reader, root, config, file.parent_path());
    if (reader.failed()) {
        return tl::unexpected(reader.error());
    }
    return config;
}

tl::expected<Config, std::string> load(const std::filesystem::path& file)
{
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return tl::unexpected(fmt::format("{}: cannot be read: {}", file.string(), std::strerror(errno)));
    }
    std::ostringstream text;
    text << in.rdbuf();
    // A configuration is small; a bound keeps a wrong path (a log, a device) from filling memory.
    constexpr std::size_t max_config_octets = std::size_t{1} << 20;
    if (text.view().size() > max_config_octets) {
        return tl::unexpected(fmt::format("{}: larger than 1 MiB, not a configuration file", file.string()));
    }
    return parse(text.view(), std::filesystem::absolute(file));
}

} // namespace pigeon::config
