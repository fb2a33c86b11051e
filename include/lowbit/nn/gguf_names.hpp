// lowbit's tensor names and llama.cpp's, for the two architectures lowbit reads
// and writes as GGUF (`llama`, `gpt2`): the one table both directions use
// (nn/gguf_model.hpp writes, nn/checkpoint.hpp's open_gguf reads).
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "lowbit/core/error.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/nn/config.hpp"

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

/// The architecture of a GGUF file, which must be one lowbit reads.
inline const GgufArch& gguf_file_arch(const io::GgufFile& f, const std::filesystem::path& path) {
  const std::string& name = f.string("general.architecture");
  const GgufArch* arch = find_gguf_arch(name);
  lowbit::detail::check(arch != nullptr, "GGUF file '", path.string(), "': architecture '", name,
                        "' is not one lowbit reads (llama, gpt2)");
  return *arch;
}

}  // namespace lowbit::nn
