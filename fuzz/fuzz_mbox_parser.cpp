// The mbox parser and the mboxrd quoting, on files written by other programs (hostile input to
// the storage layer). The input is fed whole and again in random pieces: both must find the same
// messages, within the file, in order, with valid unique-id parts; and quoting any text then
// unquoting it must give the text back, in pieces of any size.
#include "storage/mbox/mbox_parser.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

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
    using namespace pigeon::storage::mbox;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::size_t seed = size > 0 ? data[0] : 0;
    const auto next_piece = [&seed] {
        seed = seed * 1103515245 + 12345;
        return 1 + (seed >> 8) % 97;
    };

    std::vector<ParsedMessage> whole;
    Parser one;
    one.feed(input, whole);
    one.finish(whole);
    std::vector<ParsedMessage> pieces;
    Parser many;
    for (std::size_t pos = 0; pos < input.size();) {
        const std::size_t n = std::min(next_piece(), input.size() - pos);
        many.feed(input.substr(pos, n), pieces);
        pos += n;
    }
    many.finish(pieces);
    check(whole.size() == pieces.size());
    std::uint64_t previous_end = 0;
    for (std::size_t i = 0; i < whole.size(); ++i) {
        const auto& a = whole[i];
        const auto& b = pieces[i];
        check(a.from_offset == b.from_offset && a.content_offset == b.content_offset &&
              a.content_end == b.content_end && a.digest == b.digest && a.x_uidl == b.x_uidl &&
              a.wire_octets == b.wire_octets);
        check(previous_end <= a.from_offset && a.from_offset < a.content_offset &&
              a.content_offset <= a.content_end && a.content_end <= size);
        check(input.substr(a.from_offset, from_prefix.size()) == from_prefix);
        check(a.x_uidl.empty() || is_valid_unique_id(a.x_uidl));
        previous_end = a.content_end;
    }

    // Quoting then unquoting gives the text back, whatever the pieces.
    std::string quoted;
    Quoter quoter;
    for (std::size_t pos = 0; pos < input.size();) {
        const std::size_t n = std::min(next_piece(), input.size() - pos);
        quoter.feed(input.substr(pos, n), quoted);
        pos += n;
    }
    quoter.finish(quoted);
    std::string back;
    Unquoter unquoter;
    for (std::size_t pos = 0; pos < quoted.size();) {
        const std::size_t n = std::min(next_piece(), quoted.size() - pos);
        unquoter.feed(std::string_view(quoted).substr(pos, n), back);
        pos += n;
    }
    unquoter.finish(back);
    check(back == input);
    return 0;
}
