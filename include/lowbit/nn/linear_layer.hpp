// The registry entry of one quantizable linear layer of a transformer, and the
// hooks a forward pass offers on every such layer.
#pragma once

#include <functional>
#include <string>

#include "lowbit/autograd/tensor.hpp"

namespace lowbit::nn {

/// What a linear layer computes inside its block (names follow the two families).
enum class LinearRole {
  qkv,       ///< GPT-2 c_attn: fused query/key/value projection
  q, k, v,   ///< Llama q_proj, k_proj, v_proj
  attn_out,  ///< GPT-2 attn.c_proj, Llama o_proj
  mlp_in,    ///< GPT-2 mlp.c_fc
  gate, up,  ///< Llama gate_proj, up_proj
  mlp_out,   ///< GPT-2 mlp.c_proj, Llama down_proj
};

/// One of the transformer stack's linear layers: what the study quantizes (not the
/// embeddings, not the classifier, as in the study and in GPTQ's reference).
struct LinearLayer {
  std::string name;  ///< the weight's Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight"
  int block = 0;     ///< transformer block index
  LinearRole role = LinearRole::q;
  /// Layers of one stage read the same input inside their block: 0 attention
  /// inputs, 1 attention output, 2 MLP inputs, 3 MLP output. GPTQ's "true
  /// sequential" order quantizes a block stage by stage.
  int stage = 0;
  autograd::Parameter* weight = nullptr;  ///< [out_features, in_features]
  autograd::Parameter* bias = nullptr;    ///< [out_features] or null

  [[nodiscard]] Index out_features() const { return weight->dim(0); }
  [[nodiscard]] Index in_features() const { return weight->dim(1); }
};

/// Optional callbacks of a forward pass, called at every registered linear layer.
struct ForwardHooks {
  /// Sees the layer's input (rows × in_features, e.g. [B, T, in]) before the layer
  /// runs: GPTQ accumulates its Hessian from it.
  std::function<void(const LinearLayer&, autograd::Tensor input)> on_input;
  /// Supplies the weight the layer uses in this pass instead of its parameter (e.g.
  /// fake_quant_ste(parameter) for quantization-aware fine-tuning). An undefined
  /// tensor means "use the parameter".
  std::function<autograd::Tensor(const LinearLayer&)> weight;
  /// Replaces what a weight multiplies in this pass: called with the weight's name (a
  /// registered layer's, or the classifier's — lm_head.weight, or the tied embedding)
  /// and its input, after on_input; returns the input to use. An inference engine's
  /// kernels that round activations before the dot product are emulated this way
  /// (nn/llama_cpp_rounding.hpp).
  std::function<autograd::Tensor(const std::string& weight_name, autograd::Tensor input)> input;
  /// Replaces GPT-2's MLP activation (GELU, tanh form) in this pass, e.g. by the
  /// float16 table llama.cpp's CPU backend looks it up in.
  std::function<autograd::Tensor(autograd::Tensor pre_activation)> gelu;
};

}  // namespace lowbit::nn
