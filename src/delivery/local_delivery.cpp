#include "delivery/local_delivery.hpp"

#include "auth/passdb.hpp"
#include "core/strings.hpp"
#include "storage/delivery.hpp"
#include "storage/fs_util.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace pigeon::delivery {
namespace {

// The start of a message held back until the trace headers can be chosen: up to the end of the
// header section (add_missing) or of the first line (add, for its line end), at most this much.
// RFC 5322 §2.1.1 lines are at most 998 octets; headers far larger than 64 KiB are not real mail.
constexpr std::size_t max_head_octets = std::size_t{64} * 1024;

constexpr std::string_view unknown_user_text = "User doesn't exist: ";
constexpr std::string_view too_big_text = "Message size exceeds fixed maximum message size"; // RFC 1870 §6.1
constexpr std::string_view temporary_text = "Temporary internal error";

std::string_view trim(std::string_view text) noexcept
{
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return text;
}

// An address as it goes into a header: without the angle brackets of a path, and with every
// control character (CR and LF above all: a header injection) replaced.
std::string header_safe(std::string_view address)
{
    address = trim(address);
    if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
        address = address.substr(1, address.size() - 2);
    }
    std::string out(address);
    std::replace_if(
        out.begin(), out.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; },
        '_');
    return out;
}

// Whether a Delivered-To: value names `address`; an address without a domain (a user name, as
// `pigeon deliver -u` has it) matches the local part of a full one, with or without its
// "+detail" (Postfix's local(8) writes Delivered-To: user+tag@domain for user).
bool same_recipient(std::string_view value, std::string_view address, std::string_view delimiters)
{
    const std::string named = header_safe(value);
    if (iequals(named, address)) {
        return true;
    }
    const std::size_t at = named.rfind('@');
    if (address.find('@') != std::string_view::npos || at == std::string::npos) {
        return false;
    }
    const std::string_view local = std::string_view(named).substr(0, at);
    if (iequals(local, address)) {
        return true;
    }
    const std::size_t detail = delimiters.empty() ? std::string_view::npos : local.find_first_of(delimiters);
    return detail != std::string_view::npos && iequals(local.substr(0, detail), address);
}

// The local part without RFC 5321 quoting ("a b"@x is the user a b).
std::string unquote(std::string_view local)
{
    if (local.size() < 2 || local.front() != '"' || local.back() != '"') {
        return std::string(local);
    }
    std::string out;
    for (std::size_t i = 1; i + 1 < local.size(); ++i) {
        if (local[i] == '\\' && i + 2 < local.size()) {
            ++i;
        }
        out.push_back(local[i]);
    }
    return out;
}

} // namespace

ReplyCode reply_code(const Refusal& refusal, bool quota_full_tempfail) noexcept
{
    switch (refusal.verdict) {
    case Verdict::unknown_user: return {550, "5.1.1"};
    case Verdict::over_quota: return quota_full_tempfail ? ReplyCode{452, "4.2.2"} : ReplyCode{552, "5.2.2"};
    case Verdict::too_big: return {552, "5.3.4"};
    case Verdict::temporary: break;
    }
    return {451, "4.3.0"};
}

int exit_status(const Refusal& refusal, bool quota_full_tempfail) noexcept
{
    constexpr int ex_nouser = 67;
    constexpr int ex_tempfail = 75;
    constexpr int ex_noperm = 77;
    switch (refusal.verdict) {
    case Verdict::unknown_user: return ex_nouser;
    case Verdict::over_quota: return quota_full_tempfail ? ex_tempfail : ex_noperm;
    case Verdict::too_big: return ex_noperm;
    case Verdict::temporary: break;
    }
    return ex_tempfail;
}

// --- PendingMessage ----------------------------------------------------------------------------

PendingMessage::PendingMessage(LocalDelivery& owner, Recipient recipient, std::string trace_return_path,
                               std::string trace_delivered_to, TraceHeaders mode,
                               std::unique_ptr<storage::PendingDelivery> pending)
    : m_owner(owner), m_recipient(std::move(recipient)), m_return_path(std::move(trace_return_path)),
      m_delivered_to(std::move(trace_delivered_to)), m_mode(mode), m_pending(std::move(pending))
{
}

PendingMessage::~PendingMessage() = default;

tl::unexpected<Refusal> PendingMessage::fail(Refusal refusal)
{
    m_failed = refusal;
    m_pending.reset(); // removes what was written
    return tl::unexpected(std::move(refusal));
}

Verdicted<void> PendingMessage::write(std::string_view bytes)
{
    if (m_failed) {
        return tl::unexpected(*m_failed);
    }
    m_received += bytes.size();
    const std::uint64_t limit = m_owner.m_options.max_message_octets;
    if (limit != 0 && m_received > limit) {
        return fail({Verdict::too_big, std::string(too_big_text)});
    }
    if (m_head_written) {
        return store(bytes);
    }
    m_head.append(bytes);
    if (head_complete()) {
        return flush_head();
    }
    return {};
}

bool PendingMessage::head_complete() const noexcept
{
    if (m_head.size() >= max_head_octets) {
        return true;
    }
    if (m_mode == TraceHeaders::add) {
        return m_head.find('\n') != std::string::npos;
    }
    // The blank line that ends the header section (or a message that starts with one).
    return m_head.starts_with('\n') || m_head.starts_with("\r\n") ||
           m_head.find("\n\n") != std::string::npos || m_head.find("\n\r\n") != std::string::npos;
}

Verdicted<void> PendingMessage::flush_head()
{
    m_head_written = true;
    // The trace headers take the line end of the message's first line, so a CRLF message stays
    // CRLF throughout and an LF one LF.
    const std::size_t first_end = m_head.find('\n');
    const std::string_view eol =
        first_end != std::string::npos && first_end > 0 && m_head[first_end - 1] == '\r'
            ? std::string_view("\r\n")
            : std::string_view("\n");
    bool add_return_path = true;
    bool add_delivered_to = true;
    if (m_mode == TraceHeaders::add_missing) {
        std::string_view rest = m_head;
        for (std::size_t end = rest.find('\n'); end != std::string_view::npos; end = rest.find('\n')) {
            std::string_view line = rest.substr(0, end);
            rest.remove_prefix(end + 1);
            if (line.ends_with('\r')) {
                line.remove_suffix(1);
            }
            if (line.empty()) {
                break; // the end of the header section
            }
            const std::size_t colon = line.find(':');
            if (line.front() == ' ' || line.front() == '\t' || colon == std::string_view::npos) {
                continue; // a continuation line, or not a field
            }
            const std::string_view name = trim(line.substr(0, colon));
            if (iequals(name, "Return-Path")) {
                add_return_path = false;
            } else if (iequals(name, "Delivered-To") &&
                       same_recipient(line.substr(colon + 1), m_delivered_to,
                                      m_owner.options().recipient_delimiter)) {
                add_delivered_to = false;
            }
        }
    }
    std::string trace;
    if (add_return_path) {
        trace += fmt::format("Return-Path: <{}>{}", m_return_path, eol);
    }
    if (add_delivered_to) {
        trace += fmt::format("Delivered-To: {}{}", m_delivered_to, eol);
    }
    if (!trace.empty()) {
        if (auto stored = store(trace); !stored) {
            return stored;
        }
    }
    std::string head = std::move(m_head);
    m_head.clear();
    return store(head);
}

Verdicted<void> PendingMessage::store(std::string_view bytes)
{
    if (bytes.empty()) {
        return {};
    }
    if (auto written = m_pending->write(bytes); !written) {
        m_owner.log(fmt::format("delivery to {} failed: cannot write to {}: {}", m_recipient.user,
                                m_owner.m_usage.location(m_recipient.user), written.error().message()));
        return fail({Verdict::temporary, std::string(temporary_text)});
    }
    m_stored += bytes.size();
    return {};
}

Verdicted<std::string> PendingMessage::commit()
{
    if (m_failed) {
        return tl::unexpected(*m_failed);
    }
    if (!m_head_written) {
        if (auto flushed = flush_head(); !flushed) {
            return tl::unexpected(flushed.error());
        }
    }
    auto committed = m_owner.commit(*this);
    if (!committed) {
        return fail(committed.error());
    }
    m_failed = Refusal{Verdict::temporary, "already committed"}; // one message, one commit
    return committed;
}

// --- LocalDelivery -----------------------------------------------------------------------------

LocalDelivery::LocalDelivery(auth::PassDb& passdb, storage::Delivery& store, UsageTracker& usage,
                             DeliveryOptions options)
    : m_passdb(passdb), m_store(store), m_usage(usage), m_options(std::move(options))
{
}

LocalDelivery::~LocalDelivery() = default;

void LocalDelivery::log(std::string_view line) const
{
    if (m_options.log) {
        m_options.log(line);
    }
}

Refusal LocalDelivery::temporary(const std::string& log_line) const
{
    log(log_line);
    return {Verdict::temporary, std::string(temporary_text)};
}

std::vector<std::string> LocalDelivery::lookup_candidates(std::string_view address,
                                                          std::string_view delimiters)
{
    std::string bare = header_safe(address);
    if (bare.empty()) {
        return {};
    }
    const std::size_t at = bare.rfind('@');
    const std::string_view domain =
        at == std::string::npos ? std::string_view() : std::string_view(bare).substr(at + 1);
    std::string local = unquote(std::string_view(bare).substr(0, at));
    // Dovecot's smtp_address_detail_parse(): the detail starts at the first delimiter character.
    if (const std::size_t cut = delimiters.empty() ? std::string::npos : local.find_first_of(delimiters);
        cut != std::string::npos && cut > 0) {
        local.resize(cut);
    }
    std::vector<std::string> candidates;
    if (!domain.empty()) {
        candidates.push_back(fmt::format("{}@{}", local, domain));
    }
    if (!local.empty()) {
        candidates.push_back(local);
    }
    return candidates;
}

Verdicted<Recipient> LocalDelivery::check_recipient(std::string_view address, std::uint64_t declared_size)
{
    if (m_options.max_message_octets != 0 && declared_size > m_options.max_message_octets) {
        return tl::unexpected(Refusal{Verdict::too_big, std::string(too_big_text)});
    }
    const std::string clean = header_safe(address);
    for (const std::string& candidate : lookup_candidates(address, m_options.recipient_delimiter)) {
        auto record = m_passdb.lookup(candidate);
        if (!record) {
            return tl::unexpected(
                temporary(fmt::format("delivery to {} failed: user database lookup of {}: {}", clean,
                                      candidate, record.error().message())));
        }
        if (*record) {
            return accept(**record, clean, declared_size);
        }
    }
    return tl::unexpected(Refusal{Verdict::unknown_user, fmt::format("{}{}", unknown_user_text, clean)});
}

Verdicted<Recipient> LocalDelivery::check_user(std::string_view user, std::string_view address,
                                               std::uint64_t declared_size)
{
    if (m_options.max_message_octets != 0 && declared_size > m_options.max_message_octets) {
        return tl::unexpected(Refusal{Verdict::too_big, std::string(too_big_text)});
    }
    const std::string clean_user = header_safe(user);
    auto record = m_passdb.lookup(user);
    if (!record) {
        return tl::unexpected(temporary(fmt::format("delivery to {} failed: user database lookup: {}",
                                                    clean_user, record.error().message())));
    }
    if (!*record) {
        return tl::unexpected(
            Refusal{Verdict::unknown_user, fmt::format("{}{}", unknown_user_text, clean_user)});
    }
    return accept(**record, address.empty() ? std::string_view(clean_user) : address, declared_size);
}

Verdicted<Recipient> LocalDelivery::accept(const auth::UserRecord& record, std::string_view address,
                                           std::uint64_t declared_size)
{
    auto quota = quota_for(record, m_options.quota);
    if (!quota) {
        return tl::unexpected(temporary(
            fmt::format("delivery to {} failed: invalid quota rule: {}", record.name, quota.error())));
    }
    Recipient recipient{record.name, header_safe(address), *quota};
    if (!recipient.quota.unlimited()) {
        if (auto checked = check_quota(recipient, declared_size); !checked) {
            return tl::unexpected(checked.error());
        }
    }
    return recipient;
}

Verdicted<void> LocalDelivery::check_quota(const Recipient& recipient, std::uint64_t octets)
{
    const std::uint64_t grace = grace_octets(recipient.quota, m_options.quota);
    for (const Freshness freshness : {Freshness::cached, Freshness::before_refusal}) {
        auto usage = m_usage.usage(recipient.user, freshness);
        if (!usage) {
            return tl::unexpected(temporary(
                fmt::format("delivery to {} failed: cannot count the maildrop {}: {}", recipient.user,
                            m_usage.location(recipient.user), usage.error().message())));
        }
        if (fits(recipient.quota, *usage, octets, grace)) {
            return {};
        }
    }
    return tl::unexpected(Refusal{Verdict::over_quota, m_options.quota_exceeded_message});
}

Verdicted<std::unique_ptr<PendingMessage>> LocalDelivery::begin(const Recipient& recipient,
                                                                std::string_view sender, TraceHeaders trace)
{
    auto pending = m_store.begin(recipient.user);
    if (!pending) {
        return tl::unexpected(
            temporary(fmt::format("delivery to {} failed: cannot start a message in {}: {}", recipient.user,
                                  m_usage.location(recipient.user), pending.error().message())));
    }
    // The constructor is private (only LocalDelivery starts messages), so no make_unique.
    return std::unique_ptr<PendingMessage>(new PendingMessage(
        *this, recipient, header_safe(sender), header_safe(recipient.address), trace, std::move(*pending)));
}

Verdicted<std::string> LocalDelivery::commit(PendingMessage& message)
{
    const Recipient& recipient = message.m_recipient;
    const std::uint64_t octets = message.m_stored;
    if (recipient.quota.unlimited()) {
        auto unique_id = message.m_pending->commit();
        if (unique_id) {
            m_usage.delivered(recipient.user, octets, storage::now_ns());
        }
        return finish_commit(recipient, std::move(unique_id));
    }
    // For a user with a quota, the check, the commit and the record of the new message are one
    // step among this process's deliveries to that user: two messages cannot both pass the check
    // on the same figure, and a message is never counted twice (in the maildrop and as in flight).
    const std::shared_ptr<InFlight> in_flight = acquire(recipient.user);
    Verdicted<std::string> result;
    {
        const std::lock_guard lock(in_flight->mutex);
        if (auto checked = check_quota(recipient, octets); !checked) {
            result = tl::unexpected(checked.error());
        } else {
            auto unique_id = message.m_pending->commit();
            if (unique_id) {
                m_usage.delivered(recipient.user, octets, storage::now_ns());
            }
            result = finish_commit(recipient, std::move(unique_id));
        }
    }
    release(recipient.user);
    return result;
}

Verdicted<std::string> LocalDelivery::finish_commit(const Recipient& recipient, Result<std::string> unique_id)
{
    if (!unique_id) {
        return tl::unexpected(temporary(
            fmt::format("delivery to {} failed: cannot commit the message to {}: {}", recipient.user,
                        m_usage.location(recipient.user), unique_id.error().message())));
    }
    return std::move(*unique_id);
}

std::shared_ptr<LocalDelivery::InFlight> LocalDelivery::acquire(const std::string& user)
{
    const std::lock_guard lock(m_in_flight_mutex);
    auto& slot = m_in_flight[user];
    if (!slot) {
        slot = std::make_shared<InFlight>();
    }
    ++slot->holders;
    return slot;
}

void LocalDelivery::release(const std::string& user)
{
    const std::lock_guard lock(m_in_flight_mutex);
    const auto found = m_in_flight.find(user);
    if (found != m_in_flight.end() && --found->second->holders == 0) {
        m_in_flight.erase(found);
    }
}

} // namespace pigeon::delivery
