// Transcript files (tests/transcripts/*.pop3): RFC-style dialogues replayed against
// ServerSession. The format:
//
//   # a comment
//   ! policy KEY=VALUE ...       ServerPolicy settings (see transcript.cpp for the keys)
//   ! user NAME PASSWORD         a user in the in-memory user database
//   ! message USER UID [noeol]   a stored message; its lines follow as "| text" (LF-ended,
//   | line                       except the last with noeol)
//   ! fail-open ERROR            the next maildrop open fails (in_use, unavailable)
//   ! fail-commit                the next commit of deletions fails
//   ! fail-auth ERROR            the next credential check fails (temporary)
//   C: text                      client line, CRLF appended; consecutive C: lines go in one packet
//   C~ text                      raw client bytes, no CRLF appended (same packet rules)
//   S: text                      the next line the server must send (CRLF implied)
//   ! tls                        the session must have asked for TLS; the handshake completes
//   ! closed                     the server must have closed the connection
//   ! drop                       the client vanishes without QUIT
//   ! expect-messages USER N     after the dialogue, USER's maildrop holds N messages
//   ! expect-commits N           the session committed N times
//
// In C:, C~, S: and | lines, \r \n \t \\ \0 and \xHH are escapes.
#pragma once

#include "auth/memory/memory_passdb.hpp"
#include "protocol/server_session.hpp"
#include "storage/memory/memory_maildrop.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pigeon::test {

struct TranscriptLine {
    std::size_t line_number = 0;
    char kind = 0;                  // 'C' client bytes, 'S' server line, '!' directive
    std::string text;               // for C, the raw bytes to send; for S, the expected line
    std::vector<std::string> words; // for '!': the directive and its arguments
};

struct Transcript {
    std::string name;
    std::vector<TranscriptLine> lines;
};

Transcript load_transcript(const std::string& path);

// What a transcript's set-up lines describe.
struct TranscriptSetup {
    protocol::ServerPolicy policy;
    std::shared_ptr<storage::MemoryMaildropStore> store = std::make_shared<storage::MemoryMaildropStore>();
    std::shared_ptr<auth::MemoryPassDb> passdb = std::make_shared<auth::MemoryPassDb>();
    std::size_t first_dialogue = 0; // index of the first C:/S: line
};

// Reads the set-up lines; returns an empty string, or what is wrong with them.
std::string prepare_transcript(const Transcript& transcript, TranscriptSetup& setup);

// The server a transcript talks to: ServerSession in-process, or pigeond over a socket.
class TranscriptPeer {
public:
    TranscriptPeer() = default;
    TranscriptPeer(const TranscriptPeer&) = delete;
    TranscriptPeer& operator=(const TranscriptPeer&) = delete;
    virtual ~TranscriptPeer() = default;

    // The server's first output (the greeting).
    virtual std::string start() = 0;
    // Sends one client packet (byte by byte if asked); returns the output seen so far.
    virtual std::string send(std::string_view packet, bool bytewise) = 0;
    // Output arriving later: appends to `pending` until it holds `want` octets, the connection
    // ends or a time bound passes (over a socket; in-process all output is already there).
    virtual void await_output(std::string& pending, std::size_t want) = 0;
    virtual bool tls_started() = 0;
    virtual std::string complete_tls() = 0;
    // Whether the server closed the connection; output before the close is appended.
    virtual bool closed(std::string& pending) = 0;
    // Commits of deletions, where the peer can count them.
    virtual std::optional<std::size_t> commits() = 0;
    // Whether output after the last expected line can be told from output not yet arrived.
    virtual bool exact_end() = 0;
};

// Replays a transcript against a peer; returns an empty string on success, else a description
// of the first mismatch. With bytewise set, every packet is fed one byte at a time.
std::string run_transcript_with(const Transcript& transcript, TranscriptSetup& setup, TranscriptPeer& peer,
                                bool bytewise);

// The same against ServerSession in-process (tests/support/session_driver.hpp).
std::string run_transcript(const Transcript& transcript, bool bytewise);

std::string unescape(std::string_view text);

// The files of a transcript directory with this extension (".pop3", ".lmtp"), sorted.
std::vector<std::string> transcript_files(const std::string& directory, std::string_view extension);
// A GoogleTest parameter name for a transcript file: "015-retr-dot-stuffing.pop3" → "015_retr_dot_stuffing".
std::string transcript_test_name(const std::string& file);

} // namespace pigeon::test
