// Llama-family models to and from GGUF as llama.cpp names and lays them out (arch
// `llama`): the metadata its loader reads, its tensor names, ne = [in, out] for an
// [out, in] weight, and query/key rows in the order its RoPE expects.
//
// Row order. llama.cpp's `llama` RoPE rotates adjacent pairs (2i, 2i+1) of each
// head, as Meta's and llama2.c's code do; Hugging Face's rotate_half pairs (i,
// i + head/2). A checkpoint whose config says RopeStyle::half (a Hugging Face
// folder) has its q_proj/k_proj rows permuted on the way out — per head, row
// a·(head/2) + i goes to 2i + a, what llama.cpp's convert_hf_to_gguf.py does — and
// one with RopeStyle::interleaved (llama2.c) is written as it is (nn/rope_rows.hpp).
// A GGUF read back is RopeStyle::interleaved.
//
// Vocabulary. A llama2.c / SentencePiece vocabulary (text::Llama2cTokenizer) is
// written as tokenizer.ggml.model "llama" the way llama.cpp's own
// convert-llama2c-to-ggml does: ids 0, 1, 2 are <unk> (unknown), <s> and </s>
// (control), "<0xXX>" pieces are byte tokens, the rest normal, spaces escaped as
// U+2581, scores kept.
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/config.hpp"
#include "lowbit/nn/rope_rows.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"

namespace lowbit::nn {

/// lowbit's (Hugging Face) name of a Llama tensor and llama.cpp's, for the whole
/// model and (with "model.layers.N." / "blk.N." in front) for each block.
struct GgufName {
  std::string_view lowbit;
  std::string_view gguf;
};

inline constexpr std::array<GgufName, 3> gguf_llama_model_names{{
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
}};

inline constexpr std::array<GgufName, 9> gguf_llama_block_names{{
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
}};

namespace gguf_detail {

/// "model.layers.12.rest" → (12, "rest") for prefix "model.layers.", or nullopt.
inline std::optional<std::pair<int, std::string_view>> split_layer(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return std::nullopt;
  name.remove_prefix(prefix.size());
  const auto dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot > 6) return std::nullopt;
  int layer = 0;
  for (const char c : name.substr(0, dot)) {
    if (c < '0' || c > '9') return std::nullopt;
    layer = layer * 10 + (c - '0');
  }
  return std::pair{layer, name.substr(dot + 1)};
}

/// Maps `name` from one naming to the other (to_gguf: lowbit → llama.cpp).
inline std::optional<std::string> map_name(std::string_view name, bool to_gguf) {
  for (const auto& n : gguf_llama_model_names)
    if (name == (to_gguf ? n.lowbit : n.gguf)) return std::string(to_gguf ? n.gguf : n.lowbit);
  const auto split = split_layer(name, to_gguf ? "model.layers." : "blk.");
  if (!split) return std::nullopt;
  for (const auto& n : gguf_llama_block_names)
    if (split->second == (to_gguf ? n.lowbit : n.gguf))
      return std::string(to_gguf ? "blk." : "model.layers.") + std::to_string(split->first) + "." +
             std::string(to_gguf ? n.gguf : n.lowbit);
  return std::nullopt;
}

}  // namespace gguf_detail

/// llama.cpp's name of a lowbit Llama tensor ("model.layers.3.mlp.down_proj.weight"
/// → "blk.3.ffn_down.weight"), or nullopt for a name llama.cpp has no place for.
inline std::optional<std::string> gguf_name_of(std::string_view lowbit_name) {
  return gguf_detail::map_name(lowbit_name, true);
}
/// The inverse of gguf_name_of.
inline std::optional<std::string> lowbit_name_of(std::string_view gguf_name) {
  return gguf_detail::map_name(gguf_name, false);
}

/// Sets the `llama` architecture's hyper-parameters (and general.architecture,
/// general.name, general.quantization_version) from a config.
inline void set_gguf_llama_metadata(io::GgufWriter& w, const TransformerConfig& c, std::string_view model_name) {
  using io::GgufValue;
  lowbit::detail::check(c.arch == Architecture::llama, "GGUF export: only Llama-family models are written as arch "
                                                       "'llama' (GPT-2: not yet)");
  const auto u32 = [&](const char* key, int v) { w.set(key, GgufValue::u32(static_cast<std::uint32_t>(v))); };
  w.set("general.architecture", GgufValue::string("llama"));
  w.set("general.name", GgufValue::string(std::string(model_name)));
  u32("general.quantization_version", 2);  // ggml's GGML_QNT_VERSION
  u32("llama.context_length", c.context);
  u32("llama.embedding_length", c.dim);
  u32("llama.block_count", c.layers);
  u32("llama.feed_forward_length", c.hidden);
  u32("llama.rope.dimension_count", c.head_dim());
  u32("llama.attention.head_count", c.heads);
  u32("llama.attention.head_count_kv", c.kv_heads);
  u32("llama.vocab_size", c.vocab);
  w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(c.norm_eps));
  w.set("llama.rope.freq_base", GgufValue::f32(c.rope_theta));
}

/// llama.cpp's token types (llama_token_type).
enum class GgufTokenType : std::int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

/// Sets a SentencePiece vocabulary from a llama2.c tokenizer (see the header).
inline void set_gguf_spm_vocab(io::GgufWriter& w, const text::Llama2cTokenizer& tok) {
  using io::GgufValue;
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<std::int32_t> types;
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
    pieces.push_back(std::move(p));
    scores.push_back(tok.score(id));
    types.push_back(static_cast<std::int32_t>(t));
  }
  w.set("tokenizer.ggml.model", GgufValue::string("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::strings(pieces));
  w.set("tokenizer.ggml.scores", GgufValue::f32s(scores));
  w.set("tokenizer.ggml.token_type", GgufValue::i32s(types));
  w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(0));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));
}

/// F32 and F16 tensor bytes (little-endian), the two float types the exporters write.
inline std::vector<std::uint8_t> gguf_f32_bytes(std::span<const float> v) {
  std::vector<std::uint8_t> b(v.size() * sizeof(float));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}
inline std::vector<std::uint8_t> gguf_f16_bytes(std::span<const float> v) {
  std::vector<std::uint8_t> b(v.size() * 2);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::uint16_t h = io::f32_to_f16(v[i]);
    b[2 * i] = static_cast<std::uint8_t>(h & 0xFF);
    b[2 * i + 1] = static_cast<std::uint8_t>(h >> 8);
  }
  return b;
}

/// How each weight goes into the file. `type(name, shape)` picks its ggml type from
/// its name and shape alone (so the header is written before any weight is encoded);
/// `encode(name, weight, type)` gives its bytes (rows of ne[0] = in weights). The
/// default writes every tensor as F32.
struct GgufCodec {
  std::function<std::uint32_t(const std::string& lowbit_name, const std::vector<std::int64_t>& shape)> type =
      [](const std::string&, const std::vector<std::int64_t>&) { return std::uint32_t{0}; };
  std::function<std::vector<std::uint8_t>(const std::string& lowbit_name, const Weight& w, std::uint32_t type)>
      encode = [](const std::string& name, const Weight& w, std::uint32_t type) {
        lowbit::detail::check(type == 0, "GGUF export: tensor '", name, "': the default codec writes F32 only");
        return gguf_f32_bytes(w.values);
      };
};

/// The ggml type llama.cpp would give a weight of `shape` under the block format
/// `spec`: norms (1-D) stay F32; a matrix takes the spec, or its documented fallback
/// (QuantSpec::fallback_for) when its rows are not whole blocks, or F16 when even that
/// does not fit — llama-quantize's rule.
inline std::uint32_t gguf_type_for(const QuantSpec& spec, const std::string& name, const std::vector<std::int64_t>& shape) {
  lowbit::detail::check(spec.is_block(), "GGUF export: tensor '", name, "': ", spec.str(),
                        " is not a llama.cpp type (GGUF takes q8_0 ... q2_k, tq2_0, iq4_nl, mxfp4)");
  if (shape.size() < 2) return 0;
  const auto fits = spec.fallback_for(static_cast<Index>(shape.back()));
  return fits ? static_cast<std::uint32_t>(blocks::info(fits->block).ggml_type) : 1;
}

/// Round-to-nearest into `spec` with llama.cpp's own quantizer (blocks::quantize,
/// no importance matrix), the types chosen by gguf_type_for.
inline GgufCodec gguf_rtn_codec(const QuantSpec& spec) {
  GgufCodec codec;
  codec.type = [spec](const std::string& name, const std::vector<std::int64_t>& shape) {
    return gguf_type_for(spec, name, shape);
  };
  codec.encode = [](const std::string& name, const Weight& w, std::uint32_t type) {
    const auto info = io::ggml_type_info(type);
    if (type == 0) return gguf_f32_bytes(w.values);
    if (type == 1) return gguf_f16_bytes(w.values);
    const Index cols = static_cast<Index>(w.shape.back()), rows = static_cast<Index>(w.values.size()) / cols;
    return blocks::quantize(*info->block, ConstMatrixView(w.values.data(), rows, cols), name, nullptr);
  };
  return codec;
}

/// Writes a Llama checkpoint as a GGUF llama.cpp loads: metadata from its config,
/// the vocabulary (if given), every weight through `codec`, one tensor encoded at a
/// time, atomically. The codec sees each weight in lowbit's [out, in] layout after
/// any query/key row interleaving. A tied classifier is not written (llama.cpp then
/// reuses token_embd).
inline void write_gguf_llama(const std::filesystem::path& path, const Checkpoint& ck,
                             const text::Llama2cTokenizer* vocab = nullptr, const GgufCodec& codec = {},
                             std::string_view model_name = "lowbit") {
  const TransformerConfig& c = ck.config;
  c.validate(ck.source);
  io::GgufWriter w;
  set_gguf_llama_metadata(w, c, model_name);
  if (vocab != nullptr) {
    lowbit::detail::check(vocab->vocab_size() == c.vocab, "GGUF export of '", ck.source, "': the tokenizer has ",
                          vocab->vocab_size(), " tokens, the model ", c.vocab);
    set_gguf_spm_vocab(w, *vocab);
  }
  // llama.cpp's order: embedding, blocks, final norm, classifier.
  std::vector<std::string> names{"model.embed_tokens.weight"};
  for (int l = 0; l < c.layers; ++l)
    for (const auto& n : gguf_llama_block_names)
      names.push_back("model.layers." + std::to_string(l) + "." + std::string(n.lowbit));
  names.push_back("model.norm.weight");
  if (!c.tied_head) names.push_back("lm_head.weight");

  const auto stored = [&](const std::string& name) -> const Weight& {
    const auto it = ck.weights.find(name);
    lowbit::detail::check(it != ck.weights.end(), "GGUF export of '", ck.source, "': no tensor '", name, "'");
    return it->second;
  };
  std::vector<std::uint32_t> types;
  for (const auto& name : names) {
    const Weight& wk = stored(name);
    types.push_back(codec.type(name, wk.shape));
    std::vector<std::uint64_t> ne;
    for (auto d = wk.shape.rbegin(); d != wk.shape.rend(); ++d) ne.push_back(static_cast<std::uint64_t>(*d));
    w.add_tensor(*gguf_name_of(name), ne, types.back());
  }
  const auto interleaved = [&](const Weight& wk) {
    return Weight{wk.shape, permute_rope_rows<float>(wk.values, wk.shape[0], wk.shape[1], c.head_dim(), RopeRows::to_interleaved)};
  };
  w.write(path, [&](std::size_t k, std::vector<std::uint8_t>& out) {
    const std::string& name = names[k];
    const bool q = name.ends_with("q_proj.weight"), kproj = name.ends_with("k_proj.weight");
    if ((q || kproj) && c.rope_style == autograd::RopeStyle::half)
      out = codec.encode(name, interleaved(stored(name)), types[k]);
    else
      out = codec.encode(name, stored(name), types[k]);
  });
}

/// Reads a GGUF of arch `llama` into a Checkpoint (float weights, lowbit's names and
/// layout, RopeStyle::interleaved). Every block type lowbit decodes is accepted.
inline Checkpoint load_gguf_llama(const std::filesystem::path& path) {
  const io::GgufFile f = io::GgufFile::open(path);
  const std::string& arch = f.string("general.architecture");
  lowbit::detail::check(arch == "llama", "GGUF file '", path.string(), "': architecture '", arch,
                        "' is not one lowbit reads (llama)");
  const auto get = [&](const char* key) { return static_cast<int>(f.integer(key, 1, 1 << 24)); };
  Checkpoint ck;
  ck.source = path.string();
  TransformerConfig& c = ck.config;
  c.arch = Architecture::llama;
  c.dim = get("llama.embedding_length");
  c.hidden = get("llama.feed_forward_length");
  c.layers = get("llama.block_count");
  c.heads = get("llama.attention.head_count");
  c.kv_heads = f.find("llama.attention.head_count_kv") ? get("llama.attention.head_count_kv") : c.heads;
  c.context = get("llama.context_length");
  const auto real = [&](const char* key, float fallback) {
    const io::GgufValue* v = f.find(key);
    if (v == nullptr) return fallback;
    lowbit::detail::check(v->type == io::GgufType::f32, "GGUF file '", path.string(), "': metadata '", key,
                          "' must be f32");
    return static_cast<float>(v->f);
  };
  c.norm_eps = real("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  c.rope_theta = real("llama.rope.freq_base", 10000.0f);
  c.rope_style = autograd::RopeStyle::interleaved;
  const io::GgufTensorInfo& embed = f.tensor("token_embd.weight");
  c.vocab = static_cast<int>(std::min<std::uint64_t>(embed.rows(), 1 << 24));
  c.tied_head = f.find_tensor("output.weight") == nullptr;
  if (f.find("llama.rope.dimension_count") != nullptr && c.heads > 0 && c.dim % c.heads == 0)
    lowbit::detail::check(get("llama.rope.dimension_count") == c.dim / c.heads, "GGUF file '", path.string(),
                          "': llama.rope.dimension_count must equal the head size ", c.dim / c.heads,
                          " (partial RoPE is not supported)");
  c.validate(ck.source);
  for (const auto& t : f.tensors()) {
    const auto name = lowbit_name_of(t.name);
    lowbit::detail::check(name.has_value(), "GGUF file '", path.string(), "': tensor '", t.name,
                          "' is not part of a llama model lowbit knows");
    std::vector<std::int64_t> shape;
    for (auto d = t.ne.rbegin(); d != t.ne.rend(); ++d) shape.push_back(static_cast<std::int64_t>(*d));
    ck.weights.emplace(*name, Weight{shape, f.to_float(t.name)});
  }
  return ck;
}

}  // namespace lowbit::nn
