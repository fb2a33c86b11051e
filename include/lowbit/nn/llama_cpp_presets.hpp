// llama-quantize's named mixtures (Q4_K_M, Q3_K_L, ...) as BlockPlans: the type
// llama.cpp gives each tensor of a Llama-family or GPT-2 model for a preset, so that
// a lowbit file (RTN, imatrix or GPTQ codes) has exactly the tensor types — and the
// size — of the file llama.cpp's own quantizer writes for that preset.
//
// The rules are those of llama.cpp's llama_tensor_get_type (src/llama-quant.cpp of
// node-llama-cpp@3.21.1) for models without experts and not Falcon or 70B-sized:
// the classifier (or a tied embedding) takes Q6_K, or Q8_0 when its rows are not
// whole blocks of the preset's type; attn_v (GPT-2: the fused attn_qkv, which llama.cpp
// counts as attn_v) and ffn_down take more bits in some layers (use_more_bits: the
// first and last eighth and every third layer between); a few presets bump
// attn_output. Shapes that do not fit a type then take llama-quantize's fallback
// (gguf_type_for). The judge (tests/llama_cpp/judge.cpp) checks every preset here
// against llama_model_quantize, tensor for tensor.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "lowbit/core/error.hpp"
#include "lowbit/nn/block_quantize.hpp"
#include "lowbit/nn/config.hpp"
#include "lowbit/quant/spec.hpp"

namespace lowbit::nn {

/// A preset's name (as llama-quantize spells it) and its default type.
struct LlamaCppPreset {
  std::string_view name;
  std::string_view base;
};

inline constexpr std::array<LlamaCppPreset, 14> llama_cpp_presets{{
    {"Q8_0", "q8_0"},     {"Q6_K", "q6_k"},     {"Q5_K_M", "q5_k"},   {"Q5_K_S", "q5_k"},   {"Q5_1", "q5_1"},
    {"Q5_0", "q5_0"},     {"Q4_K_M", "q4_k"},   {"Q4_K_S", "q4_k"},   {"Q4_1", "q4_1"},     {"Q4_0", "q4_0"},
    {"Q3_K_L", "q3_k"},   {"Q3_K_M", "q3_k"},   {"Q2_K", "q2_k"},     {"IQ4_NL", "iq4_nl"},
}};

/// The preset called `name` (case-insensitive), or nullptr.
inline const LlamaCppPreset* find_llama_cpp_preset(std::string_view name) {
  for (const auto& p : llama_cpp_presets) {
    bool same = p.name.size() == name.size();
    for (std::size_t i = 0; same && i < name.size(); ++i)
      same = (name[i] >= 'a' && name[i] <= 'z' ? static_cast<char>(name[i] - 'a' + 'A') : name[i]) == p.name[i];
    if (same) return &p;
  }
  return nullptr;
}

namespace preset_detail {

/// llama.cpp's use_more_bits: the first and last eighth of the layers, and every
/// third layer between.
inline bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/// attn_v's (GPT-2: attn_qkv's) type in layer i of n, or "" for the preset's own.
inline std::string_view attn_v(std::string_view p, int i, int n, int gqa) {
  if (p == "Q2_K") return gqa >= 4 ? "q4_k" : "q3_k";
  if (p == "Q3_K_M") return i < 2 ? "q5_k" : "q4_k";
  if (p == "Q3_K_L") return "q5_k";
  if (p == "IQ4_NL" && gqa >= 4) return "q5_k";
  if ((p == "Q4_K_M" || p == "Q5_K_M") && use_more_bits(i, n)) return "q6_k";
  if (p == "Q4_K_S" && i < 4) return "q5_k";
  return "";
}

/// ffn_down's type in layer i of n.
inline std::string_view ffn_down(std::string_view p, int i, int n, bool imatrix) {
  if (p == "Q2_K") return "q3_k";
  if (p == "Q3_K_M") return i < n / 16 ? "q5_k" : "q4_k";
  if (p == "Q3_K_L") return "q5_k";
  if ((p == "Q4_K_M" || p == "Q5_K_M") && use_more_bits(i, n)) return "q6_k";
  if (p == "IQ4_NL" && !imatrix && i < n / 8) return "q5_k";
  if (p == "Q4_K_S" && i < n / 8) return "q5_k";
  if ((p == "Q4_0" || p == "Q5_0") && imatrix && i < n / 8) return p == "Q4_0" ? "q4_1" : "q5_1";
  return "";
}

inline std::string_view attn_output(std::string_view p) {
  if (p == "Q2_K") return "q3_k";
  if (p == "Q3_K_M") return "q4_k";
  if (p == "Q3_K_L") return "q5_k";
  return "";
}

}  // namespace preset_detail

/// The BlockPlan of preset `name` for a model with config `c`; `imatrix`: whether the
/// codes will be chosen with an importance matrix (Q4_0 and Q5_0 then protect the
/// first eighth of ffn_down, as llama.cpp does).
inline BlockPlan llama_cpp_preset(std::string_view name, const TransformerConfig& c, bool imatrix = false) {
  const LlamaCppPreset* p = find_llama_cpp_preset(name);
  std::string names;
  for (const auto& q : llama_cpp_presets) names.append(names.empty() ? "" : ", ").append(q.name);
  lowbit::detail::check(p != nullptr, "llama.cpp preset '", name, "' is not one lowbit knows (", names, ")");
  BlockPlan plan(QuantSpec::parse(p->base, "llama.cpp preset"));
  const auto exact = [](const std::string& tensor, std::string_view type) {
    std::string pattern = "^";
    for (const char ch : tensor) pattern.append(ch == '.' ? "\\." : std::string(1, ch));
    return pattern.append("$=").append(type);
  };
  // The classifier, or the embedding it shares: Q6_K unless its rows do not fit the
  // preset's own blocks (then Q8_0), and Q8_0 stays Q8_0.
  const Index block = blocks::info(plan.base().block).block_elems;
  const std::string_view head = c.dim % block != 0 ? "q8_0" : plan.base().block == blocks::BlockType::q8_0 ? "q8_0" : "q6_k";
  plan.add(exact(c.tied_head ? "token_embd.weight" : "output.weight", head), "llama.cpp preset");
  const int gqa = c.heads / c.kv_heads;
  const std::string v = c.arch == Architecture::gpt2 ? ".attn_qkv.weight" : ".attn_v.weight";
  for (int i = 0; i < c.layers; ++i) {
    const std::string blk = "blk." + std::to_string(i);
    if (const auto t = preset_detail::attn_v(p->name, i, c.layers, gqa); !t.empty()) plan.add(exact(blk + v, t));
    if (const auto t = preset_detail::ffn_down(p->name, i, c.layers, imatrix); !t.empty())
      plan.add(exact(blk + ".ffn_down.weight", t));
    if (const auto t = preset_detail::attn_output(p->name); !t.empty()) plan.add(exact(blk + ".attn_output.weight", t));
  }
  return plan;
}

}  // namespace lowbit::nn
