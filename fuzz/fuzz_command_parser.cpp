// The POP3 command parser behind the line reader, at any line bound and chunking.
#include "protocol/command_parser.hpp"
#include "protocol/line_reader.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace pigeon::protocol;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    LineReader reader;
    // Feed in chunks whose sizes come from the first byte, to exercise resumption.
    const std::size_t chunk = size > 0 ? (data[0] % 17) + 1 : 1;
    for (std::size_t pos = 0; pos < input.size(); pos += chunk) {
        reader.append(input.substr(pos, chunk));
        while (auto event = reader.next(255)) {
            if (event->kind == LineEvent::Kind::too_long) {
                continue;
            }
            // The text excludes the line end (at least an LF): it holds at most 254 octets.
            if (event->text.size() + 1 > 255) {
                std::abort(); // the bound was not respected
            }
            auto command = parse_command(event->text);
            if (command) {
                (void)command_keyword(*command);
            }
        }
    }
    if (reader.buffered() > 255 + chunk) {
        std::abort(); // the buffer must stay bounded
    }
    return 0;
}
