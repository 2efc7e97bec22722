// Base64 decoding and the PLAIN mechanism on arbitrary client responses.
#include "core/base64.hpp"
#include "sasl/mechanism.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace pigeon;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (auto decoded = base64_decode(input)) {
        // Whatever decodes must encode back to the same text (the decoder is strict).
        if (base64_encode(*decoded) != input) {
            std::abort();
        }
        auto plain = sasl::make_server_mechanism("PLAIN");
        (void)plain->start(std::string_view(*decoded));
    }
    const std::string encoded = base64_encode(input);
    auto round = base64_decode(encoded);
    if (!round || *round != input) {
        std::abort();
    }
    auto plain = sasl::make_server_mechanism("PLAIN");
    (void)plain->step(input);
    return 0;
}
