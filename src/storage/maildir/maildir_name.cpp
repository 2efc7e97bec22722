#include "storage/maildir/maildir_name.hpp"

#include "core/limits.hpp"
#include "core/strings.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>

namespace pigeon::storage::maildir {
namespace {

std::optional<std::uint64_t> size_field(std::string_view file_name, std::string_view key) noexcept
{
    const std::string_view base = base_name(file_name);
    std::size_t pos = base.find(',');
    while (pos != std::string_view::npos) {
        const std::size_t next = base.find(',', pos + 1);
        const std::string_view field =
            base.substr(pos + 1, next == std::string_view::npos ? next : next - pos - 1);
        if (field.starts_with(key)) {
            return parse_u64(field.substr(key.size()));
        }
        pos = next;
    }
    return std::nullopt;
}

} // namespace

std::string_view base_name(std::string_view file_name) noexcept
{
    return file_name.substr(0, file_name.find(':'));
}

std::optional<std::uint64_t> wire_size_field(std::string_view file_name) noexcept
{
    return size_field(file_name, "W=");
}

std::optional<std::uint64_t> disk_size_field(std::string_view file_name) noexcept
{
    return size_field(file_name, "S=");
}

bool is_message_file_name(std::string_view file_name) noexcept
{
    return !file_name.empty() && file_name.front() != '.' && !has_control_characters(file_name) &&
           !base_name(file_name).empty();
}

bool is_valid_unique_id(std::string_view text) noexcept
{
    if (text.empty() || text.size() > limits::max_unique_id_octets) {
        return false;
    }
    return std::ranges::all_of(text, [](char c) { return c >= 0x21 && c <= 0x7E; });
}

std::string unique_id_for_base_name(std::string_view base)
{
    if (is_valid_unique_id(base)) {
        return std::string(base);
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_Digest(base.data(), base.size(), digest.data(), &length, EVP_sha256(), nullptr);
    // base64url without padding: every character is valid in a unique-id; 32 characters carry
    // 192 bits, far beyond any chance of two names colliding.
    static constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t bits = 0;
    int count = 0;
    for (unsigned int i = 0; i < length && out.size() < 32; ++i) {
        bits = (bits << 8U) | digest[i];
        count += 8;
        while (count >= 6 && out.size() < 32) {
            count -= 6;
            out.push_back(alphabet[(bits >> static_cast<unsigned>(count)) & 0x3FU]);
        }
    }
    return out;
}

std::string new_base_name(std::uint64_t seconds, std::uint32_t microseconds, std::uint64_t pid,
                          std::uint64_t sequence, std::string_view host)
{
    std::string safe_host;
    for (const char c : host) {
        if (c == '/') {
            safe_host += "\\057";
        } else if (c == ':') {
            safe_host += "\\072";
        } else {
            safe_host.push_back(c);
        }
    }
    return fmt::format("{}.M{}P{}Q{}.{}", seconds, microseconds, pid, sequence, safe_host);
}

} // namespace pigeon::storage::maildir
