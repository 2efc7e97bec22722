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

#include <cstddef>
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

// Replays a transcript; returns an empty string on success, else a description of the first
// mismatch. With bytewise set, every packet is fed one byte at a time.
std::string run_transcript(const Transcript& transcript, bool bytewise);

std::string unescape(std::string_view text);

} // namespace pigeon::test
