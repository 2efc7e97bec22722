// What a pigeond configuration names besides listeners: the user database ([passdb]), the
// maildrop store ([storage]) with its delivery side and usage tracker, and the local-delivery
// settings ([quota], [delivery]). pigeond (server.cpp's build_services) and `pigeon deliver` open
// them through these functions, so both read the same users and write the same maildrops.
//
// It knows nothing of listeners, sessions, TLS or the event loops.
#pragma once

#include "config/config.hpp"
#include "delivery/local_delivery.hpp"

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace pigeon::auth {
class PassDb;
} // namespace pigeon::auth

namespace pigeon::storage {
class Delivery;
class MaildropStore;
} // namespace pigeon::storage

namespace pigeon::server {

struct PassDbOpening {
    // Create a missing SQLite database (a fresh install, as pigeond does at start); otherwise a
    // missing file is an error and nothing is created.
    bool create_sqlite = true;
    // A passwd-file that cannot be read is an error; otherwise it is reported through `error`
    // (it may appear later; lookups fail until it does).
    bool passwd_file_required = false;
    std::function<void(std::string_view message)> error;
    // What the passwd-file reports while in use (PasswdFileOptions::log: a file that became
    // unreadable, skipped lines).
    std::function<void(std::string_view message)> passwd_file_log;
};

// The user database of [passdb], wrapped to look names up in lower case when
// lowercase_usernames is set. Errors name the configuration file and the key.
[[nodiscard]] tl::expected<std::shared_ptr<auth::PassDb>, std::string>
open_passdb(const config::Config& config, const PassDbOpening& opening);

// The store of [storage]: one object seen as the POP3 side, the delivery side, and the tracker of
// its maildrops' usage for quota.
struct Stores {
    std::shared_ptr<storage::MaildropStore> maildrops;
    std::shared_ptr<storage::Delivery> delivery;
    std::shared_ptr<delivery::UsageTracker> usage;
};
[[nodiscard]] Stores open_stores(const config::Config& config);

// [quota] and [delivery] as delivery::DeliveryOptions (without a log function).
[[nodiscard]] delivery::DeliveryOptions delivery_options(const config::Config& config);

} // namespace pigeon::server
