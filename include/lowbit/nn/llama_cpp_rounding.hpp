// Activations rounded the way llama.cpp's CPU kernels round them, so that lowbit's
// evaluator computes what llama.cpp computes for a GGUF file, not only the same
// decoded weights.
//
// Why. ggml multiplies a quantized (or F16) weight by activations converted to the
// weight type's "vec_dot_type" first: F16 weights by F16 activations; q4_0, q5_0,
// q8_0, iq4_nl and mxfp4 by q8_0 blocks (32 values, one F16 scale); q4_1 and q5_1 by
// q8_1 (q8_0's codes plus a block sum); the k-quants and tq2_0 by q8_K blocks (256
// values, one float scale). The integer dot product then equals decoded weight ·
// decoded activation up to summation order. GPT-2's GELU is looked up in a float16
// table. Without these, lowbit's hidden states drift from llama.cpp's by ~1e-2 per
// block on a quantized file; with them they agree to ~1e-6 until a float difference
// of an ulp (lowbit and ggml sum in different orders) moves one activation to the
// next 8-bit code, which the following layers amplify: the NLLs then agree to ~1e-4,
// the floor for any emulation that is not bit-exact (docs/results/llama.cpp.md).
//
// Conversions, as ggml-cpu's x86 build does them (the prebuilt libllama of
// node-llama-cpp@3.21.1): q8_0 (AVX quantize_row_q8_0): amax of the block, d = amax/127
// stored as F16, codes round-half-even(x · 127/amax). q8_K (quantize_row_q8_K_ref):
// the value of largest magnitude m (the first one), iscale = -127/m, codes
// min(127, round-half-even(iscale · x)), d = 1/iscale in float. q8_1 is taken as
// q8_0: the only difference, ggml's block sum rounded to F16 in q4_1's and q5_1's
// minimum term, cannot be expressed as a rounding of the activations, so those two
// types keep a small gap. F32 weights (and the F32 key/value cache the judge uses)
// see float32 activations. GPT-2's GELU is ggml's float16 table (ggml_gelu).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "lowbit/autograd/tensor.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/nn/linear_layer.hpp"
#include "lowbit/quant/blocks/block_type.hpp"

namespace lowbit::nn {

/// What llama.cpp turns a weight's input into before the dot product.
enum class ActivationRounding : std::uint8_t { none, f16, bf16, q8_0, q8_k };

/// The rounding ggml's CPU backend applies to the input of a weight of `ggml_type`.
inline ActivationRounding llama_cpp_activation_rounding(std::uint32_t ggml_type) {
  const auto info = io::ggml_type_info(ggml_type);
  lowbit::detail::check(info.has_value(), "llama.cpp rounding: ggml type ", ggml_type, " is not one lowbit knows");
  if (!info->block) return ggml_type == 0 ? ActivationRounding::none
                           : ggml_type == 1 ? ActivationRounding::f16
                                            : ActivationRounding::bf16;
  switch (*info->block) {
    case blocks::BlockType::q4_0:
    case blocks::BlockType::q4_1:
    case blocks::BlockType::q5_0:
    case blocks::BlockType::q5_1:
    case blocks::BlockType::q8_0:
    case blocks::BlockType::iq4_nl:
    case blocks::BlockType::mxfp4: return ActivationRounding::q8_0;
    case blocks::BlockType::q2_k:
    case blocks::BlockType::q3_k:
    case blocks::BlockType::q4_k:
    case blocks::BlockType::q5_k:
    case blocks::BlockType::q6_k:
    case blocks::BlockType::tq2_0: return ActivationRounding::q8_k;
  }
  return ActivationRounding::none;
}

namespace rounding_detail {

/// One q8_0 block in place (see the header).
inline void q8_0_block(std::span<float> x) {
  float amax = 0.0f;
  for (const float v : x) amax = std::max(amax, std::fabs(v));
  const float d = io::f16_to_f32(io::f32_to_f16(amax / 127.0f));
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  for (float& v : x) v = std::nearbyint(v * id) * d;
}

/// One q8_K block in place (see the header).
inline void q8_k_block(std::span<float> x) {
  float amax = 0.0f, max = 0.0f;
  for (const float v : x)
    if (std::fabs(v) > amax) {
      amax = std::fabs(v);
      max = v;
    }
  if (amax == 0.0f) {
    std::fill(x.begin(), x.end(), 0.0f);
    return;
  }
  const float iscale = -127.0f / max, d = 1.0f / iscale;
  for (float& v : x) v = std::min(127.0f, std::nearbyint(iscale * v)) * d;
}

}  // namespace rounding_detail

/// Rounds `x` (rows of `row` values, each a dot product's input) in place.
inline void round_activations(ActivationRounding r, std::span<float> x, Index row, const std::string& weight) {
  const Index block = r == ActivationRounding::q8_0 ? 32 : r == ActivationRounding::q8_k ? 256 : 1;
  lowbit::detail::check(row > 0 && row % block == 0 && static_cast<Index>(x.size()) % row == 0,
                        "llama.cpp rounding: the input of '", weight, "' has rows of ", row,
                        " values, not whole blocks of ", block);
  switch (r) {
    case ActivationRounding::none: return;
    case ActivationRounding::f16:
      for (float& v : x) v = io::f16_to_f32(io::f32_to_f16(v));
      return;
    case ActivationRounding::bf16:
      for (float& v : x) v = io::bf16_to_f32(io::f32_to_bf16(v));
      return;
    case ActivationRounding::q8_0:
    case ActivationRounding::q8_k:
      for (std::size_t b = 0; b < x.size(); b += static_cast<std::size_t>(block)) {
        const auto s = x.subspan(b, static_cast<std::size_t>(block));
        if (r == ActivationRounding::q8_0) rounding_detail::q8_0_block(s);
        else rounding_detail::q8_k_block(s);
      }
      return;
  }
}

/// GELU (tanh form) as ggml's CPU backend computes it for float32: for |x| < 10 the
/// input is rounded to F16 and looked up in a table of F16 results
/// (GGML_GELU_FP16), x <= -10 gives 0 and x >= 10 gives x.
inline float ggml_gelu(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  const float h = io::f16_to_f32(io::f32_to_f16(x));
  const float y = 0.5f * h * (1.0f + std::tanh(0.79788456080286535587989211986876f * h * (1.0f + 0.044715f * h * h)));
  return io::f16_to_f32(io::f32_to_f16(y));
}

/// Forward hooks that round each weight's input as llama.cpp does for the ggml type
/// the weight has in a GGUF file (`types`: lowbit weight name → ggml type, e.g.
/// gguf_weight_types(file)). Weights absent from `types` see float32 inputs.
inline ForwardHooks llama_cpp_rounding_hooks(std::map<std::string, std::uint32_t> types) {
  ForwardHooks hooks;
  hooks.input = [types = std::move(types)](const std::string& weight, autograd::Tensor x) {
    const auto it = types.find(weight);
    const ActivationRounding r = it == types.end() ? ActivationRounding::none
                                                   : llama_cpp_activation_rounding(it->second);
    if (r == ActivationRounding::none) return x;
    autograd::Tensor y = autograd::Graph::current("llama.cpp rounding").constant(x.shape(), x.values());
    round_activations(r, y.values(), x.dim(x.shape().ndim - 1), weight);
    return y;
  };
  hooks.gelu = [](autograd::Tensor x) {
    autograd::Tensor y = autograd::Graph::current("llama.cpp GELU").constant(x.shape(), x.values());
    for (float& v : y.values()) v = ggml_gelu(v);
    return y;
  };
  return hooks;
}

}  // namespace lowbit::nn
