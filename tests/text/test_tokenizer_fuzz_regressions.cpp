// Tokenizer inputs found by the fuzz targets (tests/fuzz/fuzz_llama2c_tokenizer.cpp,
// fuzz_gpt2_bpe.cpp), and the in-memory entry points those targets use.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "text_fixture.hpp"
#include "lowbit/text/gpt2_bpe.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"

using lowbit::Error;
namespace text = lowbit::text;

namespace {

std::string i32(std::int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string f32(float v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

// A llama2.c tokenizer file: <unk>, <s>, </s>, the 256 byte tokens, then `extra`
// as (piece, score).
std::string llama2c_file(const std::vector<std::pair<std::string, float>>& extra) {
  std::vector<std::pair<std::string, float>> all = {{"<unk>", 0.0f}, {"<s>", 0.0f}, {"</s>", 0.0f}};
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    all.emplace_back(hex, 0.0f);
  }
  all.insert(all.end(), extra.begin(), extra.end());
  std::string out = i32(7);
  for (const auto& [piece, score] : all) out += f32(score) + i32(static_cast<std::int32_t>(piece.size())) + piece;
  return out;
}

}  // namespace

TEST_CASE("llama2c tokenizer: a merge scoring -1e10 or less, or NaN, never happens (as in run.c)") {
  // fuzz corpus: llama2c_tokenizer/regress_merge_score_below_floor and _nan. run.c's
  // loop starts from best = -1e10 and merges only a pair that beats it; the heap
  // encoder used to merge such pairs anyway, so encode() and encode_reference() differed.
  for (const float low : {-2e10f, -1e10f, std::numeric_limits<float>::quiet_NaN(),
                          -std::numeric_limits<float>::infinity()}) {
    INFO("score of \"ab\": ", low);
    const auto tok = text::Llama2cTokenizer::from_bytes(
        llama2c_file({{" ", -1.0f}, {"a", -2.0f}, {"b", -3.0f}, {"c", -4.0f}, {"ab", low}, {"ca", -5.0f}}), 0,
        "regress.bin");
    const int space = 259, a = 260, b = 261, ca = 264;  // c = 262, ab = 263
    CHECK(tok.encode("ab", true, false) == std::vector<int>{1, space, a, b});
    CHECK(tok.encode("cab", false, false) == std::vector<int>{space, ca, b});
    for (const char* s : {"ab", "cab", "ab cab abab"})
      CHECK(tok.encode(s, true, true) == tok.encode_reference(s, true, true));
  }
  // Just above the floor the pair merges in both encoders.
  const auto tok = text::Llama2cTokenizer::from_bytes(
      llama2c_file({{" ", -1.0f}, {"a", -2.0f}, {"b", -3.0f}, {"ab", -9.9e9f}}), 0, "regress.bin");
  CHECK(tok.encode("ab", false, false) == std::vector<int>{259, 262});
  CHECK(tok.encode_reference("ab", false, false) == std::vector<int>{259, 262});
}

TEST_CASE("llama2c tokenizer: from_bytes names the label in its refusals") {
  const std::string good = llama2c_file({{" ", -1.0f}});
  CHECK(text::Llama2cTokenizer::from_bytes(good, 0, "mem.bin").vocab_size() == 260);
  // vocab_size 259 stops before the " " entry that the dummy prefix needs.
  CHECK_THROWS_WITH_AS((void)text::Llama2cTokenizer::from_bytes(good, 259, "mem.bin"),
                       doctest::Contains("'mem.bin': no \" \" token for the dummy prefix"), Error);
  CHECK_THROWS_WITH_AS((void)text::Llama2cTokenizer::from_bytes(good.substr(0, good.size() - 1), 0, "mem.bin"),
                       doctest::Contains("llama2.c tokenizer 'mem.bin': entry 259 has byte length 1 beyond the end"),
                       Error);
  CHECK_THROWS_WITH_AS((void)text::Llama2cTokenizer::from_bytes("ab", 0, "mem.bin"),
                       doctest::Contains("'mem.bin': too short for the max token length"), Error);
}

TEST_CASE("gpt2: from_strings names the labels in its refusals") {
  // All 256 byte tokens in GPT-2's byte alphabet, then "ab".
  std::string vocab = lowbit::test::gpt2_byte_vocab_entries();
  vocab += "\"ab\":256}";
  const auto tok = text::Gpt2Tokenizer::from_strings(vocab, "#version: 0.2\na b\n", "v.json", "m.txt");
  CHECK(tok.encode("ab ab") == std::vector<int>{256, ' ', 256});
  CHECK(tok.decode(tok.encode("ab ab")) == "ab ab");
  CHECK_THROWS_WITH_AS((void)text::Gpt2Tokenizer::from_strings(vocab, "a c\n", "v.json", "m.txt"),
                       doctest::Contains("GPT-2 tokenizer 'm.txt' line 1: merge \"a c\" uses or makes a token missing"),
                       Error);
  CHECK_THROWS_WITH_AS((void)text::Gpt2Tokenizer::from_strings("[1]", "a b\n", "v.json", "m.txt"),
                       doctest::Contains("GPT-2 tokenizer 'v.json': expected a JSON object"), Error);
}
