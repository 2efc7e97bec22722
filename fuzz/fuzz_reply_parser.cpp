// A whole client session fed by a hostile server: greeting, pipelined replies, listings, bodies.
#include "protocol/client_session.hpp"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace pigeon;
    using namespace pigeon::protocol;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    ClientSession session;
    session.send(command::Capa{});
    session.send(command::Stat{});
    session.send(command::List{});
    session.send(command::Uidl{MessageNumber{1}});
    session.send(command::Retr{MessageNumber{1}});
    session.send(command::Top{MessageNumber{2}, 3});
    session.send(command::Auth{std::string("PLAIN"), std::nullopt});
    session.send(command::Stls{});
    (void)session.take_output();
    const std::size_t chunk = size > 0 ? (data[0] % 31) + 1 : 1;
    for (std::size_t pos = 0; pos < input.size(); pos += chunk) {
        session.receive(input.substr(pos, chunk));
        while (auto event = session.next_event()) {
            if (auto* status = std::get_if<event::Status>(&*event)) {
                (void)status->reply.known_code();
                (void)parse_stat(status->reply.text);
                (void)parse_scan_listing(status->reply.text);
            } else if (auto* line = std::get_if<event::ListingLine>(&*event)) {
                Capabilities caps;
                add_capability_line(caps, line->text);
                (void)parse_unique_id_listing(line->text);
            }
        }
    }
    (void)apop_timestamp(input);
    return 0;
}
