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
/// stage, each stage's Hessian comes from inputs computed with every earlier layer
/// already quantized. The residual stream and the next stage's input are kept for
/// all windows between stages, so each quantized block runs once. Memory: windows ×
/// tokens × (dim + the widest stage input) floats.
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
  // Per chunk, between stages: the residual stream and the next stage's input,
  // row-major, starting from the embeddings. Every layer of a stage reads that
  // input, so its Hessian comes straight from it; the stage then runs once, with
  // its layers quantized, to give the next stage's input — one forward pass of
  // each quantized block in all (GPTQ's reference re-runs the block per stage).
  struct Saved {
    std::vector<float> x, input;
    std::vector<Index> input_shape;
  };
  std::vector<Saved> saved(chunks.size());
  const Index dim = model.config().dim;
  const auto keep = [&](std::size_t c, const Transformer::BlockState& st) {
    saved[c].x.assign(st.x.values().begin(), st.x.values().end());
    if (!st.input.defined()) return saved[c].input.clear();
    saved[c].input.assign(st.input.values().begin(), st.input.values().end());
    saved[c].input_shape.assign({st.input.dim(0), st.input.dim(1), st.input.dim(2)});
  };
  const auto restored = [&](std::size_t c, int next) {
    const Saved& s = saved[c];
    Transformer::BlockState st;
    st.x = g.constant({chunks[c].batch(), chunks[c].seq, dim}, std::span<const float>(s.x));
    const auto& sh = s.input_shape;
    st.input = g.constant({sh[0], sh[1], sh[2]}, std::span<const float>(s.input));
    st.next = next;
    return st;
  };
  for (std::size_t c = 0; c < chunks.size(); ++c) {
    g.clear();
    const auto ids = detail::chunk_ids(chunks[c], windows);
    const autograd::Tensor x = model.embed(ids, chunks[c].batch(), chunks[c].seq);
    saved[c].x.assign(x.values().begin(), x.values().end());
  }

  std::size_t i = 0;
  for (int b = 0; b < model.config().layers; ++b) {
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      g.clear();
      keep(c, model.begin_block(b, g.constant({chunks[c].batch(), chunks[c].seq, dim},
                                              std::span<const float>(saved[c].x))));
    }
    for (int stage = 0; stage < Transformer::block_stages; ++stage) {
      // This stage's layers, all reading the saved input; every earlier layer is quantized.
      std::size_t end = i;
      while (end < total && layers[end].block == b && layers[end].stage == stage) ++end;
      if (end > i) {  // one Hessian serves them all (same input, same width)
        HessianAccumulator<float> acc(layers[i].in_features(), options.count);
        for (std::size_t c = 0; c < chunks.size(); ++c) {
          g.clear();
          detail::accumulate(acc, layers[i], restored(c, stage).input, chunks[c].batch());
        }
        const Hessian h = acc.hessian();
        for (std::size_t j = i; j < end; ++j) solved(j, h);
        i = end;
      }
      // The next stage's input (the last stage: the next block's input), through the quantized layers.
      const bool last_block = b + 1 == model.config().layers;
      if (last_block && stage + 1 == Transformer::block_stages) break;
      for (std::size_t c = 0; c < chunks.size(); ++c) {
        g.clear();
        Transformer::BlockState st = restored(c, stage);
        model.run_stage(b, st);
        keep(c, st);
      }
    }
  }
  lowbit::detail::check(done == total, "quantize_with_calibration: solved ", done, " of ", total,
                        " layers (registry not in block order)");
}

}  // namespace lowbit::nn
