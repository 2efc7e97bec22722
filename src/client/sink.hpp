// Where pigeon fetch puts a downloaded message: a Maildir, an mbox, or a delivery command.
// Messages go through three steps, in groups so that one fsync serves many messages, and so that
// a kill at any moment leaves each stored exactly once (fetch_state.hpp journals the steps):
//
//   1. write() + finish(), then sync() of the group: each message is complete and durable
//      somewhere invisible (the Maildir's tmp/, a spool file beside the state);
//   2. publish() of the group: right before the step that makes messages visible (renames into
//      new/, appends to the mbox under its locks, the command run with the message on its
//      stdin), the sink hands the caller each message's TARGET, which says how to find out later
//      whether that step happened; the caller journals them durably; then the step, made durable;
//   3. the caller records the unique-ids.
//
// After a kill between 1 and 3, resolve(TARGET) at the next run says whether the message is
// there: a Maildir finds its file in new/ or cur/ (or completes the rename from tmp/); an mbox
// compares the recorded region's SHA-256 and removes a partial append; a command cannot be asked,
// so its message is delivered again (at least once, as with any MDA).
//
// Messages arrive with CRLF line ends (POP3); local stores get LF, as mail readers expect.
#pragma once

#include "core/secret.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

namespace pigeon::client {

using SinkResult = tl::expected<void, std::string>;

// Why a target cannot take mail: retrying later may help (temporary), or not until the
// configuration or the credentials change.
struct SinkTrouble {
    enum class Kind {
        temporary,
        auth,
        config
    } kind = Kind::temporary;
    std::string message;
};

class SinkMessage {
public:
    SinkMessage() = default;
    SinkMessage(const SinkMessage&) = delete;
    SinkMessage& operator=(const SinkMessage&) = delete;
    SinkMessage(SinkMessage&&) = delete;
    SinkMessage& operator=(SinkMessage&&) = delete;
    // Removes whatever an unpublished message left behind.
    virtual ~SinkMessage() = default;

    // Message octets with LF line ends, in pieces.
    [[nodiscard]] virtual SinkResult write(std::string_view bytes) = 0;
    // The message is complete (durable only after Sink::sync()).
    [[nodiscard]] virtual SinkResult finish() = 0;
};

// Journals the targets of messages about to become visible; durable when it returns.
using Intend = std::function<SinkResult(const std::vector<std::string>& targets)>;

class Sink {
public:
    Sink() = default;
    Sink(const Sink&) = delete;
    Sink& operator=(const Sink&) = delete;
    Sink(Sink&&) = delete;
    Sink& operator=(Sink&&) = delete;
    virtual ~Sink() = default;

    [[nodiscard]] virtual tl::expected<std::unique_ptr<SinkMessage>, std::string> begin() = 0;
    // Makes a group of finished messages durable (one syncfs() or a few fsync()s).
    [[nodiscard]] virtual SinkResult sync(const std::vector<SinkMessage*>& group) = 0;
    // Makes a synced group visible, calling `intend` first (perhaps once per message); one result
    // per message, in order.
    [[nodiscard]] virtual std::vector<SinkResult> publish(const std::vector<SinkMessage*>& group,
                                                          const Intend& intend) = 0;
    // Whether the target can take mail now (an IMAP target logs in and selects its mailbox), so
    // that a target that cannot work is known before anything is downloaded.
    [[nodiscard]] virtual tl::expected<void, SinkTrouble> prepare() { return {}; }
    // Whether the delivery a killed run described by `target` happened (and is now complete).
    [[nodiscard]] virtual tl::expected<bool, std::string> resolve(const std::string& target) = 0;
    [[nodiscard]] virtual std::string describe() const = 0;
};

// An IMAP target's connection (imap_sink.cpp): the URL comes from deliver_to.
struct ImapOptions {
    std::string user;
    SecretString secret; // the password, or the OAuth 2.0 access token
    bool secret_is_token = false;
    std::string ca_file; // empty: the system's trust store
    bool allow_plaintext = false;
    bool mark_seen = false; // leave \Seen on appended messages (libcurl sets it)
    std::chrono::milliseconds connect_timeout{30'000};
    std::chrono::milliseconds timeout{120'000};
};

struct SinkOptions {
    std::string spool_directory; // for mbox, command and IMAP messages
    std::string account;         // for the command's environment
    std::chrono::milliseconds command_timeout{std::chrono::minutes(5)};
    ImapOptions imap;
};

// "maildir:PATH", "mbox:PATH", "command:COMMAND" or "imap:URL" (imaps://HOST[:PORT]/MAILBOX, or
// imap:// with STARTTLS).
[[nodiscard]] tl::expected<std::unique_ptr<Sink>, std::string> make_sink(const std::string& deliver_to,
                                                                         SinkOptions options);

// Converts CRLF to LF across pieces (a CR at the end of a piece waits for the next one).
class CrlfToLf {
public:
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    bool m_cr = false;
};

// mboxrd quoting (a line matching ^>*From  gains one '>'), across pieces.
class MboxrdQuoter {
public:
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    bool m_line_start = true;
    std::size_t m_gts = 0;  // '>'s at the start of the line, held until decided
    std::size_t m_from = 0; // octets of "From " matched after them
};

} // namespace pigeon::client
