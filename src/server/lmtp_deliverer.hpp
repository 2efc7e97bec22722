// The LMTP side of local delivery: net::LmtpDeliverer over delivery::LocalDelivery (the user
// database, quota, trace headers, the store), so LMTP and `pigeon deliver` decide and store
// alike. Each refusal becomes the reply Dovecot's LMTP gives for it (delivery::reply_code).
#pragma once

#include "delivery/local_delivery.hpp"
#include "net/lmtp_server.hpp"

#include <memory>

namespace pigeon::auth {
class PassDb;
} // namespace pigeon::auth

namespace pigeon::server {

struct Stores;

class LocalLmtpDeliverer final : public net::LmtpDeliverer {
public:
    // Keeps the user database and the stores alive as long as it lives.
    LocalLmtpDeliverer(std::shared_ptr<auth::PassDb> passdb, std::shared_ptr<storage::Delivery> store,
                       std::shared_ptr<delivery::UsageTracker> usage, delivery::DeliveryOptions options);

    [[nodiscard]] protocol::LmtpReply check_recipient(const std::string& address,
                                                      std::uint64_t declared_size) override;
    [[nodiscard]] std::unique_ptr<net::LmtpDelivery>
    begin(const std::string& sender, const std::vector<std::string>& recipients) override;

    // The LMTP reply for a refusal.
    [[nodiscard]] protocol::LmtpReply reply_for(const delivery::Refusal& refusal,
                                                const std::string& address) const;

private:
    std::shared_ptr<auth::PassDb> m_passdb;
    std::shared_ptr<storage::Delivery> m_store;
    std::shared_ptr<delivery::UsageTracker> m_usage;
    delivery::LocalDelivery m_local;
};

} // namespace pigeon::server
