// Local delivery (issue 7): the core that LMTP (pigeond) and `pigeon deliver` share. It resolves
// a recipient to a user of the user database, checks the user's quota, stores the message with
// the trace headers Dovecot's LMTP adds, and reports the outcome as a verdict that both the LMTP
// reply and the LDA's exit status are derived from.
//
// What it owns: the recipient address rules (full address, then local part, without the
// "+detail"), the quota decision at RCPT and again at commit with the real size (the commits of
// one user's messages are serialised in this process, so concurrent deliveries cannot together
// pass the limit), and the trace headers. What it must not know: sockets, LMTP
// or SMTP syntax, command lines, which storage backend holds the mail (storage::Delivery and a
// UsageTracker stand for it).
//
// Verdicts and what Dovecot answers for them (its LMTP and dovecot-lda -e, the defaults):
//   unknown_user  550 5.1.1  EX_NOUSER (67)
//   over_quota    552 5.2.2  EX_NOPERM (77)  with full_tempfail: 452 4.2.2, EX_TEMPFAIL (75)
//   too_big       552 5.3.4  EX_NOPERM (77)  (Dovecot's quota_max_mail_size is a rejection too)
//   temporary     451 4.3.0  EX_TEMPFAIL (75)
//
// Thread-safety: one LocalDelivery serves a worker pool. check_recipient() and begin() may run on
// any threads at once; a PendingMessage belongs to one thread at a time. Every call may block (a
// user database lookup, a directory listing, fsync), so none belongs on an event loop.
#pragma once

#include "delivery/maildrop_usage.hpp"
#include "delivery/quota.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <unordered_map>
#include <vector>

namespace pigeon::auth {
class PassDb;
struct UserRecord;
} // namespace pigeon::auth

namespace pigeon::storage {
class Delivery;
class PendingDelivery;
} // namespace pigeon::storage

namespace pigeon::delivery {

enum class Verdict : std::uint8_t {
    unknown_user,
    over_quota,
    too_big,
    temporary
};

// Why a recipient or a message was not accepted. `detail` is for the peer (the text of an LMTP
// reply, the LDA's line on standard error): one line, no path, no internal error text; those go
// to DeliveryOptions::log.
struct Refusal {
    Verdict verdict = Verdict::temporary;
    std::string detail;
};

template <class T>
using Verdicted = tl::expected<T, Refusal>;

// An LMTP reply for a refusal: "552 5.2.2 <text>" (RFC 2033 §4.2, RFC 3463 codes).
struct ReplyCode {
    unsigned code = 451;
    std::string_view status = "4.3.0";
};
[[nodiscard]] ReplyCode reply_code(const Refusal& refusal, bool quota_full_tempfail) noexcept;

// sysexits(3) code for a refusal, as dovecot-lda -e exits: EX_NOUSER 67, EX_NOPERM 77 (a
// permanent rejection: over quota, too big), EX_TEMPFAIL 75.
[[nodiscard]] int exit_status(const Refusal& refusal, bool quota_full_tempfail) noexcept;

// A recipient accepted by check_recipient(): whose maildrop, under which limits.
struct Recipient {
    std::string user;    // the canonical name from the user database (UserRecord::name)
    std::string address; // the address as the MTA gave it, for Delivered-To:
    Quota quota;
};

// How begin() treats the trace headers.
enum class TraceHeaders : std::uint8_t {
    // Return-Path: and Delivered-To: always, as Dovecot's LMTP does.
    add,
    // Only those the message's header does not already have: Postfix's local(8) and Exim's
    // pipe transport (return_path_add) write their own before running a delivery command. A
    // Delivered-To: counts when it names the recipient's address (or, for an address without a
    // domain, a full address with that local part).
    add_missing
};

struct DeliveryOptions {
    QuotaPolicy quota;
    // Dovecot's recipient_delimiter: each character separates a detail ("user+tag@domain" is
    // user@domain); empty: none.
    std::string recipient_delimiter = "+";
    // The largest message accepted, in octets as received (trace headers not counted); 0: none.
    std::uint64_t max_message_octets = 0;
    // The text of an over-quota refusal (Dovecot's quota_exceeded_message default).
    std::string quota_exceeded_message = "Quota exceeded (mailbox for user is full)";
    // Operator-facing lines: a bad quota rule, a failing user database or disk. May be called
    // from several threads at once.
    std::function<void(std::string_view line)> log;
};

class LocalDelivery;

// One message on its way into one recipient's maildrop. Destroying it before commit() leaves
// nothing behind.
class PendingMessage {
public:
    PendingMessage(const PendingMessage&) = delete;
    PendingMessage& operator=(const PendingMessage&) = delete;
    PendingMessage(PendingMessage&&) = delete;
    PendingMessage& operator=(PendingMessage&&) = delete;
    ~PendingMessage();

    // Message octets as received (LF or CRLF line ends, any octets, any chunking; no dot-stuffing,
    // no final "."). A refusal (too big, a write error) is final: later calls repeat it.
    [[nodiscard]] Verdicted<void> write(std::string_view bytes);
    // Checks the quota again with the real size and makes the message durable; returns the
    // unique-id POP3 will list once the message is on disk (data and directory entry fsynced).
    [[nodiscard]] Verdicted<std::string> commit();

    // Octets received so far (what max_message_octets bounds).
    [[nodiscard]] std::uint64_t received_octets() const noexcept { return m_received; }
    // Octets stored so far, trace headers included (what quota counts).
    [[nodiscard]] std::uint64_t stored_octets() const noexcept { return m_stored; }

private:
    friend class LocalDelivery;
    PendingMessage(LocalDelivery& owner, Recipient recipient, std::string trace_return_path,
                   std::string trace_delivered_to, TraceHeaders mode,
                   std::unique_ptr<storage::PendingDelivery> pending);

    Verdicted<void> store(std::string_view bytes);
    Verdicted<void> flush_head();
    [[nodiscard]] bool head_complete() const noexcept;
    tl::unexpected<Refusal> fail(Refusal refusal);

    LocalDelivery& m_owner;
    Recipient m_recipient;
    std::string m_return_path;  // the sender, without angle brackets ("" for the null sender)
    std::string m_delivered_to; // the address
    TraceHeaders m_mode;
    std::unique_ptr<storage::PendingDelivery> m_pending;
    std::string m_head; // the start of the message, held until the trace headers are written
    bool m_head_written = false;
    std::uint64_t m_received = 0;
    std::uint64_t m_stored = 0;
    std::optional<Refusal> m_failed;
};

class LocalDelivery {
public:
    // `passdb` should already apply the server's user-name rules (lowercase_usernames).
    LocalDelivery(auth::PassDb& passdb, storage::Delivery& store, UsageTracker& usage,
                  DeliveryOptions options);
    LocalDelivery(const LocalDelivery&) = delete;
    LocalDelivery& operator=(const LocalDelivery&) = delete;
    LocalDelivery(LocalDelivery&&) = delete;
    LocalDelivery& operator=(LocalDelivery&&) = delete;
    ~LocalDelivery();

    // RCPT TO: resolves `address` (angle brackets optional) to a user (the whole address without
    // its detail, then its local part without the detail, as Dovecot looks users up with
    // auth_username_format %u and %n) and checks that a message of `declared_size` octets (0:
    // not known yet, e.g. no SIZE parameter) would fit under the user's quota.
    [[nodiscard]] Verdicted<Recipient> check_recipient(std::string_view address,
                                                       std::uint64_t declared_size = 0);
    // The same for a user named outright (`pigeon deliver -u`, as dovecot-lda -d): looked up as
    // given; `address` (may be empty) becomes the recipient's address.
    [[nodiscard]] Verdicted<Recipient> check_user(std::string_view user, std::string_view address,
                                                  std::uint64_t declared_size = 0);

    // Starts storing a message for a recipient check_recipient() accepted. `sender` is the
    // envelope sender (angle brackets optional; empty for the null sender "<>").
    [[nodiscard]] Verdicted<std::unique_ptr<PendingMessage>>
    begin(const Recipient& recipient, std::string_view sender, TraceHeaders trace = TraceHeaders::add);

    [[nodiscard]] const DeliveryOptions& options() const noexcept { return m_options; }

    // The user names check_recipient() tries for an address, in order (exposed for tests).
    [[nodiscard]] static std::vector<std::string> lookup_candidates(std::string_view address,
                                                                    std::string_view delimiters);

private:
    friend class PendingMessage;

    // Serialises the quota check and the commit of one user's messages (users with a quota only).
    struct InFlight {
        std::mutex mutex;
        std::size_t holders = 0; // guarded by m_in_flight_mutex
    };

    Verdicted<Recipient> accept(const auth::UserRecord& record, std::string_view address,
                                std::uint64_t declared_size);
    Verdicted<void> check_quota(const Recipient& recipient, std::uint64_t octets);
    Verdicted<std::string> commit(PendingMessage& message);
    Verdicted<std::string> finish_commit(const Recipient& recipient, Result<std::string> unique_id);
    std::shared_ptr<InFlight> acquire(const std::string& user);
    void release(const std::string& user);
    void log(std::string_view line) const;
    [[nodiscard]] Refusal temporary(const std::string& log_line) const;

    auth::PassDb& m_passdb;
    storage::Delivery& m_store;
    UsageTracker& m_usage;
    const DeliveryOptions m_options;
    std::mutex m_in_flight_mutex;
    std::unordered_map<std::string, std::shared_ptr<InFlight>> m_in_flight;
};

} // namespace pigeon::delivery
