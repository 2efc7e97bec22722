// Micro-benchmarks of the protocol core: the dot-stuffer on typical mail and the command parser.
// Goal (foundation issue): stuffing at >= 2 GB/s on one core for typical mail. Figures go to
// docs/benchmarks.md; this is never part of the test run.
#include "protocol/command_parser.hpp"
#include "protocol/dot_stuffer.hpp"
#include "protocol/dot_unstuffer.hpp"
#include "protocol/line_reader.hpp"

#include <benchmark/benchmark.h>

#include <random>
#include <string>

namespace {

// A typical message as Maildir stores it: LF line ends, ~80 header lines of 40-90 octets, a
// text body of 60-76 octet lines, a base64 attachment of 76-octet lines, a few lines that start
// with "." to make the stuffer work.
std::string typical_message(std::size_t target_octets, bool crlf)
{
    std::mt19937 random(42);
    std::string message;
    const char* eol = crlf ? "\r\n" : "\n";
    for (int i = 0; i < 30; ++i) {
        message +=
            "Received: from mx" + std::to_string(i) + ".example.org (mx.example.org [192.0.2.1]) by mail";
        message += eol;
    }
    message += "Subject: quarterly report";
    message += eol;
    message += eol;
    std::uniform_int_distribution<int> length(60, 76);
    std::uniform_int_distribution<int> letter('a', 'z');
    std::size_t line = 0;
    while (message.size() < target_octets) {
        const int n = (line % 50 == 0) ? 1 : length(random);
        std::string text(static_cast<std::size_t>(n), 'x');
        for (auto& c : text) {
            c = static_cast<char>(letter(random));
        }
        if (line % 97 == 0) {
            text[0] = '.';
        }
        message += text;
        message += eol;
        ++line;
    }
    return message;
}

void stuff(benchmark::State& state, bool crlf)
{
    const std::string message = typical_message(static_cast<std::size_t>(state.range(0)), crlf);
    std::string out;
    out.reserve(message.size() * 2 + 16);
    constexpr std::size_t chunk = 64 * 1024; // the server's read size
    for (auto _ : state) {
        out.clear();
        pigeon::protocol::DotStuffer stuffer;
        for (std::size_t pos = 0; pos < message.size(); pos += chunk) {
            stuffer.feed(std::string_view(message).substr(pos, chunk), out);
        }
        stuffer.finish(out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * message.size()));
}

void BM_DotStuffLf(benchmark::State& state)
{
    stuff(state, false);
}
void BM_DotStuffCrlf(benchmark::State& state)
{
    stuff(state, true);
}

void BM_WireSize(benchmark::State& state)
{
    const std::string message = typical_message(static_cast<std::size_t>(state.range(0)), false);
    for (auto _ : state) {
        benchmark::DoNotOptimize(pigeon::protocol::wire_size(message));
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * message.size()));
}

void BM_DotUnstuff(benchmark::State& state)
{
    const std::string stuffed =
        pigeon::protocol::dot_stuff(typical_message(static_cast<std::size_t>(state.range(0)), false));
    std::string out;
    out.reserve(stuffed.size());
    for (auto _ : state) {
        out.clear();
        pigeon::protocol::DotUnstuffer unstuffer;
        benchmark::DoNotOptimize(unstuffer.feed(stuffed, out));
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stuffed.size()));
}

void BM_ParseCommands(benchmark::State& state)
{
    // A pipelined fetch session's commands.
    std::string packet;
    for (int i = 1; i <= 1000; ++i) {
        packet += "RETR " + std::to_string(i) + "\r\nDELE " + std::to_string(i) + "\r\n";
    }
    std::int64_t commands = 0;
    for (auto _ : state) {
        pigeon::protocol::LineReader reader;
        reader.append(packet);
        while (auto line = reader.next(255)) {
            benchmark::DoNotOptimize(pigeon::protocol::parse_command(line->text));
            ++commands;
        }
    }
    state.SetItemsProcessed(commands);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * packet.size()));
}

BENCHMARK(BM_DotStuffLf)->Arg(4 * 1024)->Arg(64 * 1024)->Arg(1024 * 1024);
BENCHMARK(BM_DotStuffCrlf)->Arg(64 * 1024)->Arg(1024 * 1024);
BENCHMARK(BM_WireSize)->Arg(64 * 1024);
BENCHMARK(BM_DotUnstuff)->Arg(64 * 1024);
BENCHMARK(BM_ParseCommands);

} // namespace

BENCHMARK_MAIN();
