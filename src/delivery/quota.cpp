#include "delivery/quota.hpp"

#include "auth/passdb.hpp"
#include "core/strings.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>

namespace pigeon::delivery {
namespace {

constexpr std::string_view userdb_prefix = "userdb_";
constexpr std::string_view rule_key = "quota_rule";
constexpr std::int64_t max_limit = std::numeric_limits<std::int64_t>::max();

// A quota_rule key's place: quota_rule is 1, quota_ruleN is N; nothing for other keys.
std::optional<std::uint32_t> rule_index(std::string_view key)
{
    if (!key.starts_with(rule_key)) {
        return std::nullopt;
    }
    const std::string_view number = key.substr(rule_key.size());
    if (number.empty()) {
        return 1;
    }
    if (number.front() == '0') {
        return std::nullopt;
    }
    return parse_u32(number);
}

// Dovecot's wildcard_match(): "*" any run of characters, "?" one character. Iterative, with
// the usual backtrack to the last "*".
bool wildcard_match(std::string_view text, std::string_view mask)
{
    std::size_t t = 0;
    std::size_t m = 0;
    std::size_t star = std::string_view::npos;
    std::size_t resume = 0;
    while (t < text.size()) {
        if (m < mask.size() && (mask[m] == '?' || mask[m] == text[t])) {
            ++t;
            ++m;
        } else if (m < mask.size() && mask[m] == '*') {
            star = m++;
            resume = t;
        } else if (star != std::string_view::npos) {
            m = star + 1;
            t = ++resume;
        } else {
            return false;
        }
    }
    while (m < mask.size() && mask[m] == '*') {
        ++m;
    }
    return m == mask.size();
}

struct LimitValue {
    std::int64_t amount = 0; // octets or messages; for a percentage, the percentage
    bool percent = false;
};

// What the rules of one user set. Fields of the default rule are absolute (0: unlimited);
// those of the INBOX rule are added to them.
struct RuleSet {
    std::optional<std::int64_t> default_bytes;
    std::optional<std::int64_t> default_messages;
    bool default_ignored = false;
    std::string inbox_mask; // the first non-default mask that matches INBOX
    LimitValue inbox_bytes;
    LimitValue inbox_messages;
    bool inbox_ignored = false;
};

tl::expected<std::uint64_t, std::string> multiplier_of(std::string_view unit,
                                                       std::uint64_t default_multiplier)
{
    if (unit.empty()) {
        return default_multiplier;
    }
    if (unit.size() == 1) {
        switch (ascii_upper(unit.front())) {
        case 'B': return 1;
        case 'K': return std::uint64_t{1} << 10;
        case 'M': return std::uint64_t{1} << 20;
        case 'G': return std::uint64_t{1} << 30;
        case 'T': return std::uint64_t{1} << 40;
        default: break;
        }
    }
    return tl::unexpected(fmt::format("unknown unit \"{}\"", unit));
}

// "1G", "+100M", "-5", "10%": a sign only where `relative`, a percentage only where `relative`.
tl::expected<LimitValue, std::string> parse_limit_value(std::string_view text,
                                                        std::uint64_t default_multiplier, bool relative)
{
    bool negative = false;
    if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
        if (!relative) {
            return tl::unexpected(std::string("the default rule (\"*\") takes no sign"));
        }
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    LimitValue value;
    if (text.ends_with('%')) {
        if (!relative) {
            return tl::unexpected(std::string("the default rule (\"*\") cannot be a percentage"));
        }
        const auto percent = parse_u32(text.substr(0, text.size() - 1));
        if (!percent || *percent >= 1'000'000) {
            return tl::unexpected(fmt::format("invalid percentage \"{}%\"", text.substr(0, text.size() - 1)));
        }
        value.amount = negative ? -static_cast<std::int64_t>(*percent) : static_cast<std::int64_t>(*percent);
        value.percent = true;
        return value;
    }
    const auto size = parse_quota_size(text, default_multiplier);
    if (!size) {
        return tl::unexpected(size.error());
    }
    if (*size > static_cast<std::uint64_t>(max_limit)) {
        return tl::unexpected(fmt::format("\"{}\" is too large", text));
    }
    value.amount = negative ? -static_cast<std::int64_t>(*size) : static_cast<std::int64_t>(*size);
    return value;
}

tl::expected<void, std::string> apply_rule(std::string_view rule, RuleSet& set)
{
    const std::size_t colon = rule.find(':');
    if (colon == std::string_view::npos) {
        return tl::unexpected(std::string("not \"<mailbox>:<limits>\""));
    }
    const std::string_view mask = rule.substr(0, colon);
    const std::string_view limits = rule.substr(colon + 1);
    const bool is_default = mask == "*" || mask == "?";
    bool is_inbox = false;
    if (!is_default && (iequals(mask, "INBOX") || wildcard_match("INBOX", mask))) {
        // Dovecot's quota_root_rule_find(): the first rule whose mask matches wins.
        if (set.inbox_mask.empty()) {
            set.inbox_mask = std::string(mask);
        }
        is_inbox = set.inbox_mask == mask;
    }
    if (limits == "ignore") {
        set.default_ignored = set.default_ignored || is_default;
        set.inbox_ignored = set.inbox_ignored || is_inbox;
        return {};
    }
    if (limits.starts_with("backend=")) {
        return tl::unexpected(std::string("backend-specific rules are not supported"));
    }
    std::string_view rest = limits;
    while (true) {
        const std::size_t end = rest.find(':');
        const std::string_view limit = rest.substr(0, end);
        const std::size_t equals = limit.find('=');
        const std::string_view name = limit.substr(0, equals);
        const std::string_view value = equals == std::string_view::npos ? "" : limit.substr(equals + 1);
        std::uint64_t default_multiplier = 1;
        if (name == "storage") {
            default_multiplier = 1024; // Dovecot: storage is in KiB without a unit
        } else if (name != "bytes" && name != "messages") {
            return tl::unexpected(fmt::format("unknown limit \"{}\" (storage, bytes, messages)", name));
        }
        auto parsed = parse_limit_value(value, default_multiplier, !is_default);
        if (!parsed) {
            return tl::unexpected(fmt::format("{}: {}", name, parsed.error()));
        }
        const bool messages = name == "messages";
        if (is_default) {
            (messages ? set.default_messages : set.default_bytes) = parsed->amount;
        } else if (is_inbox) {
            (messages ? set.inbox_messages : set.inbox_bytes) = *parsed;
        }
        if (end == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(end + 1);
    }
    return {};
}

std::optional<std::uint64_t> as_limit(std::int64_t amount)
{
    return amount > 0 ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(amount)) : std::nullopt;
}

std::int64_t as_amount(const std::optional<std::uint64_t>& limit)
{
    return limit ? static_cast<std::int64_t>(std::min<std::uint64_t>(*limit, max_limit)) : 0;
}

// `amount` percent of `base`, saturated at max_limit in either direction.
std::int64_t percent_of(std::int64_t base, std::int64_t amount)
{
    std::int64_t whole = 0;
    std::int64_t part = 0;
    if (__builtin_mul_overflow(base / 100, amount, &whole) ||
        __builtin_mul_overflow(base % 100, amount, &part)) {
        return (base < 0) != (amount < 0) ? -max_limit : max_limit;
    }
    std::int64_t sum = 0;
    return __builtin_add_overflow(whole, part / 100, &sum) ? max_limit : sum;
}

// Dovecot's quota_root_get_rule_limits() for INBOX: the default limit plus the INBOX rule's
// addition (a percentage is of the default limit). A sum of 0 or less is unlimited.
std::int64_t add_relative(std::int64_t base, const LimitValue& addition)
{
    const std::int64_t delta = addition.percent ? percent_of(base, addition.amount) : addition.amount;
    std::int64_t sum = 0;
    return __builtin_add_overflow(base, delta, &sum) ? (delta > 0 ? max_limit : 0) : sum;
}

} // namespace

tl::expected<std::uint64_t, std::string> parse_quota_size(std::string_view text,
                                                          std::uint64_t default_multiplier)
{
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
        ++digits;
    }
    if (digits == 0) {
        return tl::unexpected(fmt::format("\"{}\" is not a number", text));
    }
    const auto amount = parse_u64(text.substr(0, digits));
    const auto multiplier = multiplier_of(text.substr(digits), default_multiplier);
    if (!multiplier) {
        return tl::unexpected(multiplier.error());
    }
    if (!amount || *amount > std::numeric_limits<std::uint64_t>::max() / *multiplier) {
        return tl::unexpected(fmt::format("\"{}\" is too large", text));
    }
    return *amount * *multiplier;
}

tl::expected<Quota, std::string>
quota_from_fields(const std::vector<std::pair<std::string, std::string>>& extra_fields, const Quota& defaults)
{
    struct Field {
        std::uint32_t index;
        bool userdb;
        const std::string* key;
        const std::string* value;
    };
    std::vector<Field> fields;
    for (const auto& [key, value] : extra_fields) {
        const bool userdb = std::string_view(key).starts_with(userdb_prefix);
        const auto index = rule_index(userdb ? std::string_view(key).substr(userdb_prefix.size()) : key);
        // An empty value sets nothing (Dovecot reads "quota_rule=" as an unset setting).
        if (index && !value.empty()) {
            fields.push_back({*index, userdb, &key, &value});
        }
    }
    // Dovecot applies quota_rule, quota_rule2, quota_rule3... in that order; of a plain and a
    // "userdb_" field with the same number, the userdb field (what Dovecot's userdb sees) wins.
    std::stable_sort(fields.begin(), fields.end(), [](const Field& a, const Field& b) {
        return a.index != b.index ? a.index < b.index : (!a.userdb && b.userdb);
    });
    RuleSet set;
    for (const Field& field : fields) {
        if (auto applied = apply_rule(*field.value, set); !applied) {
            return tl::unexpected(fmt::format("{}=\"{}\": {}", *field.key, *field.value, applied.error()));
        }
    }
    const std::int64_t bytes = set.default_bytes.value_or(as_amount(defaults.bytes));
    const std::int64_t messages = set.default_messages.value_or(as_amount(defaults.messages));
    // Dovecot: when the default rule has no limit at all, the user is unlimited and mailbox
    // rules are not consulted.
    if (set.default_ignored || set.inbox_ignored || (bytes <= 0 && messages <= 0)) {
        return Quota{};
    }
    Quota quota;
    quota.bytes = as_limit(set.inbox_mask.empty() ? bytes : add_relative(bytes, set.inbox_bytes));
    quota.messages = as_limit(set.inbox_mask.empty() ? messages : add_relative(messages, set.inbox_messages));
    return quota;
}

tl::expected<Quota, std::string> quota_for(const auth::UserRecord& record, const QuotaPolicy& policy)
{
    return quota_from_fields(record.extra_fields, policy.defaults);
}

std::uint64_t grace_octets(const Quota& quota, const QuotaPolicy& policy) noexcept
{
    if (!quota.bytes) {
        return 0;
    }
    if (policy.grace_octets) {
        return *policy.grace_octets;
    }
    const std::uint64_t bytes = *quota.bytes;
    std::uint64_t grace = 0;
    if (__builtin_mul_overflow(bytes / 100, std::uint64_t{policy.grace_percent}, &grace)) {
        return std::numeric_limits<std::uint64_t>::max();
    }
    return grace + (bytes % 100) * policy.grace_percent / 100;
}

bool fits(const Quota& quota, const Usage& usage, std::uint64_t octets, std::uint64_t grace) noexcept
{
    if (quota.messages && usage.messages >= *quota.messages) {
        return false;
    }
    if (quota.bytes) {
        if (usage.octets >= *quota.bytes) {
            return false;
        }
        const std::uint64_t room = *quota.bytes - usage.octets;
        if (octets > room && octets - room > grace) {
            return false;
        }
    }
    return true;
}

} // namespace pigeon::delivery
