// pigeon fetch's engine (src/client) against pigeond over loopback: keep then delete, STLS that
// is required but not offered, implicit TLS with pinned fingerprints, a refused password, mbox
// and command sinks, a delivery command that fails, a client killed at every point between its
// effects, and connections cut at many bytes, each followed by a clean run: every message ends up
// stored exactly once and deleted on the server only after it was stored.
#include "test_server.hpp"

#include "auth/memory/memory_passdb.hpp"
#include "client/fetch_state.hpp"
#include "client/fetcher.hpp"
#include "storage/mbox/mbox_store.hpp"
#include "storage/memory/memory_maildrop.hpp"
#include "tls/client_tls.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>

namespace pigeon::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class TempDir {
public:
    TempDir()
    {
        std::string pattern = (fs::temp_directory_path() / "pigeon-fetch-XXXXXX").string();
        m_path = ::mkdtemp(pattern.data());
    }
    ~TempDir() { fs::remove_all(m_path); }
    [[nodiscard]] const std::string& path() const { return m_path; }

private:
    std::string m_path;
};

std::string read_file(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The messages of a Maildir's new/ and cur/, Received: header removed, sorted.
std::vector<std::string> maildir_messages(const std::string& root)
{
    std::vector<std::string> out;
    for (const char* folder : {"/new", "/cur"}) {
        if (!fs::exists(root + folder)) {
            continue;
        }
        for (const auto& entry : fs::directory_iterator(root + folder)) {
            std::string text = read_file(entry.path());
            if (text.starts_with("Received: ")) {
                // The header is "Received: ...\n\t...\n\t...\n\t...\n": four lines.
                std::size_t end = 0;
                for (int i = 0; i < 4; ++i) {
                    end = text.find('\n', end) + 1;
                }
                text.erase(0, end);
            }
            out.push_back(text);
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

struct Mail {
    std::shared_ptr<storage::MemoryMaildropStore> store = std::make_shared<storage::MemoryMaildropStore>();
    std::shared_ptr<auth::MemoryPassDb> passdb = std::make_shared<auth::MemoryPassDb>();
    std::vector<std::string> originals; // LF form, as a local store keeps them

    explicit Mail(int count = 3)
    {
        passdb->add_user("alice", "secret");
        for (int i = 1; i <= count; ++i) {
            std::string body =
                fmt::format("Subject: message {}\r\nMessage-ID: <{}@example.org>\r\n\r\nline one\r\n"
                            "From the start of a line\r\n.leading dot\r\n>From quoted\r\n{}\r\n",
                            i, i, std::string(static_cast<std::size_t>(i) * 700, 'x'));
            store->add_message("alice", {fmt::format("uid-{}", i), body});
            std::string lf = body;
            std::string::size_type at = 0;
            while ((at = lf.find("\r\n", at)) != std::string::npos) {
                lf.erase(at, 1);
            }
            originals.push_back(lf);
        }
        std::sort(originals.begin(), originals.end());
    }
};

client::Account account_for(std::uint16_t port, const TempDir& dir, const std::string& deliver_to = {})
{
    client::Account account;
    account.name = "test";
    account.host = "127.0.0.1";
    account.port = port;
    account.tls = client::TlsMode::none;
    account.allow_plaintext = true;
    account.user = "alice";
    account.password_command = "echo secret";
    account.deliver_to = deliver_to.empty() ? "maildir:" + dir.path() + "/Maildir" : deliver_to;
    account.state_file = dir.path() + "/state/test.state";
    account.timeout = 10s;
    account.connect_timeout = 10s;
    return account;
}

TEST(Fetch, KeepsThenDeletesAndNeverDownloadsTwice)
{
    Mail mail;
    TestServer server(test_services(mail.store, mail.passdb));
    TempDir dir;
    auto account = account_for(server.port(), dir);
    const auto first = client::fetch(account, {});
    ASSERT_EQ(first.outcome, client::Outcome::fetched) << first.error;
    EXPECT_EQ(first.stored, 3U);
    EXPECT_EQ(first.deleted, 0U);
    EXPECT_EQ(maildir_messages(dir.path() + "/Maildir"), mail.originals);
    EXPECT_EQ(mail.store->messages("alice").size(), 3U);

    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    const auto second = client::fetch(account, {});
    EXPECT_EQ(second.outcome, client::Outcome::nothing_new) << second.error;
    EXPECT_EQ(second.stored, 0U);

    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    account.keep = false; // now delete what was stored, and nothing is downloaded again
    const auto third = client::fetch(account, {});
    EXPECT_EQ(third.outcome, client::Outcome::nothing_new) << third.error;
    EXPECT_EQ(third.deleted, 3U);
    EXPECT_TRUE(mail.store->messages("alice").empty());
    EXPECT_EQ(maildir_messages(dir.path() + "/Maildir"), mail.originals);
}

TEST(Fetch, DeleteAfterDaysCountsFromTheFirstDownload)
{
    Mail mail(2);
    TestServer server(test_services(mail.store, mail.passdb));
    TempDir dir;
    auto account = account_for(server.port(), dir);
    account.delete_after_days = 7;
    std::time_t now = 1'800'000'000;
    client::FetchOptions options;
    options.clock = [&now] { return now; };
    const auto first = client::fetch(account, options);
    ASSERT_EQ(first.stored, 2U) << first.error;
    EXPECT_EQ(first.deleted, 0U);

    // A third message arrives on day 3; on day 6 nothing is old enough.
    mail.store->add_message("alice", {"uid-late", "Subject: late\r\n\r\nlate\r\n"});
    now += 3 * 86400;
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    const auto day3 = client::fetch(account, options);
    EXPECT_EQ(day3.stored, 1U) << day3.error;
    EXPECT_EQ(day3.deleted, 0U);
    now += 3 * 86400;
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    EXPECT_EQ(client::fetch(account, options).deleted, 0U);

    // Day 7 after the first download: the first two go, the late one stays until day 10.
    now += 86400;
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    const auto day7 = client::fetch(account, options);
    EXPECT_EQ(day7.deleted, 2U) << day7.error;
    EXPECT_EQ(day7.stored, 0U);
    ASSERT_EQ(mail.store->messages("alice").size(), 1U);
    EXPECT_EQ(mail.store->messages("alice")[0].unique_id, "uid-late");
    now += 3 * 86400;
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    EXPECT_EQ(client::fetch(account, options).deleted, 1U);
    EXPECT_TRUE(mail.store->messages("alice").empty());
}

TEST(Fetch, SizeLimitSkipsOrDeletesUnread)
{
    Mail mail(3); // about 850, 1550 and 2250 octets
    TestServer server(test_services(mail.store, mail.passdb));
    TempDir dir;
    auto account = account_for(server.port(), dir);
    account.size_limit = 2000;
    const auto skipped = client::fetch(account, {});
    EXPECT_EQ(skipped.stored, 2U) << skipped.error;
    EXPECT_EQ(skipped.skipped_too_big, 1U);
    EXPECT_EQ(mail.store->messages("alice").size(), 3U);
    account.size_action = client::SizeAction::remove;
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    const auto removed = client::fetch(account, {});
    EXPECT_EQ(removed.stored, 0U);
    EXPECT_EQ(removed.deleted, 1U);
    EXPECT_EQ(mail.store->messages("alice").size(), 2U);
    EXPECT_EQ(maildir_messages(dir.path() + "/Maildir").size(), 2U);
}

TEST(Fetch, TheReceivedHeaderNamesServerAndUniqueId)
{
    Mail mail(1);
    TestServer server(test_services(mail.store, mail.passdb));
    TempDir dir;
    const auto report = client::fetch(account_for(server.port(), dir), {});
    ASSERT_EQ(report.outcome, client::Outcome::fetched) << report.error;
    const auto files =
        std::vector<fs::directory_entry>(fs::directory_iterator(dir.path() + "/Maildir/new"), {});
    ASSERT_EQ(files.size(), 1U);
    const std::string text = read_file(files[0].path());
    EXPECT_TRUE(text.starts_with("Received: from 127.0.0.1 (127.0.0.1:")) << text.substr(0, 200);
    EXPECT_NE(text.find("for <alice> id uid-1;"), std::string::npos) << text.substr(0, 200);
    // maildir(5) name with the size Dovecot writes
    EXPECT_NE(files[0].path().filename().string().find(",S=" + std::to_string(text.size())),
              std::string::npos);
}

TEST(Fetch, StlsRequiredButNotOfferedStopsBeforeAnyCredential)
{
    Mail mail;
    TestServer server(test_services(mail.store, mail.passdb)); // no TLS: no STLS in CAPA
    TempDir dir;
    auto account = account_for(server.port(), dir);
    account.tls = client::TlsMode::starttls;
    account.password_command = "exit 1"; // would be a config error if it were ever run
    std::vector<std::string> dialogue;
    client::FetchOptions options;
    options.trace = [&dialogue](std::string_view line) { dialogue.emplace_back(line); };
    const auto report = client::fetch(account, options);
    EXPECT_EQ(report.outcome, client::Outcome::tls) << report.error;
    EXPECT_NE(report.error.find("STLS"), std::string::npos);
    for (const auto& line : dialogue) {
        EXPECT_FALSE(line.starts_with("C: USER") || line.starts_with("C: AUTH")) << line;
    }
}

TEST(Fetch, StlsThenLoginAndTheVerboseDialogueHidesSecrets)
{
    Mail mail(2);
    TestServer server(test_services(mail.store, mail.passdb, test_tls_context()));
    TempDir dir;
    auto account = account_for(server.port(), dir);
    account.tls = client::TlsMode::starttls;
    account.allow_plaintext = false;
    account.ca_file = test_certificate().certificate;
    account.host = "localhost";
    std::vector<std::string> dialogue;
    client::FetchOptions options;
    options.trace = [&dialogue](std::string_view line) { dialogue.emplace_back(line); };
    const auto report = client::fetch(account, options);
    ASSERT_EQ(report.outcome, client::Outcome::fetched) << report.error;
    EXPECT_NE(report.mechanism, "USER") << "auto prefers a SASL mechanism the server offers";
    ASSERT_TRUE(report.server.tls);
    EXPECT_EQ(report.server.tls->verification, "trusted");
    for (const auto& line : dialogue) {
        EXPECT_EQ(line.find("secret"), std::string::npos) << line;
    }
    EXPECT_EQ(maildir_messages(dir.path() + "/Maildir"), mail.originals);
}

TEST(Fetch, ImplicitTlsTrustsAPinnedFingerprintAndRefusesAnother)
{
    Mail mail(1);
    TestServer server(test_services(mail.store, mail.passdb, test_tls_context()), test_tuning(),
                      {net::TlsMode::implicit});
    TempDir dir;
    auto account = account_for(server.port(), dir);
    account.tls = client::TlsMode::implicit;
    account.fingerprints = {std::string(64, 'a')};
    const auto refused = client::fetch(account, {});
    EXPECT_EQ(refused.outcome, client::Outcome::tls);
    EXPECT_NE(refused.error.find("pinned"), std::string::npos) << refused.error;

    // The untrusted self-signed certificate is refused without a pin or CA file.
    account.fingerprints.clear();
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    const auto untrusted = client::fetch(account, {});
    EXPECT_EQ(untrusted.outcome, client::Outcome::tls) << untrusted.error;

    client::FetchOptions look;
    look.serverinfo_only = true;
    look.tls_no_verify = true;
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    const auto info = client::fetch(account, look);
    ASSERT_TRUE(info.server.tls) << info.error;
    account.fingerprints = {info.server.tls->sha256_fingerprint, std::string(64, 'b')};
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    const auto pinned = client::fetch(account, {});
    EXPECT_EQ(pinned.outcome, client::Outcome::fetched) << pinned.error;
    EXPECT_EQ(pinned.server.tls->verification, "pinned");
}

TEST(Fetch, AWrongPasswordIsAnAuthFailure)
{
    Mail mail(1);
    TestServer server(test_services(mail.store, mail.passdb));
    TempDir dir;
    auto account = account_for(server.port(), dir);
    account.password_command = "echo wrong";
    const auto report = client::fetch(account, {});
    EXPECT_EQ(report.outcome, client::Outcome::auth) << report.error;
    EXPECT_EQ(client::exit_code(report.outcome), 77);
    EXPECT_EQ(mail.store->messages("alice").size(), 1U);
}

TEST(Fetch, MboxReadsBackOctetForOctet)
{
    Mail mail;
    TestServer server(test_services(mail.store, mail.passdb));
    TempDir dir;
    const std::string mbox = dir.path() + "/inbox";
    auto account = account_for(server.port(), dir, "mbox:" + mbox);
    account.received_header = false;
    const auto report = client::fetch(account, {});
    ASSERT_EQ(report.outcome, client::Outcome::fetched) << report.error;
    // Pigeon's own mbox reader (mboxrd) gives every message back as it was sent.
    storage::MboxOptions options;
    options.path_template = mbox;
    options.index_directory_template = dir.path() + "/mbox-index";
    storage::MboxStore store(options);
    auto maildrop = store.open("alice");
    ASSERT_TRUE(maildrop) << maildrop.error().message();
    std::vector<std::string> read_back;
    for (std::uint32_t i = 0; i < (*maildrop)->message_count(); ++i) {
        auto reader = (*maildrop)->open_message(MessageIndex{i});
        ASSERT_TRUE(reader);
        std::string text;
        std::array<char, 4096> buffer{};
        for (;;) {
            auto got = (*reader)->read(buffer);
            ASSERT_TRUE(got);
            if (*got == 0) {
                break;
            }
            text.append(buffer.data(), *got);
        }
        read_back.push_back(text);
    }
    std::sort(read_back.begin(), read_back.end());
    EXPECT_EQ(read_back, mail.originals);
    EXPECT_NE(read_file(mbox).find("\n>From the start of a line\n"), std::string::npos);
    EXPECT_NE(read_file(mbox).find("\n>>From quoted\n"), std::string::npos);
}

TEST(Fetch, AFailingDeliveryCommandLeavesTheMessageOnTheServerUnrecorded)
{
    Mail mail(2);
    TestServer server(test_services(mail.store, mail.passdb));
    TempDir dir;
    auto account = account_for(server.port(), dir, "command:exit 75");
    account.keep = false;
    const auto failed = client::fetch(account, {});
    EXPECT_EQ(failed.outcome, client::Outcome::temporary);
    EXPECT_EQ(failed.stored, 0U);
    EXPECT_EQ(failed.failed, 2U);
    EXPECT_EQ(mail.store->messages("alice").size(), 2U);

    // The command works now: both are delivered (to files named by a counter) and deleted.
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    fs::create_directories(dir.path() + "/out");
    account.deliver_to = fmt::format("command:cat > {}/out/$(date +%s%N)", dir.path());
    const auto delivered = client::fetch(account, {});
    EXPECT_EQ(delivered.outcome, client::Outcome::fetched) << delivered.error;
    EXPECT_EQ(delivered.stored, 2U);
    EXPECT_TRUE(mail.store->messages("alice").empty());
    EXPECT_EQ(std::distance(fs::directory_iterator(dir.path() + "/out"), fs::directory_iterator{}), 2);
}

// Runs fetch in a child process (tests/tools/fetch_crasher) that kills itself with SIGKILL at the
// `crash_at`-th point between effects, from whichever thread reaches it (the receiving one or the
// committing one); returns 100 when it was killed there, 0 when it passed every point.
int fetch_and_die(const client::Account& account, int crash_at, std::size_t batch)
{
    const std::string port = std::to_string(account.port);
    const std::string batch_text = std::to_string(batch);
    const std::string crash_text = std::to_string(crash_at);
    std::vector<std::string> args{PIGEON_FETCH_CRASHER, port,       account.state_file,
                                  account.deliver_to,   batch_text, crash_text};
    std::vector<char*> argv;
    for (auto& arg : args) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    pid_t child = -1;
    if (::posix_spawn(&child, PIGEON_FETCH_CRASHER, nullptr, nullptr, argv.data(), environ) != 0) {
        return -2;
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        return 100;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void crash_at_every_point(const std::string& sink_kind, std::size_t batch, int expected_runs)
{
    int runs = 0;
    for (int crash_at = 1;; ++crash_at) {
        Mail mail(8);
        TestServer server(test_services(mail.store, mail.passdb));
        TempDir dir;
        const std::string target =
            sink_kind == "maildir" ? "maildir:" + dir.path() + "/Maildir" : "mbox:" + dir.path() + "/inbox";
        auto account = account_for(server.port(), dir, target);
        account.keep = false;
        account.received_header = false;
        const int status = fetch_and_die(account, crash_at, batch);
        ++runs;
        ASSERT_TRUE(status == 100 || status == 0) << status;
        // Then runs until one is clean (a killed session may still hold the maildrop briefly).
        client::FetchReport report;
        for (int attempt = 0; attempt < 5; ++attempt) {
            ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
            report = client::fetch(account, {});
            if (report.outcome != client::Outcome::temporary) {
                break;
            }
        }
        ASSERT_NE(report.outcome, client::Outcome::temporary)
            << report.error << " (crash at " << crash_at << ")";
        ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
        // Delete mode: the server is empty, and each message is stored exactly once.
        EXPECT_TRUE(mail.store->messages("alice").empty()) << "crash at " << crash_at;
        std::vector<std::string> stored;
        if (sink_kind == "maildir") {
            stored = maildir_messages(dir.path() + "/Maildir");
        } else {
            storage::MboxOptions options;
            options.path_template = dir.path() + "/inbox";
            options.index_directory_template = dir.path() + "/mbox-index";
            storage::MboxStore store(options);
            auto maildrop = store.open("alice");
            ASSERT_TRUE(maildrop);
            for (std::uint32_t i = 0; i < (*maildrop)->message_count(); ++i) {
                auto reader = (*maildrop)->open_message(MessageIndex{i});
                std::string text;
                std::array<char, 4096> buffer{};
                for (auto got = (*reader)->read(buffer); got && *got > 0; got = (*reader)->read(buffer)) {
                    text.append(buffer.data(), *got);
                }
                stored.push_back(text);
            }
            std::sort(stored.begin(), stored.end());
        }
        EXPECT_EQ(stored, mail.originals) << "crash at " << crash_at;
        if (status == 0) {
            break; // the child passed every point: all of them were tried
        }
    }
    EXPECT_GE(runs, expected_runs) << "fewer crash points than expected";
}

// Groups of one message (two while a commit is in flight): up to five points per group
// (synced, journalled, published, recorded, DELE sent) and QUIT: about 30 runs for 8 messages.
TEST(FetchCrash, KilledAtEveryPointMaildirHoldsEachMessageOnce)
{
    crash_at_every_point("maildir", 1, 25);
}

TEST(FetchCrash, KilledAtEveryPointMboxHoldsEachMessageOnce)
{
    crash_at_every_point("mbox", 1, 25);
}

// Groups of three: a kill between a group's steps leaves several messages half-way at once.
TEST(FetchCrash, KilledAtEveryPointOfGroupCommitsMaildirHoldsEachMessageOnce)
{
    crash_at_every_point("maildir", 3, 10);
}

TEST(FetchCrash, KilledAtEveryPointOfGroupCommitsMboxHoldsEachMessageOnce)
{
    crash_at_every_point("mbox", 3, 10);
}

// A TCP proxy that forwards to `upstream` and cuts both sides once `cut_after` octets have come
// from the server (0: never).
class CuttingProxy {
public:
    CuttingProxy(std::uint16_t upstream, std::size_t cut_after) : m_upstream(upstream), m_cut_after(cut_after)
    {
        m_listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(m_listener, reinterpret_cast<sockaddr*>(&address), sizeof address);
        ::listen(m_listener, 4);
        socklen_t length = sizeof address;
        ::getsockname(m_listener, reinterpret_cast<sockaddr*>(&address), &length);
        m_port = ntohs(address.sin_port);
        m_thread = std::thread([this] { serve(); });
    }
    ~CuttingProxy()
    {
        ::shutdown(m_listener, SHUT_RDWR);
        m_thread.join();
        ::close(m_listener);
    }
    [[nodiscard]] std::uint16_t port() const { return m_port; }

private:
    void serve()
    {
        const int client = ::accept4(m_listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) {
            return;
        }
        const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(m_upstream);
        if (::connect(server, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
            std::size_t from_server = 0;
            std::array<char, 4096> buffer{};
            for (bool open = true; open;) {
                std::array<pollfd, 2> fds{pollfd{client, POLLIN, 0}, pollfd{server, POLLIN, 0}};
                if (::poll(fds.data(), 2, 10'000) <= 0) {
                    break;
                }
                for (int side = 0; side < 2 && open; ++side) {
                    if ((fds[side].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                        continue;
                    }
                    std::size_t want = buffer.size();
                    if (side == 1 && m_cut_after > 0) {
                        want = std::min(want, m_cut_after - from_server);
                    }
                    const ssize_t got = ::recv(fds[side].fd, buffer.data(), want, 0);
                    if (got <= 0) {
                        open = false;
                        break;
                    }
                    const int to = side == 0 ? server : client;
                    (void)::send(to, buffer.data(), static_cast<std::size_t>(got), MSG_NOSIGNAL);
                    if (side == 1) {
                        from_server += static_cast<std::size_t>(got);
                        if (m_cut_after > 0 && from_server >= m_cut_after) {
                            open = false;
                        }
                    }
                }
            }
        }
        ::close(server);
        ::close(client);
    }

    std::uint16_t m_upstream;
    std::size_t m_cut_after;
    int m_listener = -1;
    std::uint16_t m_port = 0;
    std::thread m_thread;
};

TEST(FetchCut, AConnectionCutAtManyBytesNeverLosesOrDuplicates)
{
    Mail mail(5);
    TestServer server(test_services(mail.store, mail.passdb));
    TempDir dir;
    auto account = account_for(server.port(), dir);
    account.received_header = false;
    account.keep = false;
    // The whole dialogue is about 6 KB from the server; cut it every 150 octets.
    int cuts = 0;
    for (std::size_t cut = 40; cut < 6500; cut += 150) {
        ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
        CuttingProxy proxy(server.port(), cut);
        account.port = proxy.port();
        const auto report = client::fetch(account, {});
        ++cuts;
        if (report.outcome != client::Outcome::temporary) {
            break; // the cut came after the whole session
        }
    }
    EXPECT_GE(cuts, 20);
    ASSERT_TRUE(eventually([&] { return server.server().live_connections() == 0; }));
    account.port = server.port();
    const auto final_run = client::fetch(account, {});
    EXPECT_NE(final_run.outcome, client::Outcome::temporary) << final_run.error;
    EXPECT_TRUE(mail.store->messages("alice").empty());
    EXPECT_EQ(maildir_messages(dir.path() + "/Maildir"), mail.originals);
}

TEST(FetchState, ACutJournalLineIsIgnoredAndDamageIsAnError)
{
    TempDir dir;
    const std::string path = dir.path() + "/a.state";
    {
        auto state = client::FetchState::open(path);
        ASSERT_TRUE(state) << state.error();
        ASSERT_TRUE(state->record("u1", 100));
        ASSERT_TRUE(state->intend("u2", "maildir a b"));
    }
    std::ofstream(path + ".journal", std::ios::app) << "+ u3 1"; // cut short: no newline
    {
        auto state = client::FetchState::open(path);
        ASSERT_TRUE(state) << state.error();
        EXPECT_TRUE(state->contains("u1"));
        EXPECT_FALSE(state->contains("u3"));
        ASSERT_EQ(state->pending().size(), 1U);
        EXPECT_EQ(state->pending()[0].target, "maildir a b");
        ASSERT_TRUE(state->abandon("u2"));
        ASSERT_TRUE(state->save());
    }
    EXPECT_EQ(read_file(path), "pigeon-fetch-state 1\nu1 100\n");
    // The cut line was taken off the journal when it was opened, so the "! u2" appended after
    // it began a line of its own (it was emptied by save()).
    EXPECT_EQ(read_file(path + ".journal"), "");
    std::ofstream(path, std::ios::app) << "u 2 3\n";
    EXPECT_FALSE(client::FetchState::open(path));
}

TEST(FetchState, ALineAppendedAfterACutOneIsRead)
{
    TempDir dir;
    const std::string path = dir.path() + "/c.state";
    {
        auto state = client::FetchState::open(path);
        ASSERT_TRUE(state);
        ASSERT_TRUE(state->record("u1", 100));
    }
    std::ofstream(path + ".journal", std::ios::app) << "? u2 maildir a"; // killed mid-append
    {
        auto state = client::FetchState::open(path);
        ASSERT_TRUE(state) << state.error();
        ASSERT_TRUE(state->record("u3", 300)); // no save(): the journal alone keeps it
    }
    auto state = client::FetchState::open(path);
    ASSERT_TRUE(state) << state.error();
    EXPECT_TRUE(state->contains("u1"));
    EXPECT_TRUE(state->contains("u3"));
    EXPECT_TRUE(state->pending().empty());
}

TEST(FetchState, ASecondRunOfTheSameAccountIsRefused)
{
    TempDir dir;
    auto first = client::FetchState::open(dir.path() + "/b.state");
    ASSERT_TRUE(first);
    auto second = client::FetchState::open(dir.path() + "/b.state");
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().find("another pigeon fetch"), std::string::npos);
}

} // namespace
} // namespace pigeon::test
