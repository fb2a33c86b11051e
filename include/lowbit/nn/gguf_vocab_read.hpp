// Tokenizers read back from a GGUF file's metadata (tokenizer.ggml.*), so that a GGUF
// model can be re-quantized with its vocabulary carried over and calibrated on text
// tokenized as the model expects.
//
//  * read_gguf_vocab: the tokenizer.* keys into a GgufVocab (nn/gguf_vocab.hpp's
//    struct, which writes them; keys it has no field for are kept as they are): what a
//    file lowbit writes from this model carries on.
//  * llama2c_tokenizer_of: a SentencePiece vocabulary ("llama": tokens with scores)
//    as the llama2.c tokenizer those scores drive (run.c's encode merges the adjacent
//    pair whose token scores highest): the inverse of gguf_spm_vocab, as llama2.c's
//    export writes its tokenizer.bin — "▁" back to a space, BOS and EOS as
//    "\n<s>\n" and "\n</s>\n". A byte-level BPE vocabulary ("gpt2": tokens and merges)
//    has no such tokenizer in lowbit yet; its caller says so.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/nn/gguf_vocab.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"

namespace lowbit::nn {

namespace gguf_vocab_read_detail {

inline const io::GgufValue* array_of(const io::GgufFile& f, const char* key, io::GgufType elem) {
  const io::GgufValue* v = f.find(key);
  if (v == nullptr) return nullptr;
  lowbit::detail::check(v->type == io::GgufType::array && v->elem == elem, "GGUF file '", f.label(), "': metadata '",
                        key, "' must be an array of ", io::gguf_type_name(elem), ", got ",
                        v->type == io::GgufType::array ? "an array of " + std::string(io::gguf_type_name(v->elem))
                                                       : std::string(io::gguf_type_name(v->type)));
  return v;
}

inline std::optional<std::uint32_t> id_of(const io::GgufFile& f, const char* key, std::size_t tokens) {
  if (f.find(key) == nullptr) return std::nullopt;
  return static_cast<std::uint32_t>(f.integer(key, 0, static_cast<std::int64_t>(tokens) - 1));
}

inline bool flag_of(const io::GgufFile& f, const char* key, bool dflt) {
  const io::GgufValue* v = f.find(key);
  if (v == nullptr) return dflt;
  lowbit::detail::check(v->type == io::GgufType::boolean, "GGUF file '", f.label(), "': metadata '", key,
                        "' must be a bool, got ", io::gguf_type_name(v->type));
  return v->u != 0;
}

}  // namespace gguf_vocab_read_detail

/// The file's tokenizer (GgufVocab::none() when it has no tokenizer.ggml.model, or
/// says "no_vocab"); an Error naming the key when a value has the wrong type or size.
inline GgufVocab read_gguf_vocab(const io::GgufFile& f) {
  namespace d = gguf_vocab_read_detail;
  if (f.find("tokenizer.ggml.model") == nullptr) return GgufVocab::none();
  GgufVocab v;
  v.model = f.string("tokenizer.ggml.model");
  if (v.is_none()) return v;
  if (f.find("tokenizer.ggml.pre") != nullptr) v.pre = f.string("tokenizer.ggml.pre");
  const io::GgufValue* tokens = d::array_of(f, "tokenizer.ggml.tokens", io::GgufType::string);
  lowbit::detail::check(tokens != nullptr && !tokens->items.empty(), "GGUF file '", f.label(),
                        "': metadata 'tokenizer.ggml.tokens' is missing or empty (tokenizer.ggml.model is '", v.model,
                        "')");
  const std::size_t n = tokens->items.size();
  for (const auto& t : tokens->items) v.tokens.push_back(t.s);
  const auto sized = [&](const io::GgufValue* a, const char* key) {
    lowbit::detail::check(a == nullptr || a->items.size() == n, "GGUF file '", f.label(), "': metadata '", key, "' has ",
                          a ? a->items.size() : 0, " entries for ", n, " tokens");
    return a;
  };
  if (const auto* s = sized(d::array_of(f, "tokenizer.ggml.scores", io::GgufType::f32), "tokenizer.ggml.scores"))
    for (const auto& x : s->items) v.scores.push_back(static_cast<float>(x.f));
  if (const auto* t = sized(d::array_of(f, "tokenizer.ggml.token_type", io::GgufType::i32), "tokenizer.ggml.token_type"))
    for (const auto& x : t->items) v.types.push_back(static_cast<std::int32_t>(x.i));
  else
    v.types.assign(n, static_cast<std::int32_t>(GgufTokenType::normal));
  if (const auto* m = d::array_of(f, "tokenizer.ggml.merges", io::GgufType::string))
    for (const auto& x : m->items) v.merges.push_back(x.s);
  v.unk = d::id_of(f, "tokenizer.ggml.unknown_token_id", n);
  v.bos = d::id_of(f, "tokenizer.ggml.bos_token_id", n);
  v.eos = d::id_of(f, "tokenizer.ggml.eos_token_id", n);
  v.pad = d::id_of(f, "tokenizer.ggml.padding_token_id", n);
  v.add_bos = d::flag_of(f, "tokenizer.ggml.add_bos_token", true);
  v.add_eos = d::flag_of(f, "tokenizer.ggml.add_eos_token", false);
  if (f.find("tokenizer.chat_template") != nullptr) v.chat_template = f.string("tokenizer.chat_template");
  // What GgufVocab has no field for goes back into a file written from it unchanged,
  // so that llama.cpp tokenizes the output as it did the input.
  static constexpr std::string_view known[] = {
      "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
      "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.unknown_token_id",
      "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
      "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token", "tokenizer.chat_template"};
  for (const auto& [key, value] : f.header().metadata)
    if (key.starts_with("tokenizer.") && std::find(std::begin(known), std::end(known), key) == std::end(known))
      v.extra.emplace_back(key, value);
  return v;
}

/// A SentencePiece ("llama") vocabulary with scores as the llama2.c tokenizer they
/// drive (see the header); `label` names the file in messages.
inline text::Llama2cTokenizer llama2c_tokenizer_of(const GgufVocab& v, const std::string& label) {
  lowbit::detail::check(v.model == "llama" && v.scores.size() == v.tokens.size(), "GGUF file '", label,
                        "': a tokenizer for calibration text needs a SentencePiece vocabulary with scores "
                        "(tokenizer.ggml.model 'llama'); this one is '", v.model, "'",
                        v.model == "llama" ? " without scores" : "");
  std::vector<std::string> pieces;
  std::int32_t longest = 1;
  for (std::size_t id = 0; id < v.tokens.size(); ++id) {
    std::string p = v.tokens[id];
    if (v.bos && id == *v.bos) p = "\n<s>\n";
    else if (v.eos && id == *v.eos) p = "\n</s>\n";
    else if (v.types[id] == static_cast<std::int32_t>(GgufTokenType::normal)) {
      std::string spaced;
      for (std::size_t i = 0; i < p.size(); ++i)
        if (p.compare(i, 3, "\xE2\x96\x81") == 0) spaced += ' ', i += 2;
        else spaced += p[i];
      p = std::move(spaced);
    }
    longest = std::max(longest, static_cast<std::int32_t>(p.size()));
    pieces.push_back(std::move(p));
  }
  // llama2.c's tokenizer.bin: max token length, then per token its score, length and bytes.
  std::string bytes(4, '\0');
  std::memcpy(bytes.data(), &longest, 4);
  for (std::size_t id = 0; id < pieces.size(); ++id) {
    char head[8];
    const auto len = static_cast<std::int32_t>(pieces[id].size());
    std::memcpy(head, &v.scores[id], 4);
    std::memcpy(head + 4, &len, 4);
    bytes.append(head, 8).append(pieces[id]);
  }
  return text::Llama2cTokenizer::from_bytes(bytes, static_cast<int>(pieces.size()), label + " (tokenizer.ggml.*)");
}

}  // namespace lowbit::nn
