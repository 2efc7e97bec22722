// The un-stuffer at any chunking, and the stuffer round trip on the same bytes.
#include "protocol/dot_stuffer.hpp"
#include "protocol/dot_unstuffer.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace pigeon::protocol;
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    DotUnstuffer unstuffer;
    std::string out;
    const std::size_t chunk = size > 0 ? (data[0] % 13) + 1 : 1;
    std::size_t consumed = 0;
    for (std::size_t pos = 0; pos < input.size() && !unstuffer.complete(); pos += chunk) {
        const auto piece = input.substr(pos, chunk);
        const auto progress = unstuffer.feed(piece, out);
        consumed += progress.consumed;
        if (progress.consumed > piece.size() || (!progress.complete && progress.consumed != piece.size())) {
            std::abort();
        }
    }
    if (out.size() > consumed) {
        std::abort(); // un-stuffing never produces more than it reads
    }

    // Round trip: stuffing any bytes and un-stuffing them must give the CRLF-normalised bytes,
    // and the predicted wire size must equal what the un-stuffer produced.
    const std::string stuffed = dot_stuff(input);
    std::string back;
    const auto progress = DotUnstuffer().feed(stuffed, back);
    if (!progress.complete || progress.consumed != stuffed.size() || back.size() != wire_size(input)) {
        std::abort();
    }
    return 0;
}
