#include "client/sink.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pigeon::client {
namespace {

std::string quote_in_pieces(std::string_view text, std::size_t piece)
{
    MboxrdQuoter quoter;
    std::string out;
    for (std::size_t at = 0; at < text.size(); at += piece) {
        quoter.feed(text.substr(at, piece), out);
    }
    quoter.finish(out);
    return out;
}

std::string convert_in_pieces(std::string_view text, std::size_t piece)
{
    CrlfToLf converter;
    std::string out;
    for (std::size_t at = 0; at < text.size(); at += piece) {
        converter.feed(text.substr(at, piece), out);
    }
    converter.finish(out);
    return out;
}

TEST(MboxrdQuoter, QuotesFromLinesWhateverThePieces)
{
    const std::string in = "From a\n>From b\n>>From c\nFrom\n>Fro>m\nx From y\n>>>\nFrom ";
    const std::string want = ">From a\n>>From b\n>>>From c\nFrom\n>Fro>m\nx From y\n>>>\n>From ";
    for (std::size_t piece = 1; piece <= in.size(); ++piece) {
        EXPECT_EQ(quote_in_pieces(in, piece), want) << "pieces of " << piece;
    }
}

TEST(MboxrdQuoter, AMillionGreaterThanSignsCostNoBuffer)
{
    const std::string line = std::string(1'000'000, '>') + "From x\n";
    const std::string out = quote_in_pieces(line, 4096);
    EXPECT_EQ(out.size(), line.size() + 1);
    EXPECT_TRUE(out.ends_with(">From x\n"));
}

TEST(CrlfToLf, ConvertsPairsAndKeepsLoneCarriageReturnsWhateverThePieces)
{
    const std::string in = "a\r\nb\rc\r\r\n\r\nend\r";
    const std::string want = "a\nb\rc\r\n\nend\r";
    for (std::size_t piece = 1; piece <= in.size(); ++piece) {
        EXPECT_EQ(convert_in_pieces(in, piece), want) << "pieces of " << piece;
    }
}

} // namespace
} // namespace pigeon::client
