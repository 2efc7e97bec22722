#include "transcript.hpp"

#include "session_driver.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace pigeon::test {

std::string unescape(std::string_view text)
{
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\' || i + 1 == text.size()) {
            out.push_back(text[i]);
            continue;
        }
        const char c = text[++i];
        switch (c) {
        case 'r': out.push_back('\r'); break;
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case '0': out.push_back('\0'); break;
        case '\\': out.push_back('\\'); break;
        case 'x':
            if (i + 2 < text.size()) {
                out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
                i += 2;
            }
            break;
        default:
            out.push_back('\\');
            out.push_back(c);
            break;
        }
    }
    return out;
}

Transcript load_transcript(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot open " + path);
    }
    Transcript transcript;
    transcript.name = path;
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.empty() || line[0] == '#') {
            continue;
        }
        TranscriptLine entry;
        entry.line_number = number;
        if (line.starts_with("C: ") || line == "C:") {
            entry.kind = 'C';
            entry.text = unescape(line.size() > 3 ? std::string_view(line).substr(3) : "") + "\r\n";
        } else if (line.starts_with("C~ ")) {
            entry.kind = 'C';
            entry.text = unescape(std::string_view(line).substr(3));
        } else if (line.starts_with("S: ") || line == "S:") {
            entry.kind = 'S';
            entry.text = unescape(line.size() > 3 ? std::string_view(line).substr(3) : "");
        } else if (line.starts_with("| ") || line == "|") {
            entry.kind = '|';
            entry.text = unescape(line.size() > 2 ? std::string_view(line).substr(2) : "");
        } else if (line.starts_with("! ")) {
            entry.kind = '!';
            std::istringstream words(line.substr(2));
            std::string word;
            while (words >> word) {
                entry.words.push_back(word);
            }
        } else {
            throw std::runtime_error(fmt::format("{}:{}: unknown line: {}", path, number, line));
        }
        transcript.lines.push_back(std::move(entry));
    }
    return transcript;
}

namespace {

bool flag(const std::string& value)
{
    return value == "yes" || value == "on" || value == "true" || value == "1";
}

std::error_code error_named(const std::string& name)
{
    static const std::map<std::string, errc> names{
        {"in_use", errc::maildrop_in_use},   {"unavailable", errc::maildrop_unavailable},
        {"damaged", errc::maildrop_damaged}, {"temporary", errc::auth_temporary_failure},
        {"login_delay", errc::login_delay},  {"commit", errc::commit_failed},
    };
    const auto found = names.find(name);
    if (found == names.end()) {
        throw std::runtime_error("unknown error name " + name);
    }
    return make_error_code(found->second);
}

void apply_policy(protocol::ServerPolicy& policy, const std::vector<std::string>& words)
{
    for (std::size_t i = 1; i < words.size(); ++i) {
        const auto eq = words[i].find('=');
        if (eq == std::string::npos) {
            throw std::runtime_error("policy needs KEY=VALUE: " + words[i]);
        }
        const std::string key = words[i].substr(0, eq);
        const std::string value = words[i].substr(eq + 1);
        if (key == "apop") {
            policy.apop_timestamp = value;
        } else if (key == "tls") {
            policy.tls_available = value == "available";
            policy.tls_active = value == "active";
        } else if (key == "plaintext") {
            policy.plaintext_auth_without_tls = flag(value);
        } else if (key == "sasl") {
            policy.sasl_mechanisms.clear();
            std::size_t start = 0;
            while (start < value.size()) {
                const auto comma = value.find(',', start);
                policy.sasl_mechanisms.push_back(value.substr(start, comma - start));
                start = comma == std::string::npos ? value.size() : comma + 1;
            }
            if (value == "none") {
                policy.sasl_mechanisms.clear();
            }
        } else if (key == "login_delay") {
            policy.login_delay_seconds = static_cast<std::uint32_t>(std::stoul(value));
        } else if (key == "expire") {
            if (value == "never") {
                policy.expire_never = true;
            } else {
                policy.expire_days = static_cast<std::uint32_t>(std::stoul(value));
            }
        } else if (key == "implementation") {
            policy.implementation = value;
        } else if (key == "utf8") {
            policy.utf8 = flag(value);
        } else if (key == "last") {
            policy.last_command = flag(value);
        } else if (key == "max_bad_commands") {
            policy.max_bad_commands = static_cast<std::uint32_t>(std::stoul(value));
        } else if (key == "max_auth_failures") {
            policy.max_auth_failures = static_cast<std::uint32_t>(std::stoul(value));
        } else {
            throw std::runtime_error("unknown policy key " + key);
        }
    }
}

std::string printable(std::string_view bytes)
{
    std::string out;
    for (const char c : bytes) {
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n\n";
        } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
            out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
            out.push_back(c);
        }
    }
    return out;
}

} // namespace

std::string prepare_transcript(const Transcript& transcript, TranscriptSetup& setup)
{
    // Set-up: everything before the first C:/S: line, plus stored messages anywhere.
    setup.policy.plaintext_auth_without_tls = true; // transcripts opt out with "! policy plaintext=no"
    auto& store = *setup.store;
    auto& passdb = *setup.passdb;
    setup.first_dialogue = transcript.lines.size();
    for (std::size_t i = 0; i < transcript.lines.size(); ++i) {
        const auto& entry = transcript.lines[i];
        if (entry.kind == 'C' || entry.kind == 'S') {
            setup.first_dialogue = i;
            break;
        }
        if (entry.kind != '!') {
            continue;
        }
        const auto& w = entry.words;
        if (w[0] == "policy") {
            apply_policy(setup.policy, w);
        } else if (w[0] == "user" && w.size() == 3) {
            passdb.add_user(w[1], w[2]);
        } else if (w[0] == "message" && (w.size() == 3 || w.size() == 4)) {
            std::string content;
            std::size_t k = i + 1;
            for (; k < transcript.lines.size() && transcript.lines[k].kind == '|'; ++k) {
                content += transcript.lines[k].text;
                content += '\n';
            }
            if (w.size() == 4 && w[3] == "noeol" && !content.empty()) {
                content.pop_back();
            }
            store.add_message(w[1], {w[2], content});
            i = k - 1;
        } else if (w[0] == "fail-open" && w.size() == 2) {
            store.fail_next_open(error_named(w[1]));
        } else if (w[0] == "fail-commit") {
            store.fail_next_commit(make_error_code(errc::commit_failed));
        } else if (w[0] == "fail-auth" && w.size() == 2) {
            passdb.fail_next(error_named(w[1]));
        } else {
            return fmt::format("line {}: unknown set-up directive", entry.line_number);
        }
    }
    return {};
}

namespace {

class InProcessPeer final : public TranscriptPeer {
public:
    explicit InProcessPeer(TranscriptSetup& setup) : m_driver(setup.policy, *setup.store, *setup.passdb) {}
    std::string start() override { return m_driver.run(); }
    std::string send(std::string_view packet, bool bytewise) override
    {
        if (!bytewise) {
            return m_driver.feed(packet);
        }
        std::string out;
        for (const char c : packet) {
            out += m_driver.feed(std::string_view(&c, 1));
        }
        return out;
    }
    void await_output(std::string& /*pending*/, std::size_t /*want*/) override {}
    bool tls_started() override { return m_driver.tls_started(); }
    std::string complete_tls() override { return m_driver.complete_tls(); }
    bool closed(std::string& /*pending*/) override { return m_driver.closed(); }
    std::optional<std::size_t> commits() override { return m_driver.commits(); }
    bool exact_end() override { return true; }

private:
    SessionDriver m_driver;
};

} // namespace

std::string run_transcript(const Transcript& transcript, bool bytewise)
{
    TranscriptSetup setup;
    if (auto problem = prepare_transcript(transcript, setup); !problem.empty()) {
        return problem;
    }
    InProcessPeer peer(setup);
    return run_transcript_with(transcript, setup, peer, bytewise);
}

std::string run_transcript_with(const Transcript& transcript, TranscriptSetup& setup, TranscriptPeer& peer,
                                bool bytewise)
{
    std::string pending = peer.start(); // the greeting
    bool dropped = false;
    const auto& lines = transcript.lines;
    for (std::size_t i = setup.first_dialogue; i < lines.size(); ++i) {
        const auto& entry = lines[i];
        const auto where = [&]() { return fmt::format("{}:{}", transcript.name, entry.line_number); };
        if (entry.kind == 'C') {
            if (!pending.empty()) {
                return fmt::format("{}: unexpected server output before this packet:\n{}", where(),
                                   printable(pending));
            }
            std::string packet;
            for (; i < lines.size() && lines[i].kind == 'C'; ++i) {
                packet += lines[i].text;
            }
            --i;
            pending += peer.send(packet, bytewise);
        } else if (entry.kind == 'S') {
            const std::string expected = entry.text + "\r\n";
            peer.await_output(pending, expected.size());
            if (!pending.starts_with(expected)) {
                const auto end = pending.find('\n');
                return fmt::format("{}: expected\n  {}\ngot\n  {}", where(), printable(entry.text),
                                   pending.empty() ? "(nothing)" : printable(pending.substr(0, end + 1)));
            }
            pending.erase(0, expected.size());
        } else if (entry.kind == '!') {
            const auto& w = entry.words;
            if (w[0] == "tls") {
                if (!peer.tls_started()) {
                    return where() + ": the session did not start TLS";
                }
                pending += peer.complete_tls();
            } else if (w[0] == "closed") {
                if (!peer.closed(pending)) {
                    return where() + ": the session is still open";
                }
            } else if (w[0] == "drop") {
                dropped = true;
                break;
            } else if (w[0] == "expect-messages" || w[0] == "expect-commits") {
                // checked after the dialogue
            } else {
                return where() + ": unknown directive " + w[0];
            }
        }
    }
    if (!dropped && !pending.empty() && peer.exact_end()) {
        return fmt::format("{}: unexpected server output at the end:\n{}", transcript.name,
                           printable(pending));
    }
    for (const auto& entry : lines) {
        if (entry.kind != '!') {
            continue;
        }
        const auto& w = entry.words;
        if (w[0] == "expect-messages" && w.size() == 3) {
            const auto count = setup.store->messages(w[1]).size();
            if (count != std::stoul(w[2])) {
                return fmt::format("{}:{}: {} holds {} messages", transcript.name, entry.line_number, w[1],
                                   count);
            }
        } else if (w[0] == "expect-commits" && w.size() == 2) {
            const auto commits = peer.commits();
            if (commits && *commits != std::stoul(w[2 - 1])) {
                return fmt::format("{}:{}: {} commits", transcript.name, entry.line_number, *commits);
            }
        }
    }
    return {};
}

std::vector<std::string> transcript_files(const std::string& directory, std::string_view extension)
{
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
        if (entry.path().extension() == extension) {
            files.push_back(entry.path().filename().string());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::string transcript_test_name(const std::string& file)
{
    std::string name = file.substr(0, file.find('.'));
    std::replace_if(
        name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
    return name;
}

} // namespace pigeon::test
