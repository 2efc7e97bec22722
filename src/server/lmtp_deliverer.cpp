#include "server/lmtp_deliverer.hpp"

#include <fmt/format.h>

#include <optional>
#include <utility>

namespace pigeon::server {
namespace {

// One message for several recipients: a PendingMessage each, written alike; a recipient whose
// delivery failed keeps its refusal and is skipped afterwards.
class LocalLmtpDelivery final : public net::LmtpDelivery {
public:
    struct Target {
        std::string address;
        std::unique_ptr<delivery::PendingMessage> pending;
        std::optional<protocol::LmtpReply> failed;
    };

    LocalLmtpDelivery(const LocalLmtpDeliverer& owner, std::vector<Target> targets)
        : m_owner(owner), m_targets(std::move(targets))
    {
    }

    void write(std::string_view bytes) override
    {
        for (auto& target : m_targets) {
            if (target.failed) {
                continue;
            }
            if (auto written = target.pending->write(bytes); !written) {
                target.failed = m_owner.reply_for(written.error(), target.address);
                target.pending.reset(); // removes what was written
            }
        }
    }

    std::vector<protocol::LmtpReply> commit() override
    {
        std::vector<protocol::LmtpReply> replies;
        replies.reserve(m_targets.size());
        for (auto& target : m_targets) {
            if (target.failed) {
                replies.push_back(*target.failed);
                continue;
            }
            auto committed = target.pending->commit();
            if (!committed) {
                replies.push_back(m_owner.reply_for(committed.error(), target.address));
            } else {
                replies.push_back({250, "2.0.0", fmt::format("<{}> {} Saved", target.address, *committed)});
            }
        }
        return replies;
    }

private:
    const LocalLmtpDeliverer& m_owner;
    std::vector<Target> m_targets;
};

} // namespace

LocalLmtpDeliverer::LocalLmtpDeliverer(std::shared_ptr<auth::PassDb> passdb,
                                       std::shared_ptr<storage::Delivery> store,
                                       std::shared_ptr<delivery::UsageTracker> usage,
                                       delivery::DeliveryOptions options)
    : m_passdb(std::move(passdb)), m_store(std::move(store)), m_usage(std::move(usage)),
      m_local(*m_passdb, *m_store, *m_usage, std::move(options))
{
}

protocol::LmtpReply LocalLmtpDeliverer::reply_for(const delivery::Refusal& refusal,
                                                  const std::string& address) const
{
    const auto code = delivery::reply_code(refusal, m_local.options().quota.full_tempfail);
    return {static_cast<int>(code.code), std::string(code.status),
            fmt::format("<{}> {}", address, refusal.detail)};
}

protocol::LmtpReply LocalLmtpDeliverer::check_recipient(const std::string& address,
                                                        std::uint64_t declared_size)
{
    auto recipient = m_local.check_recipient(address, declared_size);
    if (!recipient) {
        return reply_for(recipient.error(), address);
    }
    return {250, "2.1.5", fmt::format("<{}> OK", address)};
}

std::unique_ptr<net::LmtpDelivery> LocalLmtpDeliverer::begin(const std::string& sender,
                                                             const std::vector<std::string>& recipients)
{
    std::vector<LocalLmtpDelivery::Target> targets;
    targets.reserve(recipients.size());
    for (const auto& address : recipients) {
        LocalLmtpDelivery::Target target;
        target.address = address;
        // Looked up again: RCPT's answer may be minutes old (a user removed since is refused now).
        auto recipient = m_local.check_recipient(address, 0);
        if (!recipient) {
            target.failed = reply_for(recipient.error(), address);
        } else if (auto pending = m_local.begin(*recipient, sender); !pending) {
            target.failed = reply_for(pending.error(), address);
        } else {
            target.pending = std::move(*pending);
        }
        targets.push_back(std::move(target));
    }
    return std::make_unique<LocalLmtpDelivery>(*this, std::move(targets));
}

} // namespace pigeon::server
