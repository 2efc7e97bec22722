#include "storage/path_template.hpp"

#include "core/strings.hpp"

namespace pigeon::storage {
namespace {

constexpr std::size_t max_user_octets = 255; // NAME_MAX: one path component

bool is_safe_component(std::string_view part) noexcept
{
    return !part.empty() && part.front() != '.' && part.find('/') == std::string_view::npos &&
           !has_control_characters(part);
}

} // namespace

bool is_safe_path_user(std::string_view user) noexcept
{
    if (user.empty() || user.size() > max_user_octets || !is_safe_component(user)) {
        return false;
    }
    const std::size_t at = user.find('@');
    if (at == std::string_view::npos) {
        return true;
    }
    // Both halves become path components of their own through %n and %d.
    return is_safe_component(user.substr(0, at)) && is_safe_component(user.substr(at + 1));
}

Result<std::string> expand_path_template(std::string_view path_template, std::string_view user)
{
    if (!is_safe_path_user(user)) {
        return fail(errc::invalid_user_name);
    }
    const std::size_t at = user.find('@');
    const std::string_view local = user.substr(0, at);
    const std::string_view domain = at == std::string_view::npos ? std::string_view{} : user.substr(at + 1);
    std::string out;
    for (std::size_t i = 0; i < path_template.size(); ++i) {
        const char c = path_template[i];
        if (c != '%' || i + 1 == path_template.size()) {
            out.push_back(c);
            continue;
        }
        switch (path_template[++i]) {
        case 'u': out.append(user); break;
        case 'n': out.append(local); break;
        case 'd': out.append(domain); break;
        case '%': out.push_back('%'); break;
        default:
            out.push_back('%');
            out.push_back(path_template[i]);
            break;
        }
    }
    return out;
}

} // namespace pigeon::storage
