// pigeond.toml as an operator (or a careless tool) may write it: config::parse must answer with a
// configuration or one error naming the file, never crash, and a configuration it accepts must
// hold only values inside the documented bounds.
#include "config/config.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto config = pigeon::config::parse(input, "/etc/pigeon/pigeond.toml");
    if (!config) {
        if (config.error().find("pigeond.toml") == std::string::npos) {
            std::abort(); // every error names the file
        }
        return 0;
    }
    const auto& c = *config;
    if (c.limits.max_connections == 0 || c.lmtp.max_recipients == 0 || c.lmtp.max_connections == 0 ||
        c.lmtp.socket_mode > 0777 || c.lmtp.delivery_threads == 0 ||
        (c.storage.driver != "maildir" && c.storage.driver != "mbox")) {
        std::abort();
    }
    return 0;
}
