// lowbit's models to and from GGUF as llama.cpp names and lays them out: arch
// `llama` (stories260K, any Llama-family model) and arch `gpt2` (lowbit's pd-*
// models) — the metadata llama.cpp's loader reads, its tensor names, ne = [in, out]
// for an [out, in] weight, and query/key rows in the order its RoPE expects.
//
// Row order (llama). llama.cpp's `llama` RoPE rotates adjacent pairs (2i, 2i+1) of
// each head, as Meta's and llama2.c's code do; Hugging Face's rotate_half pairs (i,
// i + head/2). A checkpoint whose config says RopeStyle::half (a Hugging Face
// folder) has its q_proj/k_proj rows permuted on the way out — per head, row
// a·(head/2) + i goes to 2i + a, what llama.cpp's convert_hf_to_gguf.py does — and
// one with RopeStyle::interleaved (llama2.c) is written as it is (nn/rope_rows.hpp).
// A GGUF read back is RopeStyle::interleaved.
//
// GPT-2. lowbit keeps GPT-2's Conv1D weights in nn.Linear's [out, in] layout
// (nn/checkpoint.hpp), which is llama.cpp's `gpt2` layout already (its converter
// transposes the Hugging Face tensors into it); the fused c_attn is attn_qkv. The
// position embedding is never quantized (llama-quantize leaves position_embd alone).
//
// Vocabularies: nn/gguf_vocab.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/config.hpp"
#include "lowbit/nn/gguf_vocab.hpp"
#include "lowbit/nn/rope_rows.hpp"
#include "lowbit/quant/spec.hpp"

namespace lowbit::nn {

/// lowbit's name of a tensor and llama.cpp's, for the whole model and (with the
/// architecture's layer prefix / "blk.N." in front) for each block.
struct GgufName {
  std::string_view lowbit;
  std::string_view gguf;
};

/// One architecture as llama.cpp knows it: its name, its tensors in the order its
/// converters write them, and the hyper-parameter keys' prefix.
struct GgufArch {
  Architecture arch;
  std::string_view name;          ///< general.architecture, and the prefix of its keys
  std::string_view layer_prefix;  ///< lowbit's block prefix
  std::span<const GgufName> before_blocks, blocks, after_blocks;
};

inline constexpr std::array<GgufName, 1> gguf_llama_head{{{"model.embed_tokens.weight", "token_embd.weight"}}};
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
inline constexpr std::array<GgufName, 2> gguf_llama_tail{{
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
}};

inline constexpr std::array<GgufName, 2> gguf_gpt2_head{{
    {"transformer.wte.weight", "token_embd.weight"},
    {"transformer.wpe.weight", "position_embd.weight"},
}};
inline constexpr std::array<GgufName, 12> gguf_gpt2_block_names{{
    {"ln_1.weight", "attn_norm.weight"},
    {"ln_1.bias", "attn_norm.bias"},
    {"attn.c_attn.weight", "attn_qkv.weight"},
    {"attn.c_attn.bias", "attn_qkv.bias"},
    {"attn.c_proj.weight", "attn_output.weight"},
    {"attn.c_proj.bias", "attn_output.bias"},
    {"ln_2.weight", "ffn_norm.weight"},
    {"ln_2.bias", "ffn_norm.bias"},
    {"mlp.c_fc.weight", "ffn_up.weight"},
    {"mlp.c_fc.bias", "ffn_up.bias"},
    {"mlp.c_proj.weight", "ffn_down.weight"},
    {"mlp.c_proj.bias", "ffn_down.bias"},
}};
inline constexpr std::array<GgufName, 3> gguf_gpt2_tail{{
    {"transformer.ln_f.weight", "output_norm.weight"},
    {"transformer.ln_f.bias", "output_norm.bias"},
    {"lm_head.weight", "output.weight"},
}};

inline constexpr std::array<GgufArch, 2> gguf_archs{{
    {Architecture::llama, "llama", "model.layers.", gguf_llama_head, gguf_llama_block_names, gguf_llama_tail},
    {Architecture::gpt2, "gpt2", "transformer.h.", gguf_gpt2_head, gguf_gpt2_block_names, gguf_gpt2_tail},
}};

inline const GgufArch& gguf_arch(Architecture a) {
  for (const auto& g : gguf_archs)
    if (g.arch == a) return g;
  lowbit::detail::fail("GGUF: no llama.cpp architecture for this model");
}

/// The architecture named `name` in a file's general.architecture, or nullptr.
inline const GgufArch* find_gguf_arch(std::string_view name) {
  for (const auto& g : gguf_archs)
    if (g.name == name) return &g;
  return nullptr;
}

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
inline std::optional<std::string> map_name(const GgufArch& a, std::string_view name, bool to_gguf) {
  for (const auto list : {a.before_blocks, a.after_blocks})
    for (const auto& n : list)
      if (name == (to_gguf ? n.lowbit : n.gguf)) return std::string(to_gguf ? n.gguf : n.lowbit);
  const std::string_view from = to_gguf ? a.layer_prefix : "blk.", to = to_gguf ? "blk." : a.layer_prefix;
  const auto split = split_layer(name, from);
  if (!split) return std::nullopt;
  for (const auto& n : a.blocks)
    if (split->second == (to_gguf ? n.lowbit : n.gguf)) {
      std::string out(to);
      out.append(std::to_string(split->first)).append(".").append(to_gguf ? n.gguf : n.lowbit);
      return out;
    }
  return std::nullopt;
}

}  // namespace gguf_detail

/// llama.cpp's name of a lowbit tensor ("model.layers.3.mlp.down_proj.weight" →
/// "blk.3.ffn_down.weight"), or nullopt for a name llama.cpp has no place for.
inline std::optional<std::string> gguf_name_of(Architecture arch, std::string_view lowbit_name) {
  return gguf_detail::map_name(gguf_arch(arch), lowbit_name, true);
}
/// The inverse of gguf_name_of.
inline std::optional<std::string> lowbit_name_of(Architecture arch, std::string_view gguf_name) {
  return gguf_detail::map_name(gguf_arch(arch), gguf_name, false);
}

/// Refuses what lowbit's GGUF writer does not map yet (llama.cpp has its own arches
/// or tensors for them: qwen2 / qwen3, attention biases, rope_freqs, key_length).
inline void check_gguf_writable(const TransformerConfig& c) {
  const auto refuse = [&](bool bad, const char* what) {
    lowbit::detail::check(!bad, "GGUF export: ", what, " (model_type '", hf_family(c).model_type,
                          "') is not supported by lowbit's GGUF writer yet");
  };
  refuse(c.qkv_bias || c.o_bias, "attention biases");
  refuse(c.qk_norm, "per-head q/k normalisation");
  refuse(c.head_size > 0 && c.head_size * c.heads != c.dim, "a head size other than width / heads");
  refuse(c.rope_scaling.kind != RopeScaling::Kind::none, "RoPE scaling");
}

/// Sets the architecture's hyper-parameters (and general.architecture, general.name,
/// general.quantization_version) from a config.
inline void set_gguf_metadata(io::GgufWriter& w, const TransformerConfig& c, std::string_view model_name) {
  using io::GgufValue;
  check_gguf_writable(c);
  const std::string a(gguf_arch(c.arch).name);
  const auto u32 = [&](const char* key, int v) {
    w.set(a + "." + key, GgufValue::u32(static_cast<std::uint32_t>(v)));
  };
  w.set("general.architecture", GgufValue::string(a));
  w.set("general.name", GgufValue::string(std::string(model_name)));
  w.set("general.quantization_version", GgufValue::u32(2));  // ggml's GGML_QNT_VERSION
  u32("context_length", c.context);
  u32("embedding_length", c.dim);
  u32("block_count", c.layers);
  u32("feed_forward_length", c.hidden);
  u32("attention.head_count", c.heads);
  u32("attention.head_count_kv", c.kv_heads);
  if (c.arch == Architecture::gpt2) {
    w.set(a + ".attention.layer_norm_epsilon", GgufValue::f32(c.norm_eps));
    return;
  }
  u32("rope.dimension_count", c.head_dim());
  u32("vocab_size", c.vocab);
  w.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::f32(c.norm_eps));
  w.set(a + ".rope.freq_base", GgufValue::f32(c.rope_theta));
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
/// `spec`: norms, biases (1-D) and GPT-2's position embedding stay F32; a matrix takes
/// the spec, or its documented fallback (QuantSpec::fallback_for) when its rows are not
/// whole blocks, or F16 when even that does not fit — llama-quantize's rule.
inline std::uint32_t gguf_type_for(const QuantSpec& spec, const std::string& name, const std::vector<std::int64_t>& shape) {
  lowbit::detail::check(spec.is_block(), "GGUF export: tensor '", name, "': ", spec.str(),
                        " is not a llama.cpp type (GGUF takes q8_0 ... q2_k, tq2_0, iq4_nl, mxfp4)");
  if (shape.size() < 2 || name == "transformer.wpe.weight") return 0;
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

/// The model's tensors in the order llama.cpp's converters write them: embeddings,
/// blocks, final norm, classifier (left out when tied: llama.cpp then reuses
/// token_embd).
inline std::vector<std::string> gguf_tensor_order(const TransformerConfig& c) {
  const GgufArch& a = gguf_arch(c.arch);
  std::vector<std::string> names;
  for (const auto& n : a.before_blocks) names.emplace_back(n.lowbit);
  for (int l = 0; l < c.layers; ++l)
    for (const auto& n : a.blocks) names.push_back(std::string(a.layer_prefix) + std::to_string(l) + "." + std::string(n.lowbit));
  for (const auto& n : a.after_blocks)
    if (!(c.tied_head && n.lowbit == "lm_head.weight")) names.emplace_back(n.lowbit);
  return names;
}

/// Writes a checkpoint as a GGUF llama.cpp loads: metadata from its config, the
/// vocabulary (if given), every weight through `codec`, one tensor encoded at a
/// time, atomically. The codec sees each weight in lowbit's [out, in] layout after
/// any query/key row interleaving.
inline void write_gguf(const std::filesystem::path& path, const Checkpoint& ck, const GgufVocab* vocab = nullptr,
                       const GgufCodec& codec = {}, std::string_view model_name = "lowbit") {
  const TransformerConfig& c = ck.config;
  c.validate(ck.source);
  io::GgufWriter w;
  set_gguf_metadata(w, c, model_name);
  if (vocab != nullptr) {
    lowbit::detail::check(vocab->is_none() || vocab->size() == c.vocab, "GGUF export of '", ck.source,
                          "': the tokenizer has ", vocab->size(), " tokens, the model ", c.vocab);
    lowbit::detail::check(!vocab->is_none() || c.arch == Architecture::llama, "GGUF export of '", ck.source,
                          "': a file without vocabulary needs llama.vocab_size (arch llama)");
    vocab->set(w);
  }
  const std::vector<std::string> names = gguf_tensor_order(c);
  const auto stored = [&](const std::string& name) {
    lowbit::detail::check(ck.contains(name), "GGUF export of '", ck.source, "': no tensor '", name, "'");
    return ck.get(name);
  };
  std::vector<std::uint32_t> types;
  for (const auto& name : names) {
    lowbit::detail::check(ck.contains(name), "GGUF export of '", ck.source, "': no tensor '", name, "'");
    const std::vector<std::int64_t> shape = ck.shape(name);
    types.push_back(codec.type(name, shape));
    std::vector<std::uint64_t> ne;
    for (auto d = shape.rbegin(); d != shape.rend(); ++d) ne.push_back(static_cast<std::uint64_t>(*d));
    w.add_tensor(*gguf_name_of(c.arch, name), ne, types.back());
  }
  const auto interleaved = [&](const Weight& wk) {
    return Weight{wk.shape, permute_rope_rows<float>(wk.values, wk.shape[0], wk.shape[1], c.head_dim(), RopeRows::to_interleaved)};
  };
  w.write(path, [&](std::size_t k, std::vector<std::uint8_t>& out) {
    const std::string& name = names[k];
    const bool qk = name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight");
    if (qk && c.arch == Architecture::llama && c.rope_style == autograd::RopeStyle::half)
      out = codec.encode(name, interleaved(stored(name)), types[k]);
    else
      out = codec.encode(name, stored(name), types[k]);
  });
}

/// The architecture of a GGUF file, which must be one lowbit reads.
inline const GgufArch& gguf_file_arch(const io::GgufFile& f, const std::filesystem::path& path) {
  const std::string& name = f.string("general.architecture");
  const GgufArch* arch = find_gguf_arch(name);
  lowbit::detail::check(arch != nullptr, "GGUF file '", path.string(), "': architecture '", name,
                        "' is not one lowbit reads (llama, gpt2)");
  return *arch;
}

/// Reads a GGUF of arch `llama` or `gpt2` into a Checkpoint (float weights, lowbit's
/// names and layout; a Llama is RopeStyle::interleaved). Every block type lowbit
/// decodes is accepted.
inline Checkpoint load_gguf(const std::filesystem::path& path) {
  const io::GgufFile f = io::GgufFile::open(path);
  const GgufArch* arch = &gguf_file_arch(f, path);
  const std::string a(arch->name);
  const auto get = [&](const char* key) { return static_cast<int>(f.integer(a + "." + key, 1, 1 << 24)); };
  const auto real = [&](const char* key, float fallback) {
    const io::GgufValue* v = f.find(a + "." + key);
    if (v == nullptr) return fallback;
    lowbit::detail::check(v->type == io::GgufType::f32, "GGUF file '", path.string(), "': metadata '", a, ".", key,
                          "' must be f32");
    return static_cast<float>(v->f);
  };
  Checkpoint ck;
  ck.source = path.string();
  TransformerConfig& c = ck.config;
  c.arch = arch->arch;
  c.dim = get("embedding_length");
  c.hidden = get("feed_forward_length");
  c.layers = get("block_count");
  c.heads = get("attention.head_count");
  c.kv_heads = f.find(a + ".attention.head_count_kv") ? get("attention.head_count_kv") : c.heads;
  c.context = get("context_length");
  if (c.arch == Architecture::gpt2) {
    lowbit::detail::check(c.kv_heads == c.heads, "GGUF file '", path.string(), "': gpt2.attention.head_count_kv ",
                          c.kv_heads, " differs from the head count ", c.heads, " (GPT-2 has no grouped-query attention)");
    c.norm_eps = real("attention.layer_norm_epsilon", 1e-5f);
  } else {
    c.norm_eps = real("attention.layer_norm_rms_epsilon", 1e-5f);
    c.rope_theta = real("rope.freq_base", 10000.0f);
    c.rope_style = autograd::RopeStyle::interleaved;
    if (f.find("llama.rope.dimension_count") != nullptr && c.heads > 0 && c.dim % c.heads == 0)
      lowbit::detail::check(get("rope.dimension_count") == c.dim / c.heads, "GGUF file '", path.string(),
                            "': llama.rope.dimension_count must equal the head size ", c.dim / c.heads,
                            " (partial RoPE is not supported)");
  }
  const io::GgufTensorInfo& embed = f.tensor("token_embd.weight");
  c.vocab = static_cast<int>(std::min<std::uint64_t>(embed.rows(), 1 << 24));
  c.tied_head = f.find_tensor("output.weight") == nullptr;
  c.validate(ck.source);
  for (const auto& t : f.tensors()) {
    const auto name = lowbit_name_of(c.arch, t.name);
    lowbit::detail::check(name.has_value(), "GGUF file '", path.string(), "': tensor '", t.name,
                          "' is not part of a ", a, " model lowbit knows");
    std::vector<std::int64_t> shape;
    for (auto d = t.ne.rbegin(); d != t.ne.rend(); ++d) shape.push_back(static_cast<std::int64_t>(*d));
    ck.weights.emplace(*name, Weight{shape, f.to_float(t.name)});
  }
  return ck;
}

/// Each tensor's ggml type in a GGUF file of arch `llama` or `gpt2`, by lowbit name (a
/// tied classifier is its embedding): what nn/llama_cpp_rounding.hpp needs to round
/// activations as llama.cpp does for this file.
inline std::map<std::string, std::uint32_t> gguf_weight_types(const std::filesystem::path& path) {
  const io::GgufFile f = io::GgufFile::open(path);
  const GgufArch* arch = &gguf_file_arch(f, path);
  std::map<std::string, std::uint32_t> types;
  for (const auto& t : f.tensors())
    if (const auto name = lowbit_name_of(arch->arch, t.name)) types.emplace(*name, t.ggml_type);
  return types;
}

}  // namespace lowbit::nn
