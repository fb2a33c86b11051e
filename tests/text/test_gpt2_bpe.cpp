// GPT-2 BPE against ids from the reference JavaScript encoder (gpt-3-encoder@1.1.4):
// tricky strings, WikiText-2 excerpts, and the whole joined test split.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lowbit/text/gpt2_bpe.hpp"
#include "lowbit/text/wikitext.hpp"
#include "../io/shared_data.hpp"
#include "text_fixture.hpp"

using lowbit::Error;
namespace text = lowbit::text;

namespace {
std::vector<std::string> pieces(std::string_view s) {
  std::vector<std::string> out;
  text::pretokenize(s, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}
}  // namespace

TEST_CASE("gpt2: pre-tokenizer follows the reference pattern") {
  using V = std::vector<std::string>;
  CHECK(pieces("Hello world") == V{"Hello", " world"});
  CHECK(pieces("it's 've'll") == V{"it", "'s", " '", "ve", "'ll"});
  CHECK(pieces("a  b") == V{"a", " ", " b"});
  CHECK(pieces("a   \n\nb") == V{"a", "   \n", "\n", "b"});
  CHECK(pieces("x \n") == V{"x", " \n"});
  CHECK(pieces("x!!? 12ab") == V{"x", "!!?", " 12", "ab"});
  CHECK(pieces("caf\xC3\xA9 \xE4\xB8\xAD") == V{"caf\xC3\xA9", " \xE4\xB8\xAD"});
  CHECK(pieces("\xC2\xA0x") == V{"\xC2\xA0", "x"});                 // NBSP is \s but not " ?"
  CHECK(pieces("a\xFF\xFE b") == V{"a", "\xFF\xFE", " b"});           // invalid bytes: punctuation-like
  CHECK(pieces("\xC2\xB2\xE2\x85\xA7") == V{"\xC2\xB2\xE2\x85\xA7"});  // ² and Ⅷ are \p{N}
  CHECK(pieces("").empty());
}

TEST_CASE("gpt2: ids equal the reference encoder's on strings and WikiText-2 excerpts") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const auto tok = text::Gpt2Tokenizer::from_dir(data / "gpt2-bpe");
  CHECK(tok.vocab_size() == 50257);
  CHECK(tok.eos_id() == 50256);
  const lowbit::test::TextFixture fx("text/gpt2_bpe.txt");
  const std::string joined = text::wikitext_hf_join(text::load_wikitext2(data, "wiki.test.raw"));
  const auto& total = fx.summary.at("wikitext_test_joined_total");
  REQUIRE(joined.size() == std::stoul(total[0]));
  int checked = 0;
  for (const auto& c : fx.cases) {
    std::string s;
    if (c.head[0] == "string") {
      s = lowbit::test::from_hex(c.head[1]);
    } else {
      const auto b = std::stoul(c.head[1]), e = std::stoul(c.head[2]);
      s = joined.substr(b, e - b);
    }
    INFO("case ", c.head[0], " ", c.head[1]);
    const auto ids = tok.encode(s);
    CHECK(ids == c.ids);
    CHECK(tok.decode(ids) == s);  // byte-level BPE is lossless
    ++checked;
  }
  CHECK(checked >= 20);

  // The whole joined test split: 287,644 tokens (the figure Hugging Face's
  // perplexity guide reports for GPT-2 on WikiText-2 raw test) and a checksum.
  const auto ids = tok.encode(joined);
  CHECK(ids.size() == std::stoul(total[1]));
  CHECK(ids.size() == 287644);
  const std::uint64_t p = (1ull << 61) - 1;
  std::uint64_t chk = 0;  // id·(i+1) < 2^34, so chk + it stays below 2^64
  for (std::size_t i = 0; i < ids.size(); ++i) chk = (chk + static_cast<std::uint64_t>(ids[i]) * (i + 1)) % p;
  CHECK(chk == std::stoull(total[2]));
}

TEST_CASE("gpt2: loading refuses broken vocabularies with the file named") {
  const auto dir = std::filesystem::temp_directory_path() / ("lowbit_gpt2_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto write = [&](const char* name, const std::string& s) { lowbit::io::write_file_atomic(dir / name, s); };
  // A toy vocabulary: all 256 byte tokens plus "ab".
  const std::string vocab = lowbit::test::gpt2_byte_vocab_entries();
  write("vocab.json", vocab + "\"ab\":256}");
  write("merges.txt", "#version: 0.2\na b\n");
  const auto tok = text::Gpt2Tokenizer::from_dir(dir);
  CHECK(tok.encode("abab a") == std::vector<int>{256, 256, ' ', 'a'});
  CHECK(tok.eos_id() == -1);
  write("merges.txt", "#version: 0.2\na c\n");
  CHECK_THROWS_WITH_AS((void)text::Gpt2Tokenizer::from_dir(dir), doctest::Contains("merges.txt' line 2"), Error);
  write("merges.txt", "#version: 0.2\nab\n");
  CHECK_THROWS_WITH_AS((void)text::Gpt2Tokenizer::from_dir(dir), doctest::Contains("two tokens"), Error);
  write("merges.txt", "#version: 0.2\na b\na b\n");
  CHECK_THROWS_WITH_AS((void)text::Gpt2Tokenizer::from_dir(dir), doctest::Contains("repeated"), Error);
  write("merges.txt", "#version: 0.2\na b\n");
  write("vocab.json", vocab + "\"ab\":300}");
  CHECK_THROWS_WITH_AS((void)text::Gpt2Tokenizer::from_dir(dir), doctest::Contains("vocab.json"), Error);
  write("vocab.json", "{\"a\":0}");
  CHECK_THROWS_WITH_AS((void)text::Gpt2Tokenizer::from_dir(dir), doctest::Contains("no token for byte"), Error);
  std::filesystem::remove_all(dir);
  CHECK_THROWS_WITH_AS((void)text::Gpt2Tokenizer::from_dir(dir), doctest::Contains("neither"), Error);
}
