// The transcripts of tests/transcripts replayed over a real loopback socket against pigeond's
// server (src/server, src/net) instead of ServerSession in-process. Transcripts that need the
// test's own TLS handshake or APOP timestamp are left to tests/net/server_test.cpp.
#include "test_server.hpp"
#include "transcript.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

namespace pigeon::test {
namespace {

class SocketPeer final : public TranscriptPeer {
public:
    explicit SocketPeer(TranscriptSetup& setup)
    {
        auto services = test_services(setup.store, setup.passdb);
        services->settings.policy = setup.policy;
        services->settings.plaintext_auth =
            setup.policy.plaintext_auth_without_tls ? net::PlaintextAuth::always : net::PlaintextAuth::never;
        m_server = std::make_unique<TestServer>(services, test_tuning(), std::vector{net::TlsMode::none});
        m_client = std::make_unique<TestClient>(m_server->port());
    }
    std::string start() override { return m_client->line(); }
    std::string send(std::string_view packet, bool bytewise) override
    {
        if (!bytewise) {
            m_client->send(packet);
            return {};
        }
        for (const char c : packet) {
            m_client->send(std::string_view(&c, 1));
        }
        return {};
    }
    void await_output(std::string& pending, std::size_t want) override
    {
        if (pending.size() < want) {
            pending += m_client->exactly(want - pending.size());
        }
    }
    bool tls_started() override { return false; }
    std::string complete_tls() override { return {}; }
    bool closed(std::string& pending) override { return m_client->eof(&pending); }
    std::optional<std::size_t> commits() override { return std::nullopt; }
    bool exact_end() override { return false; }

private:
    std::unique_ptr<TestServer> m_server;
    std::unique_ptr<TestClient> m_client;
};

bool runs_over_socket(const Transcript& transcript)
{
    return std::none_of(transcript.lines.begin(), transcript.lines.end(), [](const TranscriptLine& line) {
        if (line.kind != '!' || line.words.empty()) {
            return false;
        }
        if (line.words[0] == "tls") {
            return true;
        }
        return line.words[0] == "policy" &&
               std::any_of(line.words.begin() + 1, line.words.end(),
                           [](const auto& w) { return w.starts_with("apop=") || w.starts_with("tls="); });
    });
}

std::vector<std::string> socket_transcripts()
{
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(PIGEON_TRANSCRIPT_DIR)) {
        if (entry.path().extension() == ".pop3" && runs_over_socket(load_transcript(entry.path().string()))) {
            files.push_back(entry.path().filename().string());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

class SocketTranscript : public ::testing::TestWithParam<std::string> {};

TEST_P(SocketTranscript, OverLoopback)
{
    const auto transcript = load_transcript(std::string(PIGEON_TRANSCRIPT_DIR) + "/" + GetParam());
    TranscriptSetup setup;
    ASSERT_EQ(prepare_transcript(transcript, setup), "");
    SocketPeer peer(setup);
    EXPECT_EQ(run_transcript_with(transcript, setup, peer, false), "");
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info)
{
    return pigeon::test::transcript_test_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(Transcripts, SocketTranscript, ::testing::ValuesIn(socket_transcripts()), test_name);

TEST(SocketTranscripts, MostRunOverTheSocket)
{
    // The others need the test's TLS handshake or a fixed APOP timestamp; server_test covers both.
    EXPECT_GE(socket_transcripts().size(), 90U);
}

} // namespace
} // namespace pigeon::test
