// QAFT into llama.cpp's block types: the study's quantization-aware fine-tuning, with
// each layer fake-quantized by llama.cpp's round-to-nearest of the type a BlockPlan
// gives it, so that the weights it ends with are encoded by that same quantizer
// (quantize_to_blocks with BlockMethod::qaft) into exactly the codes training saw.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "lowbit/nn/block_quantize.hpp"
#include "lowbit/study/qaft.hpp"

namespace lowbit::study {

/// Trains `model`'s layers through `plan`'s types on the calibration sequences.
/// First the tensors write_gguf rounds by itself (the embedding, an untied
/// classifier) take the values the file will hold, so the forward pass the
/// training sees is the one llama.cpp runs; layers stored as F16 stay frozen.
/// Afterwards encode with quantize_to_blocks(model, plan, BlockMethod::qaft).
inline void qaft_to_blocks(nn::Transformer& model, const nn::BlockPlan& plan,
                           const std::vector<std::span<const int>>& calibration, const QaftOptions& opt,
                           const std::function<void(long, double)>& on_epoch = {},
                           const std::function<void(Index, Index)>& on_step = {}) {
  nn::round_other_tensors(model, plan);
  const LayerQuantizers quantizers = nn::block_quantizers(model, plan);
  qaft_train(model, calibration, quantizers, opt, on_epoch, on_step);
}

}  // namespace lowbit::study
