// Result<T>: the return type of every fallible call (shared/DESIGN.md §7). Errors are values;
// peer input never throws.
#pragma once

#include "core/error.hpp"

#include <system_error>
#include <tl/expected.hpp>

namespace pigeon {

template <class T>
using Result = tl::expected<T, std::error_code>;

[[nodiscard]] inline tl::unexpected<std::error_code> fail(errc e) noexcept
{
    return tl::unexpected<std::error_code>(make_error_code(e));
}

[[nodiscard]] inline tl::unexpected<std::error_code> fail(std::error_code e) noexcept
{
    return tl::unexpected<std::error_code>(e);
}

} // namespace pigeon
