// Calibration over a whole model: the Hessians of every registered linear layer
// from calibration windows, and a driver that hands them to a layer solver (GPTQ,
// RTN, …) in GPTQ's "true sequential" order or all from one unmodified pass.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lowbit/autograd/tensor.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/gptq/hessian.hpp"
#include "lowbit/nn/linear_layer.hpp"
#include "lowbit/nn/transformer.hpp"

namespace lowbit::nn {

/// Where each layer's calibration inputs come from.
enum class CalibrationOrder {
  /// GPTQ's reference ("true sequential"): block by block, stage by stage, each
  /// layer's inputs computed with every earlier layer already quantized.
  sequential,
  /// Every Hessian from one pass of the unmodified model, then every solve.
  parallel,
};

struct CalibrationOptions {
  CalibrationOrder order = CalibrationOrder::sequential;
  Index batch = 8;  ///< windows per forward chunk (bounds activation memory)
  /// What n of H = (2/n)·ΣXᵀX counts; the reference gptq.py counts sequences.
  SampleCount count = SampleCount::sequences;
};

namespace detail {

/// Windows of one length processed together: indices into the caller's windows.
struct CalibrationChunk {
  std::vector<std::size_t> windows;
  Index seq = 0;
  [[nodiscard]] Index batch() const { return static_cast<Index>(windows.size()); }
};

/// Checks the windows against the model and groups equal lengths into chunks of at
/// most `batch` windows (lengths in order of first appearance, windows in order).
inline std::vector<CalibrationChunk> calibration_chunks(const Transformer& model,
                                                        const std::vector<std::span<const int>>& windows,
                                                        Index batch, const char* who) {
  lowbit::detail::check(!windows.empty(), who, ": no calibration windows");
  lowbit::detail::check(batch > 0, who, ": batch (windows per chunk) must be positive, got ", batch);
  const TransformerConfig& c = model.config();
  std::vector<Index> lengths;
  std::map<Index, std::vector<std::size_t>> by_length;
  for (std::size_t w = 0; w < windows.size(); ++w) {
    const Index len = static_cast<Index>(windows[w].size());
    lowbit::detail::check(len > 0, who, ": calibration window ", w, " is empty");
    lowbit::detail::check(len <= c.context, who, ": calibration window ", w, " has ", len,
                          " tokens, more than the model's context of ", c.context);
    for (std::size_t t = 0; t < windows[w].size(); ++t) {
      const int id = windows[w][t];
      lowbit::detail::check(id >= 0 && id < c.vocab, who, ": calibration window ", w, " has token id ", id,
                            " at position ", t, ", outside the vocabulary [0, ", c.vocab, ")");
    }
    auto& group = by_length[len];
    if (group.empty()) lengths.push_back(len);
    group.push_back(w);
  }
  std::vector<CalibrationChunk> chunks;
  for (const Index len : lengths) {
    const auto& group = by_length[len];
    for (std::size_t i = 0; i < group.size(); i += static_cast<std::size_t>(batch)) {
      CalibrationChunk ch;
      ch.seq = len;
      const std::size_t end = std::min(group.size(), i + static_cast<std::size_t>(batch));
      ch.windows.assign(group.begin() + static_cast<std::ptrdiff_t>(i), group.begin() + static_cast<std::ptrdiff_t>(end));
      chunks.push_back(std::move(ch));
    }
  }
  return chunks;
}

/// The ids of a chunk, row-major [batch, seq].
inline std::vector<std::int32_t> chunk_ids(const CalibrationChunk& ch, const std::vector<std::span<const int>>& windows) {
  std::vector<std::int32_t> ids;
  ids.reserve(static_cast<std::size_t>(ch.batch() * ch.seq));
  for (const std::size_t w : ch.windows) ids.insert(ids.end(), windows[w].begin(), windows[w].end());
  return ids;
}

/// Adds a layer input [batch, seq, in] (contiguous) to its accumulator; the
/// reference counts inp.shape[0] = batch sequences per call.
inline void accumulate(HessianAccumulator<float>& acc, const LinearLayer& layer, const autograd::Tensor& input,
                       Index sequences) {
  const Index in = layer.in_features();
  acc.add(ConstMatrixView{input.data(), input.numel() / in, in}, sequences, layer.name);
}

/// One forward pass of the model as it is over every chunk, accumulating the inputs
/// of every registered layer.
inline std::vector<Hessian> all_hessians(const Transformer& model, const std::vector<std::span<const int>>& windows,
                                         const std::vector<CalibrationChunk>& chunks, SampleCount count) {
  const auto& layers = model.linear_layers();
  std::vector<HessianAccumulator<float>> accs;
  accs.reserve(layers.size());
  for (const auto& l : layers) accs.emplace_back(l.in_features(), count);
  ForwardHooks hooks;
  Index sequences = 0;
  hooks.on_input = [&](const LinearLayer& l, autograd::Tensor x) {
    accumulate(accs[static_cast<std::size_t>(&l - layers.data())], l, x, sequences);
  };
  autograd::NoGradGuard no_grad;
  autograd::Graph g;
  for (const auto& ch : chunks) {
    g.clear();
    sequences = ch.batch();
    const auto ids = chunk_ids(ch, windows);
    (void)model.forward(ids, ch.batch(), ch.seq, hooks);
  }
  std::vector<Hessian> out;
  out.reserve(layers.size());
  for (const auto& a : accs) out.push_back(a.hessian());
  return out;
}

}  // namespace detail

/// Hessians H = (2/n)·ΣXᵀX of every registered layer's inputs over `windows`, from
/// one pass of the model as it is (registry order). Used by the study for per-layer
/// output MSE on test inputs.
inline std::vector<Hessian> layer_hessians(const Transformer& model, const std::vector<std::span<const int>>& windows,
                                           Index batch = 8, SampleCount count = SampleCount::sequences) {
  const auto chunks = detail::calibration_chunks(model, windows, batch, "layer_hessians");
  return detail::all_hessians(model, windows, chunks, count);
}

/// Calls solve(const LinearLayer&, const Hessian&) once per registered layer, in
/// registry order; solve must overwrite layer.weight's values with the quantized
/// weights (e.g. copy SolveResult::weights).
///
/// Sequential (GPTQ's reference, "true sequential"): block by block, stage by
/// stage, each stage's Hessians come from inputs computed with every earlier layer
/// already quantized. Each block's inputs are cached for all windows; only the
/// current block is re-run per stage, and after its last stage the cache is
/// propagated through the quantized block. Memory: one block input
/// (windows × tokens × dim floats) at a time.
/// Parallel: every Hessian from one pass of the unmodified model, then every solve.
/// progress(done_layers, total_layers) after each layer when given.
template <class Solve>
void quantize_with_calibration(Transformer& model, const std::vector<std::span<const int>>& windows, Solve&& solve,
                               const CalibrationOptions& options = {},
                               const std::function<void(std::size_t, std::size_t)>& progress = {}) {
  const auto chunks = detail::calibration_chunks(model, windows, options.batch, "quantize_with_calibration");
  const auto& layers = model.linear_layers();
  const std::size_t total = layers.size();
  std::size_t done = 0;
  const auto solved = [&](std::size_t i, const Hessian& h) {
    solve(layers[i], h);
    ++done;
    if (progress) progress(done, total);
  };

  if (options.order == CalibrationOrder::parallel) {
    const auto hs = detail::all_hessians(model, windows, chunks, options.count);
    for (std::size_t i = 0; i < total; ++i) solved(i, hs[i]);
    return;
  }

  autograd::NoGradGuard no_grad;
  autograd::Graph g;
  // Block inputs per chunk, [batch, seq, dim] row-major, starting from the embeddings.
  const Index dim = model.config().dim;
  std::vector<std::vector<float>> cache(chunks.size());
  for (std::size_t c = 0; c < chunks.size(); ++c) {
    g.clear();
    const auto ids = detail::chunk_ids(chunks[c], windows);
    const autograd::Tensor x = model.embed(ids, chunks[c].batch(), chunks[c].seq);
    cache[c].assign(x.values().begin(), x.values().end());
  }
  const auto cached = [&](std::size_t c) {
    return g.constant({chunks[c].batch(), chunks[c].seq, dim}, std::span<const float>(cache[c]));
  };

  std::size_t i = 0;
  for (int b = 0; b < model.config().layers; ++b) {
    while (i < total && layers[i].block == b) {
      // The layers of this stage read one input; all earlier layers are quantized.
      std::size_t end = i;
      while (end < total && layers[end].block == b && layers[end].stage == layers[i].stage) ++end;
      std::vector<std::optional<HessianAccumulator<float>>> accs(total);
      for (std::size_t j = i; j < end; ++j) accs[j].emplace(layers[j].in_features(), options.count);
      ForwardHooks hooks;
      Index sequences = 0;
      hooks.on_input = [&](const LinearLayer& l, autograd::Tensor x) {
        const auto j = static_cast<std::size_t>(&l - layers.data());
        if (accs[j]) detail::accumulate(*accs[j], l, x, sequences);
      };
      for (std::size_t c = 0; c < chunks.size(); ++c) {
        g.clear();
        sequences = chunks[c].batch();
        (void)model.block(b, cached(c), hooks);
      }
      for (std::size_t j = i; j < end; ++j) solved(j, accs[j]->hessian());
      i = end;
    }
    // Inputs of the next block: this block's outputs with its quantized weights.
    if (b + 1 < model.config().layers)
      for (std::size_t c = 0; c < chunks.size(); ++c) {
        g.clear();
        const autograd::Tensor y = model.block(b, cached(c));
        std::copy(y.values().begin(), y.values().end(), cache[c].begin());
      }
  }
  lowbit::detail::check(done == total, "quantize_with_calibration: solved ", done, " of ", total,
                        " layers (registry not in block order)");
}

}  // namespace lowbit::nn
