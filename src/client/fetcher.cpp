#include "client/fetcher.hpp"

#include "client/fetch_state.hpp"
#include "client/sink.hpp"
#include "client/transport.hpp"
#include "core/base64.hpp"
#include "core/strings.hpp"
#include "protocol/client_session.hpp"
#include "protocol/response.hpp"
#include "sasl/mechanism.hpp"
#include "tls/tls_context.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <mutex>
#include <openssl/evp.h>
#include <set>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace pigeon::client {
namespace {

using protocol::ClientEvent;
using protocol::Command;
using protocol::Reply;
namespace command = protocol::command;
namespace event = protocol::event;

// A listing (UIDL, LIST, CAPA) longer than this is an attack, not a mailbox: at most 512 octets
// each, it bounds the memory a hostile server can make the client hold to about 1 GB.
constexpr std::size_t max_listing_lines = 2'000'000;
// ...and its text is bounded as well, to 512 octets a line on average: a line may be as long as
// max_response_line_octets (8 KiB), and 2,000,000 of those would be 16 GB.
constexpr std::size_t max_listing_octets = max_listing_lines * 512;

// The unique-ids made from headers for a server without UIDL.
constexpr std::string_view header_uid_prefix = "pigeon-hdr-";

struct Failure {
    Outcome outcome;
    std::string message;
};
template <typename T>
using Step = tl::expected<T, Failure>;

std::string reply_line(const Reply& reply)
{
    std::string line = reply.kind == Reply::Kind::ok ? "+OK" : reply.kind == Reply::Kind::err ? "-ERR" : "+";
    if (!reply.code.empty()) {
        line += fmt::format(" [{}]", reply.code);
    }
    if (!reply.text.empty()) {
        line += " " + reply.text;
    }
    return line;
}

// What a -ERR means for the run (RFC 2449 §8, RFC 3206).
Outcome classify(const Reply& reply, Outcome otherwise)
{
    switch (reply.known_code()) {
    case protocol::ResponseCode::in_use:
    case protocol::ResponseCode::login_delay:
    case protocol::ResponseCode::sys_temp: return Outcome::temporary;
    case protocol::ResponseCode::sys_perm: return Outcome::protocol;
    case protocol::ResponseCode::auth: return Outcome::auth;
    case protocol::ResponseCode::none: break;
    }
    return otherwise;
}

// The first line a command prints, for password_command and oauth_token_command.
tl::expected<SecretString, std::string> run_secret_command(const std::string& command)
{
    // The command is the user's own shell line (like mpop's passwordeval): a shell is intended.
    FILE* pipe = ::popen(command.c_str(), "re"); // NOLINT(cert-env33-c)
    if (pipe == nullptr) {
        return tl::unexpected(fmt::format("cannot run \"{}\"", command));
    }
    std::string output;
    std::array<char, 4096> chunk{};
    while (output.size() < std::size_t{1024} * 1024) {
        const std::size_t got = std::fread(chunk.data(), 1, chunk.size(), pipe);
        if (got == 0) {
            break;
        }
        output.append(chunk.data(), got);
    }
    const int status = ::pclose(pipe);
    const auto end = output.find('\n');
    std::string first = output.substr(0, end);
    if (!first.empty() && first.back() == '\r') {
        first.pop_back();
    }
    std::fill(output.begin(), output.end(), '\0');
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return tl::unexpected(fmt::format("\"{}\" failed (exit status {})", command,
                                          WIFEXITED(status) ? WEXITSTATUS(status) : -1));
    }
    if (first.empty()) {
        return tl::unexpected(fmt::format("\"{}\" printed nothing", command));
    }
    return SecretString(std::move(first));
}

std::string apop_digest(const std::string& timestamp, const std::string& password)
{
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    const std::string input = timestamp + password;
    EVP_Digest(input.data(), input.size(), digest.data(), &length, EVP_md5(), nullptr);
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
        hex += fmt::format("{:02x}", digest[i]);
    }
    return hex;
}

std::string rfc5322_date(std::time_t when)
{
    std::tm local{};
    ::localtime_r(&when, &local);
    std::array<char, 64> text{};
    (void)std::strftime(text.data(), text.size(), "%a, %d %b %Y %H:%M:%S %z", &local);
    return text.data();
}

std::string local_host_name()
{
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0') {
        return "localhost";
    }
    return host.data();
}

struct ServerMessage {
    std::uint32_t number = 0;
    std::string uid;
    std::uint64_t octets = 0;
};

void fault(const FetchOptions& options, std::string_view point)
{
    if (options.fault_point) {
        options.fault_point(point);
    }
}

// "1 abc" → {1, "abc"}; "1 1234" → {1, 1234}.
std::optional<std::pair<std::uint32_t, std::string>> numbered(std::string_view line)
{
    const auto space = line.find(' ');
    if (space == std::string_view::npos || space == 0) {
        return std::nullopt;
    }
    std::uint32_t number = 0;
    const auto* end = line.data() + space;
    if (std::from_chars(line.data(), end, number).ptr != end || number == 0) {
        return std::nullopt;
    }
    std::string_view rest = line.substr(space + 1);
    while (rest.starts_with(' ')) {
        rest.remove_prefix(1);
    }
    const auto trailing = rest.find(' ');
    return std::pair{number, std::string(rest.substr(0, trailing))};
}

// A finished message waiting for its group's commit.
struct Waiting {
    std::unique_ptr<SinkMessage> message;
    std::size_t index = 0; // into the message list
};

// What a group's commit did.
struct Committed {
    std::vector<std::uint32_t> stored_numbers; // stored and recorded: DELE may follow
    std::uint64_t stored_octets = 0;
    std::size_t failed = 0;
    std::vector<std::string> warnings;
    std::optional<Failure> fatal; // the state could not be written: stop
};

// One background thread that commits one group at a time.
class Committer {
public:
    Committer() = default;
    Committer(const Committer&) = delete;
    Committer& operator=(const Committer&) = delete;
    Committer(Committer&&) = delete;
    Committer& operator=(Committer&&) = delete;
    ~Committer()
    {
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

    [[nodiscard]] bool busy() const noexcept { return m_busy; }

    void start(std::function<Committed()> work)
    {
        if (m_thread.joinable()) {
            m_thread.join();
        }
        m_busy = true;
        m_thread = std::thread([this, work = std::move(work)]() mutable {
            Committed result = work();
            const std::lock_guard lock(m_mutex);
            m_finished.push_back(std::move(result));
            m_done = true;
            m_changed.notify_all();
        });
    }

    // Waits for the group in flight.
    void wait()
    {
        std::unique_lock lock(m_mutex);
        m_changed.wait(lock, [this] { return m_done; });
    }

    std::vector<Committed> take_finished()
    {
        std::vector<Committed> out;
        {
            const std::lock_guard lock(m_mutex);
            out.swap(m_finished);
            if (m_done) {
                m_done = false;
                m_busy = false;
            }
        }
        if (!m_busy && m_thread.joinable()) {
            m_thread.join();
        }
        return out;
    }

private:
    std::thread m_thread;
    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::vector<Committed> m_finished;
    bool m_done = false;
    bool m_busy = false;
};

struct Transfer {
    struct Outstanding {
        bool retr = true;
        std::size_t index = 0;    // into the message list, for RETR
        std::uint32_t number = 0; // for DELE
    };
    std::time_t now = 0;
    bool pipelining = false;
    std::size_t window = 1;
    std::deque<std::size_t> to_fetch;
    std::deque<std::uint32_t> to_delete;
    std::deque<Outstanding> outstanding;
    std::size_t retrs_outstanding = 0;
    std::unique_ptr<SinkMessage> current;
    bool receiving = false;
    CrlfToLf converter;
    std::string converted;
    std::string error; // why the message being received will not be stored
    std::uint64_t current_octets = 0;
    Progress progress;
    std::vector<Waiting> batch; // finished, not yet committed
    std::uint64_t batch_octets = 0;
    std::chrono::steady_clock::time_point batch_started{};

    void fail_current(const std::string& why)
    {
        if (error.empty()) {
            error = why;
        }
        current.reset();
    }
};

class Driver {
public:
    Driver(const Account& account, const FetchOptions& options, FetchReport& report)
        : m_account(account), m_options(options), m_report(report)
    {
    }

    Step<void> run();

private:
    // --- the dialogue ---
    void trace(std::string_view line) const
    {
        if (m_options.trace) {
            m_options.trace(line);
        }
    }
    void send(const Command& cmd)
    {
        if (m_options.trace) {
            if (std::holds_alternative<command::Pass>(cmd)) {
                trace("C: PASS ********");
            } else if (const auto* apop = std::get_if<command::Apop>(&cmd)) {
                trace(fmt::format("C: APOP {} ********", apop->name)); // the digest can be cracked offline
            } else if (const auto* auth = std::get_if<command::Auth>(&cmd);
                       auth != nullptr && auth->initial_response) {
                trace(fmt::format("C: AUTH {} ********", auth->mechanism.value_or("")));
            } else {
                std::string line = protocol::format_command(cmd);
                line.resize(line.size() - 2);
                trace("C: " + line);
            }
        }
        m_session.send(cmd);
    }
    void send_sasl(std::string_view line)
    {
        trace(line.empty() || line == "*" ? fmt::format("C: {}", line) : std::string("C: ********"));
        m_session.send_sasl_response(line);
    }

    // The next event: a reply, a listing line, a piece of a message. `timeout` bounds the wait
    // for it as a whole, not only each read: a server that drips a line that never ends, a byte
    // at a time, would otherwise hold the client for ever (each read returns within the timeout).
    Step<ClientEvent> next()
    {
        const auto deadline = Transport::Clock::now() + m_account.timeout;
        for (;;) {
            if (m_session.has_output()) {
                if (auto sent = m_transport.write_all(m_session.take_output(), m_account.timeout); !sent) {
                    return tl::unexpected(Failure{Outcome::temporary, sent.error().message});
                }
            }
            if (auto ev = m_session.next_event()) {
                if (const auto* failure = std::get_if<event::Failure>(&*ev)) {
                    return tl::unexpected(
                        Failure{Outcome::protocol,
                                fmt::format("the server broke the protocol: {}", failure->error.message())});
                }
                if (const auto* status = std::get_if<event::Status>(&*ev)) {
                    trace("S: " + reply_line(status->reply));
                } else if (const auto* greeting = std::get_if<event::Greeting>(&*ev)) {
                    trace("S: " + reply_line(greeting->reply));
                } else if (const auto* line = std::get_if<event::ListingLine>(&*ev)) {
                    trace("S: " + line->text);
                } else if (const auto* challenge = std::get_if<event::Continuation>(&*ev)) {
                    trace("S: + " + challenge->challenge_base64);
                }
                return std::move(*ev);
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Transport::Clock::now());
            if (left.count() <= 0) {
                return tl::unexpected(Failure{Outcome::temporary, "timed out waiting for the server"});
            }
            auto bytes = m_transport.read_some(std::size_t{64} * 1024, left);
            if (!bytes) {
                return tl::unexpected(Failure{Outcome::temporary, bytes.error().message});
            }
            if (bytes->empty()) {
                return tl::unexpected(Failure{Outcome::temporary, "the server closed the connection"});
            }
            m_session.receive(*bytes);
        }
    }

    Step<Reply> status()
    {
        auto ev = next();
        if (!ev) {
            return tl::unexpected(ev.error());
        }
        if (auto* status = std::get_if<event::Status>(&*ev)) {
            return std::move(status->reply);
        }
        return tl::unexpected(Failure{Outcome::protocol, "the server answered out of turn"});
    }

    // A multi-line command: its lines, or the -ERR reply.
    Step<tl::expected<std::vector<std::string>, Reply>> listing(const Command& cmd)
    {
        send(cmd);
        auto reply = status();
        if (!reply) {
            return tl::unexpected(reply.error());
        }
        if (!reply->ok()) {
            return tl::unexpected(*reply);
        }
        std::vector<std::string> lines;
        std::size_t octets = 0;
        for (;;) {
            auto ev = next();
            if (!ev) {
                return tl::unexpected(ev.error());
            }
            if (std::holds_alternative<event::End>(*ev)) {
                return lines;
            }
            if (auto* line = std::get_if<event::ListingLine>(&*ev)) {
                if (lines.size() >= max_listing_lines) {
                    return tl::unexpected(
                        Failure{Outcome::protocol,
                                fmt::format("the server's listing exceeds {} lines", max_listing_lines)});
                }
                octets += line->text.size();
                if (octets > max_listing_octets) {
                    return tl::unexpected(
                        Failure{Outcome::protocol,
                                fmt::format("the server's listing exceeds {} octets", max_listing_octets)});
                }
                lines.push_back(std::move(line->text));
            }
        }
    }

    Step<std::vector<std::string>> capabilities()
    {
        auto lines = listing(Command{command::Capa{}});
        if (!lines) {
            return tl::unexpected(lines.error());
        }
        return lines->has_value() ? std::move(**lines) : std::vector<std::string>{}; // no CAPA: an old server
    }

    [[nodiscard]] std::optional<std::string> capability(std::string_view name) const
    {
        for (const auto& line : m_capabilities) {
            const auto space = line.find(' ');
            if (to_ascii_upper(line.substr(0, space)) == name) {
                return space == std::string::npos ? std::string() : line.substr(space + 1);
            }
        }
        return std::nullopt;
    }

    Step<void> connect();
    Step<void> login();
    Step<bool> authenticate(const std::string& mechanism);
    Step<bool> sasl_exchange(const std::string& mechanism, sasl::ClientMechanism& client);
    Step<SecretString> password();
    Step<void> transfer();
    Step<std::vector<ServerMessage>> list_messages();
    Step<std::string> header_uid(const ServerMessage& message);
    void plan(const std::vector<ServerMessage>& messages, Transfer& transfer);
    void fill_window(const std::vector<ServerMessage>& messages, Transfer& transfer);
    void on_status(const Reply& reply, const std::vector<ServerMessage>& messages, Transfer& transfer);
    Step<void> on_body(std::string_view bytes, const std::vector<ServerMessage>& messages,
                       Transfer& transfer);
    void on_end(const std::vector<ServerMessage>& messages, Transfer& transfer);
    Committed commit_group(const std::vector<ServerMessage>& messages, std::vector<Waiting> group,
                           std::time_t now);
    void apply(Committed&& committed, Transfer& transfer);
    Step<void> finish();
    void after_login_capabilities();

    const Account& m_account;
    const FetchOptions& m_options;
    FetchReport& m_report;
    Transport m_transport;
    protocol::ClientSession m_session;
    std::vector<std::string> m_capabilities;
    std::optional<std::string> m_apop_timestamp;
    std::optional<SecretString> m_password;
    std::optional<FetchState> m_state;
    std::unique_ptr<Sink> m_sink;
    std::string m_local_host;
};

Step<void> Driver::connect()
{
    const std::string& host = m_account.host;
    if (auto connected = m_transport.connect(host, m_account.effective_port(), m_account.connect_timeout);
        !connected) {
        return tl::unexpected(Failure{Outcome::temporary, connected.error().message});
    }
    m_report.server.address = m_transport.peer_address();
    std::shared_ptr<tls::ClientTlsContext> context;
    if (m_account.tls != TlsMode::none) {
        tls::ClientTlsOptions tls_options;
        tls_options.ca_file = m_account.ca_file;
        tls_options.sha256_pins = m_account.fingerprints;
        tls_options.client_certificate = m_account.client_certificate;
        tls_options.client_key = m_account.client_key;
        tls_options.min_version = m_account.tls_min_version;
        tls_options.verify = !m_options.tls_no_verify;
        auto loaded = tls::ClientTlsContext::load(tls_options);
        if (!loaded) {
            return tl::unexpected(Failure{Outcome::config, loaded.error()});
        }
        context = std::move(*loaded);
    }
    const auto handshake = [&]() -> Step<void> {
        auto info = m_transport.start_tls(*context, host, m_account.timeout);
        if (!info) {
            return tl::unexpected(
                Failure{info.error().kind == TransportError::Kind::tls ? Outcome::tls : Outcome::temporary,
                        info.error().message});
        }
        trace(fmt::format("-- TLS: {} {}, certificate {} ({})", info->protocol, info->cipher, info->subject,
                          info->verification));
        m_report.server.tls = std::move(*info);
        return {};
    };
    if (m_account.tls == TlsMode::implicit) {
        if (auto done = handshake(); !done) {
            return done;
        }
    }
    auto greeting = next();
    if (!greeting) {
        return tl::unexpected(greeting.error());
    }
    auto* hello = std::get_if<event::Greeting>(&*greeting);
    if (hello == nullptr) {
        return tl::unexpected(Failure{Outcome::protocol, "no greeting from the server"});
    }
    m_report.server.greeting = reply_line(hello->reply);
    if (!hello->reply.ok()) {
        return tl::unexpected(Failure{classify(hello->reply, Outcome::temporary),
                                      "the server refused the connection: " + reply_line(hello->reply)});
    }
    m_apop_timestamp = hello->apop_timestamp;
    auto capa = capabilities();
    if (!capa) {
        return tl::unexpected(capa.error());
    }
    m_capabilities = std::move(*capa);
    if (m_account.tls == TlsMode::starttls) {
        m_report.server.capabilities_before_tls = m_capabilities;
        if (!capability("STLS")) {
            return tl::unexpected(Failure{Outcome::tls,
                                          "the server does not offer STLS, and the account requires it "
                                          "(no fall-back to plaintext)"});
        }
        send(Command{command::Stls{}});
        auto started = next();
        if (!started) {
            return tl::unexpected(started.error());
        }
        if (auto* refused = std::get_if<event::Status>(&*started)) {
            return tl::unexpected(
                Failure{Outcome::tls, "the server refused STLS: " + reply_line(refused->reply)});
        }
        if (!std::holds_alternative<event::StartTls>(*started)) {
            return tl::unexpected(Failure{Outcome::protocol, "unexpected answer to STLS"});
        }
        if (auto done = handshake(); !done) {
            return done;
        }
        m_session.on_tls_started();
        // RFC 2595 §4: the capabilities learnt before TLS are forgotten.
        auto again = capabilities();
        if (!again) {
            return tl::unexpected(again.error());
        }
        m_capabilities = std::move(*again);
    }
    m_report.server.capabilities = m_capabilities;
    return {};
}

Step<SecretString> Driver::password()
{
    if (m_password) {
        return SecretString(std::string(m_password->view()));
    }
    if (!m_account.password_command.empty()) {
        auto secret = run_secret_command(m_account.password_command);
        if (!secret) {
            return tl::unexpected(Failure{Outcome::config, "password_command: " + secret.error()});
        }
        m_password = SecretString(std::string(secret->view()));
        return std::move(*secret);
    }
    if (m_options.prompt_password) {
        if (auto typed = m_options.prompt_password(m_account)) {
            m_password = SecretString(std::string(typed->view()));
            return std::move(*typed);
        }
    }
    return tl::unexpected(Failure{Outcome::config,
                                  "no password: set password_command, or run on a terminal to be "
                                  "asked for it"});
}

Step<bool> Driver::sasl_exchange(const std::string& mechanism, sasl::ClientMechanism& client)
{
    const bool oauth = mechanism == "XOAUTH2" || mechanism == "OAUTHBEARER";
    auto initial = client.initial_response();
    // RFC 5034 §4: an initial response must fit the 255-octet command line; XOAUTH2 and
    // OAUTHBEARER tokens do not (Microsoft 365 wants them on a line of their own).
    const bool inline_initial =
        initial && (oauth ? m_account.sasl_initial_response
                          : base64_encode(*initial).size() + mechanism.size() + 7 <= 255);
    if (inline_initial) {
        send(Command{command::Auth{mechanism, initial->empty() ? "=" : base64_encode(*initial)}});
    } else {
        send(Command{command::Auth{mechanism, std::nullopt}});
    }
    bool initial_pending = initial.has_value() && !inline_initial;
    std::string our_failure; // set when Pigeon itself could not answer and cancelled
    for (;;) {
        auto ev = next();
        if (!ev) {
            return tl::unexpected(ev.error());
        }
        if (auto* challenge = std::get_if<event::Continuation>(&*ev)) {
            if (initial_pending) {
                initial_pending = false;
                send_sasl(initial->empty() ? std::string() : base64_encode(*initial));
                continue;
            }
            auto decoded = base64_decode(challenge->challenge_base64);
            if (!decoded) {
                our_failure = "the server's challenge is not base64";
                send_sasl("*");
                continue;
            }
            auto answer = client.respond(*decoded);
            if (!answer) {
                our_failure =
                    fmt::format("cannot answer the server's challenge: {}", answer.error().message());
            }
            send_sasl(answer ? base64_encode(*answer) : std::string("*"));
            continue;
        }
        if (auto* done = std::get_if<event::Status>(&*ev)) {
            if (done->reply.ok()) {
                m_report.mechanism = mechanism;
                return true;
            }
            if (!our_failure.empty()) {
                // Pigeon cancelled the exchange (RFC 5034 §4 "*"): not the server's refusal.
                return tl::unexpected(
                    Failure{Outcome::protocol, fmt::format("{}: {}", mechanism, our_failure)});
            }
            return tl::unexpected(Failure{classify(done->reply, Outcome::auth),
                                          fmt::format("{} refused: {}", mechanism, reply_line(done->reply))});
        }
        return tl::unexpected(Failure{Outcome::protocol, "unexpected answer during AUTH"});
    }
}

// True when logged in; false when the server refused this mechanism in a way that lets another
// be tried (it is not offered after all); a Failure for a refusal of the credentials.
Step<bool> Driver::authenticate(const std::string& mechanism)
{
    const bool oauth = mechanism == "XOAUTH2" || mechanism == "OAUTHBEARER";
    if (mechanism == "USER") {
        auto secret = password();
        if (!secret) {
            return tl::unexpected(secret.error());
        }
        send(Command{command::User{m_account.user}});
        auto user_reply = status();
        if (!user_reply) {
            return tl::unexpected(user_reply.error());
        }
        if (!user_reply->ok()) {
            return tl::unexpected(
                Failure{classify(*user_reply, Outcome::auth), "USER refused: " + reply_line(*user_reply)});
        }
        send(Command{command::Pass{std::move(*secret)}});
    } else if (mechanism == "APOP") {
        auto secret = password();
        if (!secret) {
            return tl::unexpected(secret.error());
        }
        send(Command{command::Apop{m_account.user, apop_digest(*m_apop_timestamp, secret->view())}});
    } else {
        std::unique_ptr<sasl::ClientMechanism> client;
        if (oauth) {
            auto token = run_secret_command(m_account.oauth_token_command);
            if (!token) {
                return tl::unexpected(Failure{Outcome::config, "oauth_token_command: " + token.error()});
            }
            client = sasl::make_bearer_client(mechanism, m_account.user, std::move(*token), m_account.host,
                                              m_account.effective_port());
        } else if (mechanism == "EXTERNAL") {
            client = sasl::make_external_client(m_account.user);
        } else {
            auto secret = password();
            if (!secret) {
                return tl::unexpected(secret.error());
            }
            if (sasl::is_scram_mechanism(mechanism)) {
                sasl::MechanismContext context;
                // Channel-binding data only for the -PLUS variants: GNU SASL refuses to start
                // a plain SCRAM client that has it (it would have to claim "y" or "p").
                if (m_transport.ssl() != nullptr && mechanism.ends_with("-PLUS")) {
                    context.tls_exporter = tls::tls_exporter(m_transport.ssl());
                }
                client = sasl::make_scram_client(mechanism, "", m_account.user, std::move(*secret), context);
            } else if (mechanism == "CRAM-MD5") {
                client = sasl::make_cram_md5_client(m_account.user, std::move(*secret));
            } else if (mechanism == "PLAIN") {
                client = sasl::make_plain_client("", m_account.user, std::move(*secret));
            } else if (mechanism == "LOGIN") {
                client = sasl::make_login_client(m_account.user, std::move(*secret));
            }
        }
        if (!client) {
            return tl::unexpected(Failure{Outcome::auth, fmt::format("{} cannot be used here", mechanism)});
        }
        return sasl_exchange(mechanism, *client);
    }
    auto reply = status();
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!reply->ok()) {
        return tl::unexpected(Failure{classify(*reply, Outcome::auth),
                                      fmt::format("{} refused: {}", mechanism, reply_line(*reply))});
    }
    m_report.mechanism = mechanism;
    return true;
}

Step<void> Driver::login()
{
    const bool secure = m_transport.secure();
    const bool plaintext_ok = secure || m_account.allow_plaintext;
    std::vector<std::string> offered;
    if (const auto sasl_line = capability("SASL")) {
        std::string_view rest = *sasl_line;
        while (!rest.empty()) {
            const auto space = rest.find(' ');
            offered.push_back(to_ascii_upper(rest.substr(0, space)));
            rest.remove_prefix(space == std::string_view::npos ? rest.size() : space + 1);
        }
    }
    const auto offers = [&offered](std::string_view name) {
        return std::find(offered.begin(), offered.end(), name) != offered.end();
    };
    const bool has_exporter = m_transport.ssl() != nullptr && !tls::tls_exporter(m_transport.ssl()).empty();
    std::vector<std::string> candidates;
    if (m_account.auth != "auto") {
        candidates.push_back(m_account.auth);
    } else {
        if (!m_account.oauth_token_command.empty()) {
            candidates.insert(candidates.end(), {"OAUTHBEARER", "XOAUTH2"});
        }
        if (!m_account.client_certificate.empty() && secure) {
            candidates.emplace_back("EXTERNAL");
        }
        if (has_exporter) {
            candidates.insert(candidates.end(), {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"});
        }
        candidates.insert(candidates.end(), {"SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "APOP"});
        if (plaintext_ok) {
            candidates.insert(candidates.end(), {"PLAIN", "LOGIN", "USER"});
        }
    }
    const bool explicit_choice = m_account.auth != "auto";
    for (const auto& mechanism : candidates) {
        const bool plaintext = mechanism == "PLAIN" || mechanism == "LOGIN" || mechanism == "USER";
        if (plaintext && !plaintext_ok) {
            return tl::unexpected(
                Failure{Outcome::config, fmt::format("{} would send the password in the clear", mechanism)});
        }
        bool available = false;
        if (mechanism == "USER") {
            available = explicit_choice || capability("USER").has_value() || m_capabilities.empty();
        } else if (mechanism == "APOP") {
            available = m_apop_timestamp.has_value();
        } else {
            available = explicit_choice || offers(mechanism);
        }
        if (!available) {
            continue;
        }
        if (plaintext && !secure) {
            m_report.warnings.push_back(
                fmt::format("{}: the password goes in the clear (allow_plaintext)", mechanism));
        }
        auto done = authenticate(mechanism);
        if (!done) {
            return tl::unexpected(done.error());
        }
        return {};
    }
    if (explicit_choice && m_account.auth == "APOP") {
        return tl::unexpected(Failure{Outcome::auth, "APOP: the greeting has no timestamp"});
    }
    return tl::unexpected(
        Failure{Outcome::auth,
                fmt::format("no authentication mechanism in common with the server "
                            "(it offers: {}{})",
                            offered.empty() ? "no SASL" : fmt::format("SASL {}", fmt::join(offered, " ")),
                            capability("USER") ? ", USER" : "")});
}

void Driver::after_login_capabilities()
{
    if (const auto delay = capability("LOGIN-DELAY")) {
        try {
            m_report.login_delay = std::chrono::seconds(std::stoul(delay->substr(0, delay->find(' '))));
        } catch (const std::exception&) {
            // not a number: ignored
        }
    }
    if (const auto expire = capability("EXPIRE")) {
        const std::string value = to_ascii_upper(expire->substr(0, expire->find(' ')));
        if (value == "0" && m_account.keep) {
            m_report.warnings.emplace_back(
                "the server deletes every message once retrieved (EXPIRE 0), although "
                "keep = true");
        } else if (value != "NEVER" && !value.empty() && m_account.keep) {
            try {
                const unsigned long days = std::stoul(value);
                if (m_account.delete_after_days == 0 || days < m_account.delete_after_days) {
                    m_report.warnings.push_back(fmt::format("the server deletes retrieved messages after {} "
                                                            "days (EXPIRE), before the keep policy would",
                                                            days));
                }
            } catch (const std::exception&) {
            }
        }
    }
}

Step<void> Driver::run()
{
    if (!m_options.serverinfo_only) {
        // The state before the connection: a second run of the same account stops here, as a
        // temporary failure (the first is still at work).
        auto state = FetchState::open(state_path(m_account));
        if (!state) {
            const bool busy = state.error().find("another pigeon fetch") != std::string::npos;
            return tl::unexpected(Failure{busy ? Outcome::temporary : Outcome::config, state.error()});
        }
        m_state.emplace(std::move(*state));
    }
    if (auto connected = connect(); !connected) {
        return connected;
    }
    if (m_options.serverinfo_only) {
        send(Command{command::Quit{}});
        (void)status();
        return {};
    }
    SinkOptions sink_options;
    sink_options.account = m_account.name;
    sink_options.spool_directory = state_path(m_account) + ".spool";
    if (m_account.deliver_to.starts_with("imap:")) {
        auto& imap = sink_options.imap;
        imap.user = m_account.imap_user;
        imap.secret_is_token = !m_account.imap_oauth_token_command.empty();
        const auto& secret_command =
            imap.secret_is_token ? m_account.imap_oauth_token_command : m_account.imap_password_command;
        auto secret = run_secret_command(secret_command);
        if (!secret) {
            return tl::unexpected(Failure{
                Outcome::config,
                fmt::format("{}: {}",
                            imap.secret_is_token ? "imap_oauth_token_command" : "imap_password_command",
                            secret.error())});
        }
        imap.secret = std::move(*secret);
        imap.ca_file = expand_home(m_account.imap_ca_file);
        imap.allow_plaintext = m_account.imap_allow_plaintext;
        imap.mark_seen = m_account.imap_mark_seen;
        imap.connect_timeout = m_account.connect_timeout;
        imap.timeout = m_account.timeout;
    }
    auto sink = make_sink(m_account.deliver_to, std::move(sink_options));
    if (!sink) {
        return tl::unexpected(Failure{Outcome::config, sink.error()});
    }
    m_sink = std::move(*sink);
    if (auto ready = m_sink->prepare(); !ready) {
        const auto kind = ready.error().kind;
        return tl::unexpected(Failure{kind == SinkTrouble::Kind::auth     ? Outcome::auth
                                      : kind == SinkTrouble::Kind::config ? Outcome::config
                                                                          : Outcome::temporary,
                                      ready.error().message});
    }
    // Deliveries a killed run left half-way: find out whether they happened.
    const auto pending = m_state->pending();
    for (const auto& left : pending) {
        auto happened = m_sink->resolve(left.target);
        if (!happened) {
            return tl::unexpected(Failure{Outcome::temporary, happened.error()});
        }
        auto noted = *happened ? m_state->record(left.uid, m_options.clock()) : m_state->abandon(left.uid);
        if (!noted) {
            return tl::unexpected(Failure{Outcome::temporary, noted.error()});
        }
        m_report.recovered += *happened ? 1 : 0;
    }
    if (auto logged_in = login(); !logged_in) {
        return logged_in;
    }
    auto capa = capabilities();
    if (!capa) {
        return tl::unexpected(capa.error());
    }
    if (!capa->empty()) {
        m_capabilities = std::move(*capa);
    }
    after_login_capabilities();
    return transfer();
}

} // namespace

Step<std::vector<ServerMessage>> Driver::list_messages()
{
    std::map<std::uint32_t, ServerMessage> by_number;
    auto uidl = listing(Command{command::Uidl{}});
    if (!uidl) {
        return tl::unexpected(uidl.error());
    }
    auto sizes = listing(Command{command::List{}});
    if (!sizes) {
        return tl::unexpected(sizes.error());
    }
    if (!sizes->has_value()) {
        return tl::unexpected(Failure{classify(sizes->error(), Outcome::protocol),
                                      "LIST refused: " + reply_line(sizes->error())});
    }
    for (const auto& line : **sizes) {
        const auto entry = numbered(line);
        std::uint64_t octets = 0;
        if (!entry ||
            std::from_chars(entry->second.data(), entry->second.data() + entry->second.size(), octets).ec !=
                std::errc()) {
            return tl::unexpected(
                Failure{Outcome::protocol, fmt::format("malformed LIST line \"{}\"", line)});
        }
        by_number[entry->first] = ServerMessage{entry->first, {}, octets};
    }
    if (uidl->has_value()) {
        for (const auto& line : **uidl) {
            const auto entry = numbered(line);
            if (!entry) {
                return tl::unexpected(
                    Failure{Outcome::protocol, fmt::format("malformed UIDL line \"{}\"", line)});
            }
            if (auto found = by_number.find(entry->first); found != by_number.end()) {
                found->second.uid = entry->second;
            }
        }
    } else if (capability("UIDL") || !uidl->error().code.empty()) {
        // UIDL is offered (or the refusal carries a response code such as [SYS/TEMP] or
        // [IN-USE]): a passing trouble, not a server without UIDL.
        return tl::unexpected(Failure{classify(uidl->error(), Outcome::temporary),
                                      "UIDL refused: " + reply_line(uidl->error())});
    } else {
        // No UIDL (RFC 1939 makes it optional, and CAPA does not list it): a unique-id from the
        // message's header section
        // and size, read with TOP n 0 (docs/fetch.md, "What happens in a run").
        m_report.warnings.emplace_back(
            "the server has no UIDL: unique-ids are made from each message's header and "
            "size (TOP n 0)");
        for (auto& [number, message] : by_number) {
            auto uid = header_uid(message);
            if (!uid) {
                return tl::unexpected(uid.error());
            }
            message.uid = std::move(*uid);
        }
    }
    std::vector<ServerMessage> messages;
    std::set<std::string> seen_uids;
    for (auto& [number, message] : by_number) {
        if (!FetchState::valid_uid(message.uid)) {
            m_report.warnings.push_back(fmt::format(
                "message {} has no usable unique-id: left on the server, not downloaded", number));
        } else if (!seen_uids.insert(message.uid).second) {
            m_report.warnings.push_back(
                fmt::format("message {} repeats the unique-id {}: left on the server, not downloaded", number,
                            message.uid));
        } else {
            messages.push_back(std::move(message));
        }
    }
    return messages;
}

Step<std::string> Driver::header_uid(const ServerMessage& message)
{
    send(Command{command::Top{MessageNumber{message.number}, 0}});
    auto reply = status();
    if (!reply) {
        return tl::unexpected(reply.error());
    }
    if (!reply->ok()) {
        return tl::unexpected(
            Failure{Outcome::protocol,
                    "the server has neither UIDL nor TOP: cannot tell new messages from old ones"});
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> digest(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(digest.get(), EVP_sha256(), nullptr);
    for (;;) {
        auto ev = next();
        if (!ev) {
            return tl::unexpected(ev.error());
        }
        if (std::holds_alternative<event::End>(*ev)) {
            break;
        }
        if (const auto* data = std::get_if<event::BodyData>(&*ev)) {
            EVP_DigestUpdate(digest.get(), data->bytes.data(), data->bytes.size());
        }
    }
    const std::string size_text = std::to_string(message.octets);
    EVP_DigestUpdate(digest.get(), size_text.data(), size_text.size());
    std::array<unsigned char, EVP_MAX_MD_SIZE> value{};
    unsigned int length = 0;
    EVP_DigestFinal_ex(digest.get(), value.data(), &length);
    std::string uid(header_uid_prefix);
    for (unsigned int i = 0; i < 16; ++i) {
        uid += fmt::format("{:02x}", value[i]);
    }
    return uid;
}

void Driver::plan(const std::vector<ServerMessage>& messages, Transfer& transfer)
{
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const auto& message = messages[i];
        if (const auto first = m_state->first_download(message.uid)) {
            const bool expired =
                m_account.delete_after_days > 0 &&
                transfer.now - *first >= static_cast<std::time_t>(m_account.delete_after_days) * 86400;
            if (!m_account.keep || expired) {
                transfer.to_delete.push_back(message.number);
            }
            continue;
        }
        if (m_account.size_limit > 0 && message.octets > m_account.size_limit) {
            ++m_report.skipped_too_big;
            if (m_account.size_action == SizeAction::remove) {
                transfer.to_delete.push_back(message.number);
                m_report.warnings.push_back(
                    fmt::format("message {} ({} octets) is over size_limit: deleted unread", message.number,
                                message.octets));
            }
            continue;
        }
        transfer.to_fetch.push_back(i);
        transfer.progress.octets_total += message.octets;
    }
    m_report.new_messages = transfer.to_fetch.size();
    transfer.progress.messages_total = transfer.to_fetch.size();
}

// Sends what the window allows: deletions first (they are small and free the server). Without
// PIPELINING one command at a time (RFC 2449 §6.6).
void Driver::fill_window(const std::vector<ServerMessage>& messages, Transfer& transfer)
{
    for (;;) {
        const bool room = transfer.pipelining ? transfer.retrs_outstanding < transfer.window &&
                                                    transfer.outstanding.size() < transfer.window * 2
                                              : transfer.outstanding.empty();
        if (!room) {
            return;
        }
        if (!transfer.to_delete.empty()) {
            send(Command{command::Dele{MessageNumber{transfer.to_delete.front()}}});
            transfer.outstanding.push_back({false, 0, transfer.to_delete.front()});
            transfer.to_delete.pop_front();
            fault(m_options, "dele-sent");
        } else if (!transfer.to_fetch.empty()) {
            send(Command{command::Retr{MessageNumber{messages[transfer.to_fetch.front()].number}}});
            transfer.outstanding.push_back({true, transfer.to_fetch.front(), 0});
            ++transfer.retrs_outstanding;
            transfer.to_fetch.pop_front();
        } else {
            return;
        }
    }
}

void Driver::on_status(const Reply& reply, const std::vector<ServerMessage>& messages, Transfer& transfer)
{
    const Transfer::Outstanding head = transfer.outstanding.front();
    if (!head.retr) {
        transfer.outstanding.pop_front();
        if (reply.ok()) {
            ++m_report.deleted;
        } else {
            m_report.warnings.push_back(fmt::format("DELE {} refused: {}", head.number, reply_line(reply)));
        }
        return;
    }
    if (!reply.ok()) {
        transfer.outstanding.pop_front();
        --transfer.retrs_outstanding;
        ++m_report.failed;
        m_report.warnings.push_back(
            fmt::format("RETR {} refused: {}", messages[head.index].number, reply_line(reply)));
        return;
    }
    transfer.receiving = true;
    transfer.current_octets = 0;
    transfer.error.clear();
    transfer.converter = CrlfToLf{};
    auto begun = m_sink->begin();
    if (!begun) {
        transfer.fail_current(begun.error());
        return;
    }
    transfer.current = std::move(*begun);
    if (m_account.received_header) {
        const auto& message = messages[head.index];
        const std::string line = fmt::format(
            "Received: from {} ({})\n\tby {} with {} (Pigeon fetch)\n\tfor <{}> id {};\n\t{}\n",
            m_account.host, m_report.server.address, m_local_host, m_transport.secure() ? "POP3S" : "POP3",
            m_account.user, message.uid, rfc5322_date(transfer.now));
        if (auto written = transfer.current->write(line); !written) {
            transfer.fail_current(written.error());
        }
    }
}

Step<void> Driver::on_body(std::string_view bytes, const std::vector<ServerMessage>& messages,
                           Transfer& transfer)
{
    transfer.progress.octets_done += bytes.size();
    transfer.current_octets += bytes.size();
    // A server that streams far more than LIST announced would fill the disk behind size_limit's
    // back: the connection is dropped (the message stays on the server).
    // (Saturating: a LIST size near 2^64 must not wrap the bound round to a few octets.)
    const std::uint64_t announced = messages[transfer.outstanding.front().index].octets;
    const std::uint64_t slack = announced / 2 + std::uint64_t{1024} * 1024;
    const std::uint64_t bound = announced > std::numeric_limits<std::uint64_t>::max() - slack
                                    ? std::numeric_limits<std::uint64_t>::max()
                                    : announced + slack;
    if (transfer.current_octets > bound) {
        return tl::unexpected(Failure{
            Outcome::protocol, fmt::format("message {} is far larger than the {} octets LIST announced",
                                           messages[transfer.outstanding.front().index].number, announced)});
    }
    if (transfer.current) {
        transfer.converted.clear();
        transfer.converter.feed(bytes, transfer.converted);
        if (auto written = transfer.current->write(transfer.converted); !written) {
            transfer.fail_current(written.error());
        }
    }
    if (m_options.progress) {
        m_options.progress(transfer.progress);
    }
    return {};
}

// The end of a message: it joins the group waiting for the next commit.
void Driver::on_end(const std::vector<ServerMessage>& messages, Transfer& transfer)
{
    transfer.receiving = false;
    const Transfer::Outstanding head = transfer.outstanding.front();
    transfer.outstanding.pop_front();
    --transfer.retrs_outstanding;
    ++transfer.progress.messages_done;
    if (transfer.current) {
        transfer.converted.clear();
        transfer.converter.finish(transfer.converted);
        SinkResult finished = transfer.current->write(transfer.converted);
        if (finished) {
            finished = transfer.current->finish();
        }
        if (finished) {
            if (transfer.batch.empty()) {
                transfer.batch_started = std::chrono::steady_clock::now();
            }
            transfer.batch.push_back({std::move(transfer.current), head.index});
            transfer.batch_octets += transfer.current_octets;
        } else {
            transfer.fail_current(finished.error());
        }
        transfer.current.reset();
    }
    if (!transfer.error.empty()) {
        ++m_report.failed;
        m_report.warnings.push_back(fmt::format("message {} not stored (left on the server): {}",
                                                messages[head.index].number, transfer.error));
        transfer.error.clear();
    }
    if (m_options.progress) {
        m_options.progress(transfer.progress);
    }
}

// Stores a group: durable where nobody sees it (one sync), targets journalled, published,
// recorded (one journal sync each). Runs on the committer thread; touches only the sink's
// group, the state and its own result (the DELEs it allows are sent by the receiving thread).
Committed Driver::commit_group(const std::vector<ServerMessage>& messages, std::vector<Waiting> group,
                               std::time_t now)
{
    Committed result;
    std::vector<SinkMessage*> pointers;
    for (const auto& waiting : group) {
        pointers.push_back(waiting.message.get());
    }
    const auto fail_all = [&](const std::string& why) {
        for (const auto& waiting : group) {
            ++result.failed;
            result.warnings.push_back(fmt::format("message {} not stored (left on the server): {}",
                                                  messages[waiting.index].number, why));
        }
    };
    if (auto synced = m_sink->sync(pointers); !synced) {
        fail_all(synced.error());
        return result;
    }
    fault(m_options, "prepared");
    std::size_t intended = 0;
    auto results = m_sink->publish(pointers, [&](const std::vector<std::string>& targets) -> SinkResult {
        std::vector<FetchState::Pending> deliveries;
        for (const auto& target : targets) {
            deliveries.push_back({messages[group.at(intended++).index].uid, target});
        }
        auto noted = m_state->intend(deliveries);
        fault(m_options, "intended");
        return noted;
    });
    fault(m_options, "published");
    std::vector<std::string> stored;
    for (std::size_t i = 0; i < group.size(); ++i) {
        const auto& message = messages[group[i].index];
        if (results.at(i)) {
            stored.push_back(message.uid);
            result.stored_numbers.push_back(message.number);
            result.stored_octets += message.octets;
        } else {
            // Its journalled target (if any) is settled at the next run: resolve() is the judge.
            ++result.failed;
            result.warnings.push_back(fmt::format("message {} not stored (left on the server): {}",
                                                  message.number, results[i].error()));
        }
    }
    group.clear(); // unpublished messages remove their files here, before the record
    if (!stored.empty()) {
        if (auto recorded = m_state->record(stored, now); !recorded) {
            result.fatal = Failure{Outcome::temporary, recorded.error()};
            result.stored_numbers.clear();
            return result;
        }
        fault(m_options, "recorded");
    }
    return result;
}

void Driver::apply(Committed&& committed, Transfer& transfer)
{
    m_report.stored += committed.stored_numbers.size();
    m_report.stored_octets += committed.stored_octets;
    m_report.failed += committed.failed;
    for (auto& warning : committed.warnings) {
        m_report.warnings.push_back(std::move(warning));
    }
    if (!m_account.keep) {
        transfer.to_delete.insert(transfer.to_delete.end(), committed.stored_numbers.begin(),
                                  committed.stored_numbers.end());
    }
}

Step<void> Driver::transfer()
{
    auto listed = list_messages();
    if (!listed) {
        return tl::unexpected(listed.error());
    }
    const std::vector<ServerMessage>& messages = *listed;
    m_report.on_server = messages.size();

    // What the server no longer has is forgotten (it can never come back under the same id).
    std::vector<std::string> gone;
    std::set<std::string_view> listed_uids;
    for (const auto& message : messages) {
        listed_uids.insert(message.uid);
    }
    // Only ids of the scheme in use now are judged (a server whose UIDL failed once must not
    // make every real unique-id look gone), and an empty listing judges nothing (a home not
    // mounted at the server looks like an empty mailbox).
    const bool header_ids = !messages.empty() && messages.front().uid.starts_with(header_uid_prefix);
    for (const auto& [uid, when] : m_state->entries()) {
        if (!messages.empty() && uid.starts_with(header_uid_prefix) == header_ids &&
            !listed_uids.contains(uid)) {
            gone.push_back(uid);
        }
    }
    if (auto forgotten = m_state->forget(gone); !forgotten) {
        return tl::unexpected(Failure{Outcome::temporary, forgotten.error()});
    }

    Transfer transfer;
    transfer.now = m_options.clock();
    transfer.pipelining = capability("PIPELINING").has_value();
    transfer.window = transfer.pipelining ? m_account.pipeline_window : 1;
    m_local_host = local_host_name();
    plan(messages, transfer);
    if (m_options.progress) {
        m_options.progress(transfer.progress);
    }
    // Groups are committed on a second thread while the next messages arrive: the network and
    // the disk work at the same time. One group in flight; the next waits for it.
    Committer committer;
    // A failure ends the transfer (a cut connection, a timeout, a broken protocol), but the
    // messages already received whole are stored and recorded first, as a group is whenever no
    // more messages are on the way: a server that fails on one message must not cost the ones
    // before it (they would be downloaded again, and again, from a server that always fails
    // there). The message being received is abandoned (its file is removed).
    // The groups the committer has finished are applied (their messages recorded, DELE queued),
    // or their fatal error ends the run.
    const auto apply_finished = [&]() -> Step<void> {
        for (auto& done : committer.take_finished()) {
            if (done.fatal) {
                return tl::unexpected(*done.fatal);
            }
            apply(std::move(done), transfer);
        }
        return {};
    };
    const auto give_up = [&](Failure failure) -> Step<void> {
        transfer.current.reset();
        if (committer.busy()) {
            committer.wait();
        }
        if (auto applied = apply_finished(); !applied) {
            return applied;
        }
        if (!transfer.batch.empty()) {
            Committed last = commit_group(messages, std::move(transfer.batch), transfer.now);
            transfer.batch.clear();
            if (last.fatal) {
                return tl::unexpected(*last.fatal);
            }
            apply(std::move(last), transfer);
        }
        return tl::unexpected(std::move(failure));
    };
    for (;;) {
        if (auto applied = apply_finished(); !applied) {
            return applied;
        }
        const bool receiving_more = transfer.retrs_outstanding > 0 || !transfer.to_fetch.empty();
        const bool batch_due =
            !transfer.batch.empty() && !transfer.receiving &&
            (!receiving_more || transfer.batch.size() >= m_options.batch_messages ||
             transfer.batch_octets >= m_options.batch_octets ||
             std::chrono::steady_clock::now() - transfer.batch_started >= m_options.batch_age);
        if (batch_due && !committer.busy()) {
            // (std::function needs a copyable callable: the group travels in a shared_ptr.)
            auto group = std::make_shared<std::vector<Waiting>>(std::move(transfer.batch));
            committer.start([this, &messages, group, now = transfer.now] {
                return commit_group(messages, std::move(*group), now);
            });
            transfer.batch.clear();
            transfer.batch_octets = 0;
            continue;
        }
        const bool idle_network =
            transfer.outstanding.empty() && transfer.to_delete.empty() && transfer.to_fetch.empty();
        if (idle_network && committer.busy()) {
            committer.wait(); // nothing to read until this group is stored (or the next may start)
            continue;
        }
        if (transfer.to_fetch.empty() && transfer.to_delete.empty() && transfer.outstanding.empty() &&
            transfer.batch.empty()) {
            break;
        }
        if (batch_due && committer.busy() && transfer.batch.size() >= 2 * m_options.batch_messages) {
            committer.wait(); // bounded: at most two groups of messages wait on this side
            continue;
        }
        fill_window(messages, transfer);
        auto ev = next();
        if (!ev) {
            return give_up(ev.error());
        }
        if (const auto* reply = std::get_if<event::Status>(&*ev)) {
            if (transfer.outstanding.empty()) {
                return give_up(Failure{Outcome::protocol, "the server answered a command never sent"});
            }
            on_status(reply->reply, messages, transfer);
        } else if (const auto* data = std::get_if<event::BodyData>(&*ev)) {
            if (!transfer.receiving) {
                return give_up(Failure{Outcome::protocol, "message data out of turn"});
            }
            if (auto taken = on_body(data->bytes, messages, transfer); !taken) {
                return give_up(taken.error());
            }
        } else if (std::holds_alternative<event::End>(*ev)) {
            if (!transfer.receiving || transfer.outstanding.empty()) {
                return give_up(Failure{Outcome::protocol, "end of a message out of turn"});
            }
            on_end(messages, transfer);
        } else {
            return give_up(Failure{Outcome::protocol, "unexpected event from the server"});
        }
    }
    return finish();
}

Step<void> Driver::finish()
{
    fault(m_options, "quit");
    send(Command{command::Quit{}});
    auto bye = status();
    if (!bye) {
        m_report.warnings.push_back("no answer to QUIT: the server may not have deleted anything (" +
                                    bye.error().message + ")");
        m_report.deleted = 0;
    } else if (!bye->ok()) {
        m_report.warnings.push_back("QUIT refused, nothing deleted: " + reply_line(*bye));
        m_report.deleted = 0;
    }
    if (auto saved = m_state->save(); !saved) {
        return tl::unexpected(Failure{Outcome::temporary, saved.error()});
    }
    if (m_report.failed > 0) {
        return tl::unexpected(
            Failure{Outcome::temporary, fmt::format("{} message(s) could not be stored", m_report.failed)});
    }
    return {};
}

std::string_view outcome_name(Outcome outcome) noexcept
{
    switch (outcome) {
    case Outcome::fetched: return "fetched";
    case Outcome::nothing_new: return "nothing-new";
    case Outcome::temporary: return "temporary-failure";
    case Outcome::protocol: return "protocol-error";
    case Outcome::tls: return "tls-failure";
    case Outcome::auth: return "auth-failure";
    case Outcome::config: return "config-error";
    }
    return "unknown";
}

int exit_code(Outcome outcome) noexcept
{
    switch (outcome) {
    case Outcome::fetched: return 0;
    case Outcome::nothing_new: return 1;
    case Outcome::temporary: return 75;
    case Outcome::protocol: return 76;
    case Outcome::auth: return 77;
    case Outcome::config: return 78;
    case Outcome::tls: return 79;
    }
    return 75;
}

Outcome worse(Outcome a, Outcome b) noexcept
{
    // fetched < nothing_new in badness? A run that fetched from one account and found nothing in
    // another fetched something: exit 0.
    const auto rank = [](Outcome o) {
        switch (o) {
        case Outcome::nothing_new: return 0;
        case Outcome::fetched: return 1;
        case Outcome::temporary: return 2;
        case Outcome::protocol: return 3;
        case Outcome::tls: return 4;
        case Outcome::auth: return 5;
        case Outcome::config: return 6;
        }
        return 2;
    };
    return rank(a) >= rank(b) ? a : b;
}

std::string state_path(const Account& account)
{
    if (!account.state_file.empty()) {
        return account.state_file;
    }
    std::string name = account.name;
    for (char& c : name) {
        if (c == '/' || c == '\0') {
            c = '_';
        }
    }
    if (name.empty() || name.front() == '.') {
        name = "_" + name;
    }
    return default_state_directory() + "/" + name + ".state";
}

FetchReport fetch(const Account& account, const FetchOptions& options)
{
    FetchReport report;
    report.account = account.name;
    const auto started = std::chrono::steady_clock::now();
    Driver driver(account, options, report);
    auto done = driver.run();
    if (!done) {
        report.outcome = done.error().outcome;
        report.error = done.error().message;
    } else {
        report.outcome = report.stored > 0 ? Outcome::fetched : Outcome::nothing_new;
    }
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return report;
}

} // namespace pigeon::client
