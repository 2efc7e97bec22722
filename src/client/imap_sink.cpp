// The IMAP target of pigeon fetch: each message is APPENDed to a mailbox through libcurl's IMAP
// support (imaps://, or imap:// with STARTTLS required), logging in with a password or an OAuth
// 2.0 bearer token (XOAUTH2 / OAUTHBEARER, with the initial response in the first line).
//
// libcurl hands a custom command's untagged answers to us only when they are named like the
// command ("SEARCH" for SEARCH, not for UID SEARCH), so the search and fetch use message
// sequence numbers, within the one session that selected the mailbox.
//
// The steps of sink.hpp: the message is spooled and synced like a command's; publish() journals
// "imap SPOOL OCTETS MESSAGE-ID" and APPENDs. A killed run's resolve() asks the server: a message
// of that Message-ID and of that size (CRLF octets) in the mailbox is the one the run appended.
// A message without a usable Message-ID cannot be found again, so it is appended again (at least
// once, as with a delivery command).
//
// libcurl APPENDs with the \Seen flag; unless mark_seen, a group's APPENDs are followed by one
// UID STORE that takes \Seen off every message from the UIDNEXT the mailbox had before them.
#include "client/imap_sink.hpp"

#include "client/sink_support.hpp"
#include "core/strings.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <curl/curl.h>
#include <fmt/format.h>
#include <memory>
#include <mutex>
#include <optional>
#include <unistd.h>

namespace pigeon::client {
namespace {

using namespace detail; // NOLINT(google-build-using-namespace): the sinks' shared helpers

// What one command may answer (a SEARCH of a mailbox full of one Message-ID is still small).
constexpr std::size_t max_answer_octets = std::size_t{1024} * 1024;
// How much of a message's start is read to find its Message-ID.
constexpr std::size_t max_header_scan = std::size_t{64} * 1024;

void global_init()
{
    static std::once_flag once;
    std::call_once(once, [] { (void)curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
    void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
struct CurlUrlDeleter {
    void operator()(CURLU* url) const noexcept { curl_url_cleanup(url); }
};
struct CurlStringDeleter {
    void operator()(char* text) const noexcept { curl_free(text); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

std::size_t collect(char* data, std::size_t size, std::size_t count, void* user)
{
    auto* answer = static_cast<std::string*>(user);
    const std::size_t octets = size * count;
    if (answer->size() + octets > max_answer_octets) {
        return 0; // CURLE_WRITE_ERROR: a server cannot make us hold more
    }
    answer->append(data, octets);
    return octets;
}

// The spooled message (LF line ends) as IMAP wants it: CRLF.
struct Upload {
    int fd = -1;
    std::uint64_t offset = 0;
    std::uint64_t octets = 0;
    bool pending_lf = false; // a CR went out, its LF did not fit
    bool failed = false;
    std::array<char, std::size_t{64} * 1024> buffer{};
};

std::size_t produce(char* out, std::size_t size, std::size_t count, void* user)
{
    auto* upload = static_cast<Upload*>(user);
    const std::size_t room = size * count;
    std::size_t made = 0;
    if (upload->pending_lf && room > 0) {
        out[made++] = '\n';
        upload->pending_lf = false;
    }
    // Read at most half the room (at least one octet), so that every LF can become CRLF; a LF
    // that does not fit after its CR waits for the next call.
    const std::uint64_t left = upload->octets - upload->offset;
    const auto want = std::min<std::uint64_t>(
        {std::max<std::size_t>((room - made) / 2, room > made ? 1 : 0), upload->buffer.size(), left});
    if (want == 0) {
        return made; // 0 only at the end: libcurl reads 0 as the end of the message
    }
    const ssize_t got = ::pread(upload->fd, upload->buffer.data(), want, static_cast<off_t>(upload->offset));
    if (got <= 0) {
        upload->failed = true;
        return CURL_READFUNC_ABORT;
    }
    upload->offset += static_cast<std::uint64_t>(got);
    for (ssize_t i = 0; i < got; ++i) {
        const char c = upload->buffer[static_cast<std::size_t>(i)];
        if (c != '\n') {
            out[made++] = c;
        } else if (made + 1 < room) {
            out[made++] = '\r';
            out[made++] = '\n';
        } else {
            out[made++] = '\r';
            upload->pending_lf = true;
        }
    }
    return made;
}

// The Message-ID of the spooled message, if it has one that can be searched for: printable
// ASCII without quotes or backslashes (it goes into a quoted IMAP string) and without spaces (it
// goes into a journal line of words).
std::optional<std::string> message_id(int fd)
{
    std::string head(max_header_scan, '\0');
    const ssize_t got = ::pread(fd, head.data(), head.size(), 0);
    if (got <= 0) {
        return std::nullopt;
    }
    head.resize(static_cast<std::size_t>(got));
    if (const auto end = head.find("\n\n"); end != std::string::npos) {
        head.resize(end + 1);
    }
    std::string value;
    bool in_id = false;
    std::size_t start = 0;
    while (start < head.size()) {
        auto end = head.find('\n', start);
        if (end == std::string::npos) {
            end = head.size();
        }
        const std::string_view line(head.data() + start, end - start);
        start = end + 1;
        if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
            if (in_id) {
                value.append(line);
            }
            continue;
        }
        if (in_id) {
            break;
        }
        constexpr std::string_view name = "message-id:";
        if (line.size() >= name.size() && iequals(line.substr(0, name.size()), name)) {
            in_id = true;
            value.assign(line.substr(name.size()));
        }
    }
    const auto first = value.find_first_not_of(" \t");
    const auto last = value.find_last_not_of(" \t");
    const std::string id = first == std::string::npos ? std::string() : value.substr(first, last - first + 1);
    if (id.empty() || id.size() > 250) {
        return std::nullopt;
    }
    for (const char c : id) {
        if (c <= ' ' || c > '~' || c == '"' || c == '\\') {
            return std::nullopt;
        }
    }
    return id;
}

// "RFC822.SIZE n", "UIDNEXT n".
std::vector<std::uint64_t> numbers_after(std::string_view answer, std::string_view word)
{
    std::vector<std::uint64_t> found;
    for (std::size_t at = answer.find(word); at != std::string_view::npos; at = answer.find(word, at + 1)) {
        std::uint64_t value = 0;
        const char* first = answer.data() + at + word.size();
        const auto parsed = std::from_chars(first, answer.data() + answer.size(), value);
        if (parsed.ec == std::errc{} && parsed.ptr != first) {
            found.push_back(value);
        }
    }
    return found;
}

std::vector<std::uint64_t> search_results(std::string_view answer)
{
    std::vector<std::uint64_t> found;
    while (!answer.empty()) {
        const auto end = answer.find('\n');
        std::string_view line = answer.substr(0, end);
        answer.remove_prefix(end == std::string_view::npos ? answer.size() : end + 1);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        if (!line.starts_with("* SEARCH")) {
            continue;
        }
        for (const auto word : split_words(line.substr(8))) {
            std::uint64_t value = 0;
            const auto parsed = std::from_chars(word.data(), word.data() + word.size(), value);
            if (parsed.ec == std::errc{} && parsed.ptr == word.data() + word.size()) {
                found.push_back(value);
            }
        }
    }
    return found;
}

class ImapMessage final : public SinkMessage {
public:
    explicit ImapMessage(SpoolFile spool) : m_spool(std::move(spool)) {}
    SinkResult write(std::string_view bytes) override { return m_spool.write(bytes); }
    SinkResult finish() override { return {}; }
    [[nodiscard]] SpoolFile& spool() noexcept { return m_spool; }

private:
    SpoolFile m_spool;
};

class ImapSink final : public Sink {
public:
    ImapSink(ImapTarget target, SinkOptions options)
        : m_target(std::move(target)), m_options(std::move(options))
    {
        global_init();
    }

    tl::expected<void, SinkTrouble> prepare() override
    {
        // Logs in and SELECTs the mailbox (libcurl selects before a command on a mailbox URL).
        std::string answer;
        const CURLcode code = command(m_target.mailbox_url, "NOOP", answer);
        if (code == CURLE_OK) {
            return {};
        }
        const std::string why = fmt::format("IMAP target {}: {}", describe(), m_error.data());
        switch (code) {
        case CURLE_LOGIN_DENIED: return tl::unexpected(SinkTrouble{SinkTrouble::Kind::auth, why});
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_USE_SSL_FAILED:
        case CURLE_REMOTE_ACCESS_DENIED:
        case CURLE_QUOTE_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CACERT_BADFILE: return tl::unexpected(SinkTrouble{SinkTrouble::Kind::config, why});
        default: return tl::unexpected(SinkTrouble{SinkTrouble::Kind::temporary, why});
        }
    }

    tl::expected<std::unique_ptr<SinkMessage>, std::string> begin() override
    {
        return begin_spooled<ImapMessage>(m_options.spool_directory);
    }

    SinkResult sync(const std::vector<SinkMessage*>& group) override
    {
        return sync_spooled<ImapMessage>(group);
    }

    // One APPEND per message, each journalled first; then \Seen off what the group appended.
    std::vector<SinkResult> publish(const std::vector<SinkMessage*>& group, const Intend& intend) override
    {
        std::optional<std::uint64_t> uid_next;
        if (!m_options.imap.mark_seen) {
            std::string answer;
            if (command(m_target.base_url, fmt::format("STATUS \"{}\" (UIDNEXT)", m_target.mailbox),
                        answer) == CURLE_OK) {
                const auto found = numbers_after(answer, "UIDNEXT ");
                if (!found.empty()) {
                    uid_next = found.front();
                }
            }
        }
        std::vector<SinkResult> results;
        bool appended = false;
        for (auto* message : group) {
            auto& spool = own<ImapMessage>(message)->spool();
            const std::uint64_t octets = spool.octets() + spool.line_feeds();
            const auto id = message_id(spool.fd());
            if (auto noted = intend({fmt::format("imap {} {} {}", spool.name(), octets, id.value_or("-"))});
                !noted) {
                results.emplace_back(noted);
                continue;
            }
            results.push_back(append(spool, octets));
            appended = appended || results.back().has_value();
        }
        if (appended && uid_next) {
            // Best effort: a message left \Seen is stored all the same.
            std::string answer;
            (void)command(m_target.mailbox_url,
                          fmt::format("UID STORE {}:* -FLAGS.SILENT (\\Seen)", *uid_next), answer);
        }
        return results;
    }

    tl::expected<bool, std::string> resolve(const std::string& target) override
    {
        const auto words = split_words(target);
        if (words.size() != 4 || words[0] != "imap" || !plain_name(words[1])) {
            return tl::unexpected(fmt::format("unreadable IMAP journal entry \"{}\"", target));
        }
        ::unlink((m_options.spool_directory + "/" + std::string(words[1])).c_str());
        std::uint64_t octets = 0;
        const auto parsed = std::from_chars(words[2].data(), words[2].data() + words[2].size(), octets);
        if (parsed.ec != std::errc{} || words[3] == "-") {
            return false; // cannot be found again: append it again
        }
        std::string answer;
        if (command(m_target.mailbox_url, fmt::format("SEARCH HEADER Message-ID \"{}\"", words[3]), answer) !=
            CURLE_OK) {
            return tl::unexpected(
                fmt::format("IMAP target {}: SEARCH failed: {}", describe(), m_error.data()));
        }
        const auto uids = search_results(answer);
        if (uids.empty()) {
            return false;
        }
        std::string set;
        for (const auto uid : uids) {
            set += fmt::format("{}{}", set.empty() ? "" : ",", uid);
        }
        answer.clear();
        if (command(m_target.mailbox_url, fmt::format("FETCH {} (RFC822.SIZE)", set), answer) != CURLE_OK) {
            return tl::unexpected(
                fmt::format("IMAP target {}: FETCH failed: {}", describe(), m_error.data()));
        }
        const auto sizes = numbers_after(answer, "RFC822.SIZE ");
        return std::find(sizes.begin(), sizes.end(), octets) != sizes.end();
    }

    [[nodiscard]] std::string describe() const override { return m_target.display; }

private:
    // A handle kept for the whole run: libcurl keeps its connection (and login) between commands.
    CURL* handle()
    {
        if (m_handle) {
            curl_easy_reset(m_handle.get());
        } else {
            m_handle.reset(curl_easy_init());
        }
        CURL* curl = m_handle.get();
        if (curl == nullptr) {
            return nullptr;
        }
        const auto& imap = m_options.imap;
        m_error.fill('\0');
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, m_error.data());
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "imap,imaps");
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_USERNAME, imap.user.c_str());
        if (imap.secret_is_token) {
            curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, imap.secret.view().c_str());
            curl_easy_setopt(curl, CURLOPT_SASL_IR, 1L);
        } else {
            curl_easy_setopt(curl, CURLOPT_PASSWORD, imap.secret.view().c_str());
        }
        if (m_target.scheme == "imap") {
            curl_easy_setopt(curl, CURLOPT_USE_SSL, imap.allow_plaintext ? CURLUSESSL_NONE : CURLUSESSL_ALL);
        }
        if (!imap.ca_file.empty()) {
            curl_easy_setopt(curl, CURLOPT_CAINFO, imap.ca_file.c_str());
        }
        curl_easy_setopt(curl, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(imap.connect_timeout.count()));
        // No progress for `timeout`: the server is gone.
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                         std::max(1L, static_cast<long>(imap.timeout.count() / 1000)));
        return curl;
    }

    CURLcode command(const std::string& url, const std::string& request, std::string& answer)
    {
        CURL* curl = handle();
        if (curl == nullptr) {
            return CURLE_OUT_OF_MEMORY;
        }
        curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.c_str());
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
        const CURLcode code = curl_easy_perform(curl);
        note(code);
        return code;
    }

    SinkResult append(SpoolFile& spool, std::uint64_t octets)
    {
        CURL* curl = handle();
        if (curl == nullptr) {
            return tl::unexpected(std::string("out of memory"));
        }
        auto upload = std::make_unique<Upload>();
        upload->fd = spool.fd();
        upload->octets = spool.octets();
        curl_easy_setopt(curl, CURLOPT_URL, m_target.mailbox_url.c_str());
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, produce);
        curl_easy_setopt(curl, CURLOPT_READDATA, upload.get());
        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(octets));
        std::string answer;
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
        const CURLcode code = curl_easy_perform(curl);
        note(code);
        if (code != CURLE_OK) {
            return tl::unexpected(
                fmt::format("IMAP APPEND to {}: {}", describe(),
                            upload->failed ? errno_text(spool.path()) : std::string(m_error.data())));
        }
        return {};
    }

    void note(CURLcode code)
    {
        if (code != CURLE_OK && m_error[0] == '\0') {
            const std::string text = curl_easy_strerror(code);
            std::copy_n(text.begin(), std::min(text.size(), m_error.size() - 1), m_error.begin());
        }
        m_error.back() = '\0';
    }

    ImapTarget m_target;
    SinkOptions m_options;
    std::unique_ptr<CURL, CurlDeleter> m_handle;
    std::array<char, CURL_ERROR_SIZE + 1> m_error{};
};

} // namespace

tl::expected<ImapTarget, std::string> parse_imap_target(const std::string& url)
{
    global_init();
    const std::unique_ptr<CURLU, CurlUrlDeleter> parsed(curl_url());
    if (!parsed) {
        return tl::unexpected(std::string("out of memory"));
    }
    if (curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
        return tl::unexpected(fmt::format("\"{}\" is not a URL (imaps://HOST[:PORT]/MAILBOX)", url));
    }
    const auto part = [&parsed](CURLUPart which, unsigned flags = 0) -> std::optional<std::string> {
        char* text = nullptr;
        if (curl_url_get(parsed.get(), which, &text, flags) != CURLUE_OK || text == nullptr) {
            return std::nullopt;
        }
        const CurlString owned(text);
        return std::string(owned.get());
    };
    ImapTarget target;
    target.scheme = part(CURLUPART_SCHEME).value_or("");
    if (target.scheme != "imap" && target.scheme != "imaps") {
        return tl::unexpected(fmt::format("\"{}\": the scheme must be imaps:// or imap:// (STARTTLS)", url));
    }
    if (part(CURLUPART_USER) || part(CURLUPART_PASSWORD) || part(CURLUPART_QUERY) ||
        part(CURLUPART_FRAGMENT)) {
        return tl::unexpected(
            fmt::format("\"{}\": no user, password, query or fragment in the URL (the user is "
                        "imap_user, the password imap_password_command)",
                        url));
    }
    const auto host = part(CURLUPART_HOST);
    if (!host || host->empty()) {
        return tl::unexpected(fmt::format("\"{}\": no host", url));
    }
    const auto port = part(CURLUPART_PORT);
    std::string mailbox = part(CURLUPART_PATH, CURLU_URLDECODE).value_or("/");
    if (mailbox.starts_with('/')) {
        mailbox.erase(0, 1);
    }
    if (mailbox.empty()) {
        mailbox = "INBOX";
    }
    for (const char c : mailbox) {
        if (static_cast<unsigned char>(c) < ' ' || c == '"' || c == '\\' || c == ';' || c == 0x7f) {
            return tl::unexpected(fmt::format("\"{}\": the mailbox name cannot hold quotes, backslashes, "
                                              "semicolons or control characters",
                                              url));
        }
    }
    target.mailbox = mailbox;
    const std::string authority = port ? fmt::format("{}:{}", *host, *port) : *host;
    target.base_url = fmt::format("{}://{}/", target.scheme, authority);
    const std::unique_ptr<char, CurlStringDeleter> escaped(
        curl_easy_escape(nullptr, mailbox.c_str(), static_cast<int>(mailbox.size())));
    if (!escaped) {
        return tl::unexpected(std::string("out of memory"));
    }
    target.mailbox_url = target.base_url + escaped.get();
    target.display = fmt::format("{}://{}/{}", target.scheme, authority, mailbox);
    return target;
}

std::unique_ptr<Sink> make_imap_sink(ImapTarget target, SinkOptions options)
{
    return std::make_unique<ImapSink>(std::move(target), std::move(options));
}

} // namespace pigeon::client
