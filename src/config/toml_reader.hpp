// Reading a TOML file (toml++) into typed values with errors that name the file, the line and
// the full key ("pigeond.toml:12: limits.max_connections: must be ..."); unknown keys are errors.
// Shared by pigeond's configuration and pigeon fetch's accounts file.
#pragma once

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pigeon::config {

// Keeps the first error, with the file, the line and the full key.
class TomlReader {
public:
    explicit TomlReader(std::string file) : m_file(std::move(file)) {}

    [[nodiscard]] bool failed() const noexcept { return !m_error.empty(); }
    [[nodiscard]] const std::string& error() const noexcept { return m_error; }

    void fail(const toml::node* node, std::string_view key, std::string_view message)
    {
        if (!m_error.empty()) {
            return;
        }
        const auto line = node != nullptr ? node->source().begin.line : 0;
        m_error = line > 0 ? fmt::format("{}:{}: {}: {}", m_file, line, key, message)
                           : fmt::format("{}: {}: {}", m_file, key, message);
    }

    void known_keys(const toml::table& table, std::string_view prefix,
                    std::initializer_list<std::string_view> keys)
    {
        for (const auto& [key, node] : table) {
            if (std::find(keys.begin(), keys.end(), key.str()) == keys.end()) {
                fail(&node, join(prefix, key.str()), "unknown key");
            }
        }
    }

    static std::string join(std::string_view prefix, std::string_view key)
    {
        return prefix.empty() ? std::string(key) : fmt::format("{}.{}", prefix, key);
    }

    void string(const toml::table& table, std::string_view prefix, std::string_view key, std::string& out)
    {
        const toml::node* node = table.get(key);
        if (node == nullptr) {
            return;
        }
        if (const auto* value = node->as_string()) {
            out = value->get();
        } else {
            fail(node, join(prefix, key), "must be a string");
        }
    }

    void boolean(const toml::table& table, std::string_view prefix, std::string_view key, bool& out)
    {
        const toml::node* node = table.get(key);
        if (node == nullptr) {
            return;
        }
        if (const auto* value = node->as_boolean()) {
            out = value->get();
        } else {
            fail(node, join(prefix, key), "must be true or false");
        }
    }

    void number(const toml::table& table, std::string_view prefix, std::string_view key, std::uint32_t& out,
                std::int64_t min, std::int64_t max)
    {
        const toml::node* node = table.get(key);
        if (node == nullptr) {
            return;
        }
        const auto* value = node->as_integer();
        if (value == nullptr || value->get() < min || value->get() > max) {
            fail(node, join(prefix, key), fmt::format("must be a whole number from {} to {}", min, max));
            return;
        }
        out = static_cast<std::uint32_t>(value->get());
    }

    // A duration: a whole number in `unit`, or a string with a unit ("250ms", "30s", "10m", "1h").
    template <class Duration>
    void duration(const toml::table& table, std::string_view prefix, std::string_view key, Duration& out,
                  Duration min, Duration max)
    {
        const toml::node* node = table.get(key);
        if (node == nullptr) {
            return;
        }
        std::optional<std::chrono::milliseconds> value;
        if (const auto* integer = node->as_integer(); integer != nullptr && integer->get() >= 0) {
            value = std::chrono::duration_cast<std::chrono::milliseconds>(Duration(integer->get()));
        } else if (const auto* text = node->as_string()) {
            value = parse_duration(text->get());
        }
        if (!value || *value < min || *value > max) {
            fail(node, join(prefix, key),
                 fmt::format("must be a duration from {} to {} (a number, or with a unit: ms, s, m, h)",
                             describe(min), describe(max)));
            return;
        }
        out = std::chrono::duration_cast<Duration>(*value);
    }

    void one_of(const toml::table& table, std::string_view prefix, std::string_view key, std::string& out,
                std::initializer_list<std::string_view> allowed)
    {
        const toml::node* node = table.get(key);
        if (node == nullptr) {
            return;
        }
        const auto* value = node->as_string();
        if (value == nullptr || std::find(allowed.begin(), allowed.end(), value->get()) == allowed.end()) {
            std::string list;
            for (const auto item : allowed) {
                list += list.empty() ? "" : ", ";
                list += fmt::format("\"{}\"", item);
            }
            fail(node, join(prefix, key), "must be one of " + list);
            return;
        }
        out = value->get();
    }

    void strings(const toml::table& table, std::string_view prefix, std::string_view key,
                 std::vector<std::string>& out)
    {
        const toml::node* node = table.get(key);
        if (node == nullptr) {
            return;
        }
        const auto* array = node->as_array();
        if (array == nullptr) {
            fail(node, join(prefix, key), "must be a list of strings");
            return;
        }
        out.clear();
        for (const auto& item : *array) {
            if (const auto* value = item.as_string()) {
                out.push_back(value->get());
            } else {
                fail(&item, join(prefix, key), "must be a list of strings");
                return;
            }
        }
    }

    const toml::table* table(const toml::table& root, std::string_view key)
    {
        const toml::node* node = root.get(key);
        if (node == nullptr) {
            return nullptr;
        }
        if (const auto* value = node->as_table()) {
            return value;
        }
        fail(node, key, "must be a table");
        return nullptr;
    }

private:
    static std::optional<std::chrono::milliseconds> parse_duration(std::string_view text)
    {
        std::uint64_t number = 0;
        const auto* end = text.data() + text.size();
        const auto [rest, ec] = std::from_chars(text.data(), end, number);
        if (ec != std::errc() || rest == text.data() || number > 1'000'000'000) {
            return std::nullopt;
        }
        const std::string_view unit(rest, static_cast<std::size_t>(end - rest));
        const auto n = static_cast<std::int64_t>(number);
        if (unit == "ms") {
            return std::chrono::milliseconds(n);
        }
        if (unit == "s") {
            return std::chrono::seconds(n);
        }
        if (unit == "m" || unit == "min") {
            return std::chrono::minutes(n);
        }
        if (unit == "h") {
            return std::chrono::hours(n);
        }
        return std::nullopt;
    }

    template <class Duration>
    static std::string describe(Duration value)
    {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(value).count();
        if (ms % 3'600'000 == 0 && ms != 0) {
            return fmt::format("{}h", ms / 3'600'000);
        }
        if (ms % 60'000 == 0 && ms != 0) {
            return fmt::format("{}m", ms / 60'000);
        }
        if (ms % 1000 == 0) {
            return fmt::format("{}s", ms / 1000);
        }
        return fmt::format("{}ms", ms);
    }

    std::string m_file;
    std::string m_error;
};

} // namespace pigeon::config
