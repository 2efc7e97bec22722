// A whole ClientSession against a fuzzed server: the first octets choose the commands the client
// pipelines (as pigeon fetch does: CAPA, STLS, AUTH, UIDL, LIST, RETR, TOP, DELE, QUIT...), the rest
// is what the server sends, cut into packets at random points. The session must never crash, hand
// out no body piece larger than its bound, never more body than the server sent, and stop at its
// first Failure.
#include "protocol/client_session.hpp"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

namespace {

void check(bool condition)
{
    if (!condition) {
        std::abort();
    }
}

pigeon::protocol::Command command_for(std::uint8_t choice)
{
    using namespace pigeon::protocol;
    const pigeon::MessageNumber number{static_cast<std::uint32_t>(1 + (choice >> 4))};
    switch (choice % 12) {
    case 0: return command::Capa{};
    case 1: return command::Stls{};
    case 2: return command::User{"alice"};
    case 3: return command::Pass{pigeon::SecretString("secret")};
    case 4: return command::Auth{std::string("PLAIN"), std::nullopt};
    case 5: return command::Uidl{};
    case 6: return command::List{};
    case 7: return command::Retr{number};
    case 8: return command::Top{number, 3};
    case 9: return command::Dele{number};
    case 10: return command::Stat{};
    default: return command::Quit{};
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace pigeon::protocol;
    if (size < 4) {
        return 0;
    }
    ClientSession session;
    const std::size_t commands = 1 + data[0] % 8;
    for (std::size_t i = 0; i < commands && 1 + i < size; ++i) {
        session.send(command_for(data[1 + i]));
    }
    (void)session.take_output();
    const std::string_view server(reinterpret_cast<const char*>(data) + 1 + commands,
                                  size - std::min(size, 1 + commands));
    std::size_t pos = 0;
    std::size_t seed = data[0];
    std::size_t body_octets = 0;
    bool failed = false;
    while (!failed) {
        if (auto event = session.next_event()) {
            if (const auto* body = std::get_if<event::BodyData>(&*event)) {
                check(body->bytes.size() <= ClientSession::body_chunk_octets + 1);
                body_octets += body->bytes.size();
                check(body_octets <= pos + 1);
            } else if (std::holds_alternative<event::Failure>(*event)) {
                failed = true;
            } else if (std::holds_alternative<event::StartTls>(*event)) {
                session.on_tls_started();
            } else if (std::holds_alternative<event::Continuation>(*event)) {
                session.send_sasl_response("*");
            }
            continue;
        }
        if (pos >= server.size()) {
            break;
        }
        seed = seed * 1103515245 + 12345;
        const std::size_t chunk = std::min(server.size() - pos, 1 + (seed >> 8) % 128);
        session.receive(server.substr(pos, chunk));
        pos += chunk;
    }
    if (failed) {
        // Nothing more comes out of a failed session.
        session.receive("+OK more\r\n");
        const auto after = session.next_event();
        check(!after || std::holds_alternative<event::Failure>(*after));
    }
    return 0;
}
