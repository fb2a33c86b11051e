// Tokenizers as GGUF metadata (tokenizer.ggml.*), written so that llama.cpp's own
// tokenizer gives the ids lowbit's does.
//
//  * llama2.c / SentencePiece: tokenizer.ggml.model "llama", as llama.cpp's
//    convert-llama2c-to-ggml writes it (gguf_spm_vocab).
//  * GPT-2's byte-level BPE: "gpt2" with its merges; a compact vocabulary
//    (text::CompactVocab) keeps GPT-2's token texts for its ids, every GPT-2 merge, and
//    its unknown token as an "unknown" token. llama.cpp's tokenizer then gives lowbit's
//    ids for any text whose GPT-2 tokens are all in the compact vocabulary; a GPT-2
//    token outside it is one unknown id in lowbit and its bytes' tokens in llama.cpp
//    (gguf_gpt2_vocab).
//  * A Hugging Face tokenizer.json (+ tokenizer_config.json) — gguf_tokenizer_json_vocab:
//    - byte-level BPE (Llama 3, Qwen2/3, GPT-2): "gpt2", tokens and merges as the file
//      writes them, tokenizer.ggml.pre naming the Split pattern as llama.cpp knows it
//      (pre_tokenizer_name below);
//    - SentencePiece-style BPE with byte fallback (Llama 2, Mistral, TinyLlama):
//      "llama". llama.cpp's SentencePiece tokenizer never reads merges: it merges
//      whichever adjacent pair forms a token with the highest score (leftmost on
//      ties). Each token's score is therefore minus one plus the rank of the first
//      merge that makes it (spm_scores), so that its order is BPE's. Constant scores (what convert_hf_to_gguf.py's
//      LlamaHfVocab writes, -1000) or -id do not give Hugging Face's ids.
//      llama.cpp puts "▁" before the text and after each special token and turns
//      spaces into "▁": the file's normalizer must be exactly that (Prepend "▁",
//      Replace " " → "▁") or the conversion is refused.
//    Added tokens marked special, and those spelled <|…|>, are control tokens (as the
//    converter's does_token_look_special has it); other added tokens user-defined.
//    Ids without a token, and ids past the tokenizer up to the model's embedding
//    rows, are "[PADi]" of type unused. BOS / EOS / add_bos_token come from
//    text::special_tokens, written explicitly (llama.cpp's defaults differ by
//    pre-tokenizer).
//  What llama.cpp does not do itself, its caller must (tests/llama_cpp/tokenizers.cpp):
//  NFC for a tokenizer.json whose normalizer is NFC (Qwen), and tokenizing with
//  parse_special = true (Hugging Face splits every added token out of the text).
//  llama.cpp also makes the ordinary token "</s>" of Qwen's vocabulary a control
//  token by its text, so a literal "</s>" in text gets other ids there.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/text/compact_vocab.hpp"
#include "lowbit/text/gpt2_bpe.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"
#include "lowbit/text/tokenizer_config.hpp"
#include "lowbit/text/tokenizer_json.hpp"

namespace lowbit::nn {

namespace gguf_vocab_detail {
/// A token spelled <|…|>: a control token whatever its file says (as llama.cpp's
/// converter's does_token_look_special has it).
inline bool looks_special(const std::string& t) { return t.size() > 4 && t.starts_with("<|") && t.ends_with("|>"); }
}  // namespace gguf_vocab_detail

/// llama.cpp's token types (llama_token_type).
enum class GgufTokenType : std::int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

/// A tokenizer as GGUF metadata (tokenizer.ggml.*): what llama.cpp's tokenizer reads.
struct GgufVocab {
  std::string model;                 ///< "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  std::string pre;                   ///< pre-tokenizer ("gpt-2"), empty for SentencePiece
  std::vector<std::string> tokens;   ///< one text per id
  std::vector<float> scores;         ///< SentencePiece only
  std::vector<std::int32_t> types;   ///< GgufTokenType per id
  std::vector<std::string> merges;   ///< BPE only, "a b" in rank order
  std::optional<std::uint32_t> unk, bos, eos, pad;
  bool add_bos = true;
  bool add_eos = false;       ///< written only when true (llama.cpp's default is false)
  std::string chat_template;  ///< written only when given
  /// Other tokenizer.* keys of a GGUF this vocabulary was read from (read_gguf_vocab:
  /// add_space_prefix, precompiled_charsmap, …), written back as they were.
  std::vector<std::pair<std::string, io::GgufValue>> extra;

  [[nodiscard]] int size() const { return static_cast<int>(tokens.size()); }

  /// llama.cpp's "no_vocab" model: no tokens in the file; llama.cpp sizes the
  /// vocabulary from {arch}.vocab_size and runs the model on token ids.
  static GgufVocab none() {
    GgufVocab v;
    v.model = "no_vocab";
    return v;
  }
  [[nodiscard]] bool is_none() const { return model == "no_vocab"; }

  void set(io::GgufWriter& w) const {
    using io::GgufValue;
    w.set("tokenizer.ggml.model", GgufValue::string(model));
    if (is_none()) return;
    if (!pre.empty()) w.set("tokenizer.ggml.pre", GgufValue::string(pre));
    w.set("tokenizer.ggml.tokens", GgufValue::strings(tokens));
    if (!scores.empty()) w.set("tokenizer.ggml.scores", GgufValue::f32s(scores));
    w.set("tokenizer.ggml.token_type", GgufValue::i32s(types));
    if (!merges.empty()) w.set("tokenizer.ggml.merges", GgufValue::strings(merges));
    if (unk) w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(*unk));
    if (bos) w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(*bos));
    if (eos) w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(*eos));
    if (pad) w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(*pad));
    w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(add_bos));
    if (add_eos) w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(true));
    if (!chat_template.empty()) w.set("tokenizer.chat_template", GgufValue::string(chat_template));
    for (const auto& [key, value] : extra) w.set(key, value);
  }
};

/// A llama2.c / SentencePiece vocabulary (see the header): ids 0, 1, 2 are <unk>
/// (unknown), <s> and </s> (control), "<0xXX>" pieces are byte tokens, the rest
/// normal, spaces escaped as U+2581, scores kept.
inline GgufVocab gguf_spm_vocab(const text::Llama2cTokenizer& tok) {
  GgufVocab v;
  v.model = "llama";
  for (int id = 0; id < tok.vocab_size(); ++id) {
    std::string p = tok.piece(id);
    GgufTokenType t = GgufTokenType::normal;
    if (id == 0) {
      p = "<unk>";
      t = GgufTokenType::unknown;
    } else if (id == 1 || id == 2) {
      p = id == 1 ? "<s>" : "</s>";
      t = GgufTokenType::control;
    } else if (p.empty()) {
      t = GgufTokenType::control;
    } else if (p.size() == 6 && p.starts_with("<0x") && p.back() == '>') {
      t = GgufTokenType::byte;
    } else {
      std::string escaped;
      for (const char ch : p) escaped += ch == ' ' ? std::string("\xe2\x96\x81") : std::string(1, ch);
      p = std::move(escaped);
    }
    v.tokens.push_back(std::move(p));
    v.scores.push_back(tok.score(id));
    v.types.push_back(static_cast<std::int32_t>(t));
  }
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  return v;
}

/// GPT-2's byte-level BPE from `dir` (encoder.json + vocab.bpe, or vocab.json +
/// merges.txt, as text::Gpt2Tokenizer reads them), over a compact vocabulary's ids
/// when `compact` is given (see the header). <|endoftext|> is BOS and EOS (control).
inline GgufVocab gguf_gpt2_vocab(const std::filesystem::path& dir, const text::CompactVocab* compact = nullptr) {
  namespace fs = std::filesystem;
  const bool openai = fs::exists(dir / "encoder.json");
  const fs::path vocab_path = dir / (openai ? "encoder.json" : "vocab.json");
  const fs::path merges_path = dir / (openai ? "vocab.bpe" : "merges.txt");
  const io::Json j = io::Json::parse(io::read_file(vocab_path), vocab_path.string());
  lowbit::detail::check(j.is_object(), "GPT-2 vocabulary '", vocab_path.string(), "': expected an object of token → id");
  std::vector<std::string> text(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    const io::Json& id = j.value_at(i);
    lowbit::detail::check(id.is_number() && id.as_int64() >= 0 && id.as_int64() < static_cast<std::int64_t>(j.size()),
                          "GPT-2 vocabulary '", vocab_path.string(), "': token \"", j.keys()[i],
                          "\" has no id in [0, ", j.size(), ")");
    text[static_cast<std::size_t>(id.as_int64())] = j.keys()[i];
  }
  GgufVocab v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  v.add_bos = false;
  const auto add = [&](const std::string& t) {
    const bool special = gguf_vocab_detail::looks_special(t);
    v.tokens.push_back(t);
    v.types.push_back(static_cast<std::int32_t>(special ? GgufTokenType::control : GgufTokenType::normal));
    if (t == "<|endoftext|>") v.bos = v.eos = static_cast<std::uint32_t>(v.tokens.size() - 1);
  };
  if (compact == nullptr) {
    for (const auto& t : text) add(t);
  } else {
    lowbit::detail::check(compact->gpt2_vocab_size() == static_cast<int>(text.size()), "GPT-2 vocabulary '",
                          vocab_path.string(), "' has ", text.size(), " tokens, the compact vocabulary maps ",
                          compact->gpt2_vocab_size());
    for (const int id : compact->gpt2_ids()) add(text[static_cast<std::size_t>(id)]);
    v.tokens.emplace_back("<unk>");  // not a GPT-2 text: byte-mapped GPT-2 tokens never hold '<unk>'
    v.types.push_back(static_cast<std::int32_t>(GgufTokenType::unknown));
    v.unk = static_cast<std::uint32_t>(compact->unk_id());
  }
  const std::string merges = io::read_file(merges_path);
  for (std::size_t p = 0; p < merges.size();) {
    std::size_t e = merges.find('\n', p);
    if (e == std::string::npos) e = merges.size();
    std::string line = merges.substr(p, e - p);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && !(p == 0 && line.starts_with("#version"))) v.merges.push_back(std::move(line));
    p = e + 1;
  }
  lowbit::detail::check(!v.merges.empty(), "GPT-2 merges '", merges_path.string(), "': no merges");
  return v;
}


namespace gguf_vocab_detail {

/// llama.cpp's tokenizer.ggml.pre for a byte-level tokenizer.json: the name whose
/// pre-tokenizer (regex, ignore_merges) is the file's. Refused when llama.cpp has none.
inline std::string pre_tokenizer_name(const text::TokenizerJson& tok, const std::string& label) {
  using text::tokenizer_json_detail::SplitRegex;
  switch (tok.split()) {
    // "llama-bpe" ignores merges when a whole pre-token is in the vocabulary, as
    // Llama 3's file says; "smaug-bpe" is the same regex without it.
    case SplitRegex::llama3: return tok.ignore_merges() ? "llama-bpe" : "smaug-bpe";
    case SplitRegex::qwen:
      lowbit::detail::check(!tok.ignore_merges(), "GGUF vocabulary from '", label,
                            "': model.ignore_merges with Qwen's pattern has no llama.cpp pre-tokenizer");
      return "qwen2";
    case SplitRegex::none:
      lowbit::detail::check(tok.byte_level_regex() && !tok.ignore_merges(), "GGUF vocabulary from '", label,
                            "': a ByteLevel pre-tokenizer without its regex (use_regex false) has no llama.cpp "
                            "pre-tokenizer");
      return "gpt-2";
  }
  return "gpt-2";
}

/// Each token's score for llama.cpp's SentencePiece merging: −(1 + the rank of the
/// first merge that makes it); 0 for single characters, bytes and added tokens (never
/// a merge's result); −1e9 for a longer model token no merge makes — BPE never forms
/// it, llama.cpp would, so it comes last (SentencePiece's own files do the same for
/// their unreachable pieces).
inline std::vector<float> spm_scores(const text::TokenizerJson& tok) {
  std::vector<float> score(static_cast<std::size_t>(tok.vocab_size()), 0.0f);
  std::vector<bool> made(score.size(), false);
  const auto pairs = tok.merge_pairs();
  for (std::size_t r = 0; r < pairs.size(); ++r) {
    const auto id = static_cast<std::size_t>(tok.merge_result(pairs[r].first, pairs[r].second));
    if (made[id]) continue;
    made[id] = true;
    score[id] = -static_cast<float>(r + 1);
  }
  for (int id = 0; id < tok.vocab_size(); ++id) {
    if (made[static_cast<std::size_t>(id)] || !tok.has_token(id) || tok.is_added(id) || tok.is_byte_token(id)) continue;
    const std::string t = tok.written_token(id);
    std::size_t len = 0;
    text::decode_utf8(t, 0, len);
    if (len < t.size()) score[static_cast<std::size_t>(id)] = -1e9f;
  }
  return score;
}

}  // namespace gguf_vocab_detail

/// A Hugging Face tokenizer as GGUF metadata (see the header), with `model_vocab`
/// ids (the embedding's rows: at least the tokenizer's).
inline GgufVocab gguf_tokenizer_json_vocab(const text::TokenizerJson& tok, const text::SpecialTokens& special,
                                           int model_vocab, const std::string& label = "tokenizer.json") {
  namespace d = gguf_vocab_detail;
  lowbit::detail::check(tok.vocab_size() <= model_vocab, "GGUF vocabulary from '", label, "': the tokenizer has ",
                        tok.vocab_size(), " ids, more than the model's ", model_vocab);
  GgufVocab v;
  const bool spm = !tok.byte_level();
  if (spm) {
    lowbit::detail::check(tok.split() == text::tokenizer_json_detail::SplitRegex::none && tok.spm_normalizer(),
                          "GGUF vocabulary from '", label, "': normalizer: llama.cpp's SentencePiece tokenizer "
                          "prepends \"▁\" and replaces spaces with it, so the file's normalizer must be exactly "
                          "Prepend \"▁\" then Replace \" \" → \"▁\", with no pre_tokenizer");
    v.model = "llama";
    v.pre = "default";
    v.scores = d::spm_scores(tok);
    v.scores.resize(static_cast<std::size_t>(model_vocab), 0.0f);
  } else {
    v.model = "gpt2";
    v.pre = d::pre_tokenizer_name(tok, label);
    for (const auto& [a, b] : tok.merge_pairs()) v.merges.push_back(tok.written_token(a) + " " + tok.written_token(b));
  }
  for (int id = 0; id < model_vocab; ++id) {
    if (!tok.has_token(id)) {
      v.tokens.push_back("[PAD" + std::to_string(id) + "]");
      v.types.push_back(static_cast<std::int32_t>(GgufTokenType::unused));
      continue;
    }
    std::string t = tok.written_token(id);
    GgufTokenType type = GgufTokenType::normal;
    if (tok.is_added(id)) {
      type = tok.is_special(id) || d::looks_special(t) ? GgufTokenType::control : GgufTokenType::user_defined;
    } else if (spm && tok.is_byte_token(id)) {
      type = GgufTokenType::byte;
    }
    if (special.unk && *special.unk == id) type = GgufTokenType::unknown;
    v.tokens.push_back(std::move(t));
    v.types.push_back(static_cast<std::int32_t>(type));
  }
  const auto u32 = [](std::optional<int> id) {
    return id ? std::optional<std::uint32_t>(static_cast<std::uint32_t>(*id)) : std::nullopt;
  };
  v.bos = u32(special.bos);
  v.eos = u32(special.eos);
  v.unk = u32(special.unk);
  v.pad = u32(special.pad);
  v.add_bos = special.add_bos;
  v.add_eos = special.add_eos;
  return v;
}

/// The vocabulary of a Hugging Face folder: tokenizer.json, with tokenizer_config.json
/// and config.json's token ids where the folder has them.
inline GgufVocab gguf_hf_folder_vocab(const std::filesystem::path& dir, int model_vocab) {
  const auto tj = dir / "tokenizer.json";
  const text::TokenizerJson tok = text::TokenizerJson::load(tj);
  const text::TokenizerConfig config = text::TokenizerConfig::from_folder(dir);
  GgufVocab v = gguf_tokenizer_json_vocab(tok, text::special_tokens(tok, &config), model_vocab, tj.string());
  v.chat_template = config.chat_template;
  return v;
}

}  // namespace lowbit::nn
