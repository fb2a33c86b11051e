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
#include "lowbit/nn/gguf_names.hpp"
#include "lowbit/nn/gguf_vocab.hpp"
#include "lowbit/nn/rope_rows.hpp"
#include "lowbit/quant/spec.hpp"

namespace lowbit::nn {

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

/// F32, F16 and BF16 tensor bytes (little-endian), the float types the exporters write.
inline std::vector<std::uint8_t> gguf_f32_bytes(std::span<const float> v) {
  std::vector<std::uint8_t> b(v.size() * sizeof(float));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}
/// Two bytes per value, little-endian, each from `to16` (float16 or bfloat16 rounding).
inline std::vector<std::uint8_t> gguf_u16_bytes(std::span<const float> v, std::uint16_t (*to16)(float)) {
  std::vector<std::uint8_t> b(v.size() * 2);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::uint16_t h = to16(v[i]);
    b[2 * i] = static_cast<std::uint8_t>(h & 0xFF);
    b[2 * i + 1] = static_cast<std::uint8_t>(h >> 8);
  }
  return b;
}
inline std::vector<std::uint8_t> gguf_f16_bytes(std::span<const float> v) { return gguf_u16_bytes(v, io::f32_to_f16); }
inline std::vector<std::uint8_t> gguf_bf16_bytes(std::span<const float> v) { return gguf_u16_bytes(v, io::f32_to_bf16); }

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

/// The ggml types a float model is written in, by the name lowbit-quantize's --scheme
/// takes: F32, F16, BF16.
inline constexpr std::array<std::pair<std::string_view, std::uint32_t>, 3> gguf_float_types{{
    {"f32", 0}, {"f16", 1}, {"bf16", 30}}};

/// The ggml type of the float type `name`, or nullopt if `name` is none of them.
inline std::optional<std::uint32_t> gguf_float_type(std::string_view name) {
  for (const auto& [n, t] : gguf_float_types)
    if (n == name) return t;
  return std::nullopt;
}

/// An unquantized model in ggml type `type` (F32, F16 or BF16): the matrices in that
/// type, norms, biases and GPT-2's position embedding in F32 (as llama.cpp's
/// converter writes them).
inline GgufCodec gguf_float_codec(std::uint32_t type) {
  lowbit::detail::check(type == 0 || type == 1 || type == 30, "GGUF export: ggml type ", type,
                        " is not F32, F16 or BF16");
  GgufCodec codec;
  codec.type = [type](const std::string& name, const std::vector<std::int64_t>& shape) {
    return shape.size() < 2 || name == "transformer.wpe.weight" ? std::uint32_t{0} : type;
  };
  codec.encode = [](const std::string&, const Weight& w, std::uint32_t t) {
    return t == 0 ? gguf_f32_bytes(w.values) : t == 1 ? gguf_f16_bytes(w.values) : gguf_bf16_bytes(w.values);
  };
  return codec;
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

/// Reads a GGUF of arch `llama` or `gpt2` into a Checkpoint that holds every tensor in
/// fp32 (lowbit's names and layout; a Llama is RopeStyle::interleaved). Every block
/// type lowbit decodes is accepted. open_gguf (nn/checkpoint.hpp) leaves them in the file.
inline Checkpoint load_gguf(const std::filesystem::path& path) {
  return held_in_memory(open_gguf(path));
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
