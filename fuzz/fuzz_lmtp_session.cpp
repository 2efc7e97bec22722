// A whole LmtpSession dialogue: the input is what an MTA sends, cut into packets at random
// points. The session must never crash, never hand the driver more of a message than the size
// bound, answer every accepted recipient once per message, and never ask for a delivery of a
// message it did not begin.
#include "protocol/lmtp_session.hpp"

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

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace pigeon::protocol;
    LmtpPolicy policy;
    policy.max_message_size = 4096;
    policy.max_recipients = 5;
    LmtpSession session(policy);
    bool in_message = false;
    std::size_t recipients = 0;
    std::uint64_t octets = 0;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::size_t pos = 0;
    std::size_t seed = size > 0 ? data[0] : 0;
    for (int steps = 0; steps < 100'000; ++steps) {
        auto step = session.next_step();
        if (std::holds_alternative<lmtp_step::Close>(step)) {
            break;
        }
        if (auto* rcpt = std::get_if<lmtp_step::CheckRecipient>(&step)) {
            const bool known = rcpt->address.starts_with("alice");
            session.on_recipient_checked(known ? LmtpReply{250, "2.1.5", "Ok"}
                                               : LmtpReply{550, "5.1.1", "No such user"});
        } else if (auto* begin = std::get_if<lmtp_step::BeginMessage>(&step)) {
            check(!in_message && !begin->recipients.empty());
            in_message = true;
            recipients = begin->recipients.size();
            octets = 0;
        } else if (auto* part = std::get_if<lmtp_step::MessageData>(&step)) {
            check(in_message);
            octets += part->bytes.size();
            check(octets <= policy.max_message_size);
        } else if (std::holds_alternative<lmtp_step::AbortMessage>(step)) {
            check(in_message);
            in_message = false;
        } else if (auto* end = std::get_if<lmtp_step::EndMessage>(&step)) {
            check(in_message && end->octets == octets);
            in_message = false;
            session.on_message_delivered(std::vector<LmtpReply>(recipients));
        } else if (std::holds_alternative<lmtp_step::NeedInput>(step)) {
            if (pos >= input.size()) {
                break;
            }
            seed = seed * 1103515245 + 12345;
            const std::size_t chunk = 1 + (seed >> 8) % 64;
            session.receive(input.substr(pos, chunk));
            pos += chunk;
        } else if (std::holds_alternative<lmtp_step::Wait>(step)) {
            std::abort(); // every step above is answered at once
        }
    }
    return 0;
}
