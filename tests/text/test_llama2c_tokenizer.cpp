// llama2.c tokenizer: ids from a Python re-implementation of run.c's encode()
// (scripts/fixtures/gen_text_fixtures.py), decode, and corrupt files.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lowbit/text/llama2c_tokenizer.hpp"
#include "lowbit/text/tinystories.hpp"
#include "../io/shared_data.hpp"
#include "text_fixture.hpp"

using lowbit::Error;
namespace text = lowbit::text;

TEST_CASE("llama2c tokenizer: tok512.bin encodes as run.c does") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const auto tok = text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", 512);
  CHECK(tok.vocab_size() == 512);
  CHECK(tok.max_token_length() == 7);
  CHECK(tok.piece(3) == "<0x00>");
  CHECK(tok.piece(258) == "<0xFF>");
  const auto stories = text::tinystories_stories(
      lowbit::io::read_file(data / "tinystories" / "TinyStories-valid.first246.txt"));
  REQUIRE(stories.size() == 246);
  const lowbit::test::TextFixture fx("text/llama2c_tok.txt");
  int checked = 0;
  for (const auto& c : fx.cases) {
    const std::string s = c.head[0] == "story" ? stories.at(std::stoul(c.head[1])) : lowbit::test::from_hex(c.head[1]);
    INFO("case ", c.head[0], " ", c.head[1]);
    const auto ids = tok.encode(s, c.head[2] == "1", c.head[3] == "1");
    CHECK(ids == c.ids);
    // Decoding drops BOS/EOS and the dummy-prefix space that follows BOS.
    if (c.head[2] == "1") CHECK(tok.decode(ids) == s);
    ++checked;
  }
  CHECK(checked == 10);
  // Byte fallback: a character with no token becomes its UTF-8 bytes + 3.
  const auto smile = tok.encode("\xF0\x9F\x98\x80", false, false);
  CHECK(std::vector<int>(smile.end() - 4, smile.end()) == std::vector<int>{0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3});
  CHECK(tok.decode(1, 0xF0 + 3) == "\xF0");
  CHECK(tok.encode("", true, true) == std::vector<int>{1, 2});

  // The heap-based encoder against run.c's quadratic loop, kept as encode_reference().
  for (std::size_t i = 0; i < stories.size(); i += 23) {
    INFO("story ", i);
    CHECK(tok.encode(stories[i], true, false) == tok.encode_reference(stories[i], true, false));
  }
  for (const char* s : {"aaaaaaaaaaaaaaaa", "   ", "\xE4\xB8\xAD\xFF\x80 x", "the the the the"})
    CHECK(tok.encode(s, true, true) == tok.encode_reference(s, true, true));
}

TEST_CASE("llama2c tokenizer: truncated and inconsistent files are refused") {
  const auto dir = std::filesystem::temp_directory_path() / ("lowbit_l2ctok_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "tok.bin";
  const auto put = [&](const std::string& bytes) { lowbit::io::write_file_atomic(file, bytes); };
  const auto i32 = [](std::int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  const auto f32 = [](float v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  put(i32(7).substr(0, 2));
  CHECK_THROWS_WITH_AS((void)text::Llama2cTokenizer::load(file), doctest::Contains("tok.bin"), Error);
  put(i32(7) + f32(0) + i32(50) + "abc");
  CHECK_THROWS_WITH_AS((void)text::Llama2cTokenizer::load(file), doctest::Contains("beyond the end"), Error);
  put(i32(2) + f32(0) + i32(3) + "abc");
  CHECK_THROWS_WITH_AS((void)text::Llama2cTokenizer::load(file), doctest::Contains("longer than the max"), Error);
  put(i32(7) + f32(0) + i32(1) + "a" + f32(0));
  CHECK_THROWS_WITH_AS((void)text::Llama2cTokenizer::load(file), doctest::Contains("truncated"), Error);
  put(i32(7) + f32(0) + i32(1) + "a");
  CHECK_THROWS_WITH_AS((void)text::Llama2cTokenizer::load(file, 512), doctest::Contains("the model needs 512"), Error);
  std::filesystem::remove_all(dir);
}
