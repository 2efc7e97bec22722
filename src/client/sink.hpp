// Where pigeon fetch puts a downloaded message: a Maildir, an mbox, or a delivery command. A
// message goes through three steps so that a kill at any moment leaves it stored exactly once
// (fetch_state.hpp records the step between them):
//
//   1. write() + prepare(): the whole message is written and fsynced somewhere invisible (the
//      Maildir's tmp/, a spool file beside the state);
//   2. publish(): the one step that makes it visible (a rename into new/, an append to the mbox
//      under its locks, the command run with the message on its stdin), made durable; right
//      before it, the sink hands the caller a TARGET that says how to find out later whether
//      this step happened, and the caller journals it;
//   3. the caller records the unique-id.
//
// After a kill between 1 and 3, resolve(TARGET) at the next run says whether the message is
// there: a Maildir finds its file in new/ or cur/ (or completes the rename from tmp/); an mbox
// compares the recorded region's SHA-256 and removes a partial append; a command cannot be asked,
// so its message is delivered again (at least once, as with any MDA).
//
// Messages arrive with CRLF line ends (POP3); local stores get LF, as mail readers expect.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace pigeon::client {

using SinkResult = tl::expected<void, std::string>;

class SinkMessage {
public:
    SinkMessage() = default;
    SinkMessage(const SinkMessage&) = delete;
    SinkMessage& operator=(const SinkMessage&) = delete;
    // Removes whatever an unpublished message left behind.
    virtual ~SinkMessage() = default;

    // Message octets with LF line ends, in pieces.
    [[nodiscard]] virtual SinkResult write(std::string_view bytes) = 0;
    // Step 1 done: the message is complete and durable where nobody sees it yet.
    [[nodiscard]] virtual SinkResult prepare() = 0;
    // Step 2: calls `intend(TARGET)` (which must make TARGET durable) right before the step that
    // makes the message visible, then takes that step.
    [[nodiscard]] virtual SinkResult publish(const std::function<SinkResult(const std::string&)>& intend) = 0;
};

class Sink {
public:
    Sink() = default;
    Sink(const Sink&) = delete;
    Sink& operator=(const Sink&) = delete;
    virtual ~Sink() = default;

    [[nodiscard]] virtual tl::expected<std::unique_ptr<SinkMessage>, std::string> begin() = 0;
    // Whether the delivery a killed run described by `target` happened (and is now complete).
    [[nodiscard]] virtual tl::expected<bool, std::string> resolve(const std::string& target) = 0;
    [[nodiscard]] virtual std::string describe() const = 0;
};

struct SinkOptions {
    std::string spool_directory; // for mbox and command messages
    std::string account;         // for the command's environment
    std::chrono::milliseconds command_timeout{std::chrono::minutes(5)};
};

// "maildir:PATH", "mbox:PATH" or "command:COMMAND".
[[nodiscard]] tl::expected<std::unique_ptr<Sink>, std::string> make_sink(const std::string& deliver_to,
                                                                         const SinkOptions& options);

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
    std::string m_held; // '>'s and a partial "From " at the start of a line, undecided
};

} // namespace pigeon::client
