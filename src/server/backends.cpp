#include "server/backends.hpp"

#include "auth/passwd_file/passwd_file_passdb.hpp"
#include "auth/password_scheme.hpp"
#include "auth/sqlite/sqlite_passdb.hpp"
#include "storage/maildir/maildir_store.hpp"
#include "storage/mbox/mbox_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace pigeon::server {
namespace {

// Dovecot's auth_username_format = %Lu: user names are looked up in lower case.
class LowercasePassDb final : public auth::PassDb {
public:
    explicit LowercasePassDb(std::shared_ptr<auth::PassDb> inner) : m_inner(std::move(inner)) {}
    Result<std::optional<auth::UserRecord>> lookup(std::string_view user) override
    {
        std::string lowered(user);
        std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        return m_inner->lookup(lowered);
    }

private:
    std::shared_ptr<auth::PassDb> m_inner;
};

} // namespace

tl::expected<std::shared_ptr<auth::PassDb>, std::string> open_passdb(const config::Config& config,
                                                                     const PassDbOpening& opening)
{
    std::shared_ptr<auth::PassDb> passdb;
    if (config.passdb.driver == "sqlite") {
        std::error_code missing;
        if (!opening.create_sqlite && !std::filesystem::exists(config.passdb.path, missing)) {
            return tl::unexpected(fmt::format("{}: passdb: {} does not exist (pigeond would create it empty; "
                                              "add users with pigeon user add --db {})",
                                              config.file.string(), config.passdb.path, config.passdb.path));
        }
        std::string why;
        auto db = auth::SqlitePassDb::open(config.passdb.path, &why);
        if (!db) {
            return tl::unexpected(fmt::format("{}: passdb: cannot open {}: {}", config.file.string(),
                                              config.passdb.path, why.empty() ? db.error().message() : why));
        }
        passdb = std::move(*db);
    } else {
        if (!auth::scheme_from_name(config.passdb.default_scheme)) {
            std::string known;
            for (const auto scheme : auth::all_password_schemes()) {
                known += known.empty() ? "" : ", ";
                known += auth::scheme_name(scheme);
            }
            return tl::unexpected(fmt::format("{}: passdb.default_scheme: unknown scheme \"{}\" (known: {})",
                                              config.file.string(), config.passdb.default_scheme, known));
        }
        auth::PasswdFileOptions options;
        options.path = config.passdb.path;
        options.default_scheme = config.passdb.default_scheme;
        options.log = opening.passwd_file_log;
        auto file = std::make_shared<auth::PasswdFilePassDb>(std::move(options));
        if (auto read = file->reload(); !read) {
            const std::string why =
                fmt::format("passdb: cannot read {}: {}", config.passdb.path,
                            file->status().last_error_message.empty() ? read.error().message()
                                                                      : file->status().last_error_message);
            if (opening.passwd_file_required) {
                return tl::unexpected(fmt::format("{}: {}", config.file.string(), why));
            }
            if (opening.error) {
                opening.error(fmt::format("{} (every login fails until it can be read)", why));
            }
        }
        passdb = std::move(file);
    }
    if (config.passdb.lowercase_usernames) {
        passdb = std::make_shared<LowercasePassDb>(std::move(passdb));
    }
    return passdb;
}

Stores open_stores(const config::Config& config)
{
    Stores stores;
    if (config.storage.driver == "maildir") {
        storage::MaildirOptions options;
        options.path_template = config.storage.location;
        options.takeover = config.storage.takeover;
        auto store = std::make_shared<storage::MaildirStore>(std::move(options));
        stores.maildrops = store;
        stores.delivery = store;
        stores.usage = std::make_shared<delivery::MaildirUsage>(config.storage.location);
    } else {
        storage::MboxOptions options;
        options.path_template = config.storage.location;
        options.index_directory_template = config.storage.index_directory;
        options.dotlock = config.storage.dotlock;
        options.takeover = config.storage.takeover;
        auto store = std::make_shared<storage::MboxStore>(std::move(options));
        stores.maildrops = store;
        stores.delivery = store;
        stores.usage = std::make_shared<delivery::MboxUsage>(store);
    }
    return stores;
}

delivery::DeliveryOptions delivery_options(const config::Config& config)
{
    delivery::DeliveryOptions options;
    const auto limit = [](std::uint64_t value) {
        return value == 0 ? std::nullopt : std::optional<std::uint64_t>(value);
    };
    options.quota.defaults.bytes = limit(config.quota.default_storage);
    options.quota.defaults.messages = limit(config.quota.default_messages);
    options.quota.grace_percent = config.quota.grace_percent;
    options.quota.grace_octets = config.quota.grace_octets;
    options.quota.full_tempfail = config.quota.full_tempfail;
    options.recipient_delimiter = config.delivery.recipient_delimiter;
    options.max_message_octets = config.delivery.max_message_size;
    return options;
}

} // namespace pigeon::server
