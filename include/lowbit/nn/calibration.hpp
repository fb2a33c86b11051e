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

/// Calibration one block at a time, in GPTQ's "true sequential" order or from the
/// unmodified model: what quantize_with_calibration runs over every block, and what a
/// streaming quantizer runs on the one block it has loaded (nn/blockwise.hpp).
///
/// Between stages it keeps, for every window, the residual stream and the next
/// stage's input. Every layer of a stage reads that input, so the stage's Hessian
/// comes straight from it (one accumulator for q/k/v, one for gate/up); the stage
/// then runs once. Sequential: the stage runs after its layers are solved, so each
/// later stage sees them quantized and each quantized block runs once (GPTQ's
/// reference re-runs the block for every stage). Parallel: the block runs with the
/// weights as they are and every solve follows — the Hessians of one pass of the
/// unmodified model. Memory: windows × tokens × (dim + the widest stage input) floats.
class BlockCalibration {
 public:
  /// Checks the windows and embeds them (the model's embeddings must be loaded).
  BlockCalibration(const Transformer& model, const std::vector<std::span<const int>>& windows,
                   const CalibrationOptions& options = {})
      : model_(model),
        chunks_(detail::calibration_chunks(model, windows, options.batch, "calibration")),
        options_(options),
        saved_(chunks_.size()) {
    autograd::NoGradGuard no_grad;
    autograd::Graph g;
    for (std::size_t c = 0; c < chunks_.size(); ++c) {
      g.clear();
      const auto ids = detail::chunk_ids(chunks_[c], windows);
      const autograd::Tensor x = model.embed(ids, chunks_[c].batch(), chunks_[c].seq);
      saved_[c].x.assign(x.values().begin(), x.values().end());
    }
  }

  /// Block b: solve(layer, H) for each of its layers in registry order, with the
  /// Hessian the order gives; afterwards the saved state is block b's output — or,
  /// with `output = false` (the last block, when nothing reads its output), the
  /// block's last stage is not run at all: for a Llama block that is the MLP's
  /// down-projection GEMM over every calibration token.
  template <class Solve>
  void quantize_block(int b, Solve&& solve, bool output = true) {
    run_block(b, [&](std::size_t first, std::size_t end, const Hessian& h) {
      for (std::size_t j = first; j < end; ++j) solve(model_.linear_layers()[j], h);
    }, output);
  }

  /// Block b with its weights as they are (a block finished before): the saved state
  /// becomes its output.
  void pass_block(int b) {
    autograd::NoGradGuard no_grad;
    autograd::Graph g;
    for (std::size_t c = 0; c < chunks_.size(); ++c) {
      g.clear();
      keep(c, model_.begin_block(b, x_of(g, c)));
      for (int stage = 0; stage < Transformer::block_stages; ++stage) step(g, b, c, stage);
    }
  }

  /// The chunks the windows were grouped into (equal lengths, at most `batch` each):
  /// chunk c's windows as indices into the caller's windows, their length, and their
  /// saved residual stream [batch, seq, dim] row-major — after the last block, the
  /// model's output before its final norm (what an evaluator passes to Transformer::head).
  [[nodiscard]] std::size_t chunk_count() const { return chunks_.size(); }
  [[nodiscard]] const std::vector<std::size_t>& chunk_windows(std::size_t c) const { return chunks_.at(c).windows; }
  [[nodiscard]] Index chunk_seq(std::size_t c) const { return chunks_.at(c).seq; }
  [[nodiscard]] std::span<const float> residual(std::size_t c) const { return saved_.at(c).x; }

  /// The number of windows' tokens the state holds (for progress and memory notes).
  [[nodiscard]] Index tokens() const {
    Index n = 0;
    for (const auto& ch : chunks_) n += ch.batch() * ch.seq;
    return n;
  }

 private:
  struct Saved {
    std::vector<float> x, input;
    Index input_width = 0;
  };

  // The saved state goes into a step as views (no copy: it is up to 90 MB a chunk);
  // keep() copies back only what the step made anew (a stage that passes x through
  // returns the view itself, and assigning a vector from itself is undefined).
  autograd::Tensor x_of(autograd::Graph& g, std::size_t c) const {
    return g.view({chunks_[c].batch(), chunks_[c].seq, model_.config().dim}, std::span<const float>(saved_[c].x));
  }
  autograd::Tensor input_of(autograd::Graph& g, std::size_t c) const {
    return g.view({chunks_[c].batch(), chunks_[c].seq, saved_[c].input_width}, std::span<const float>(saved_[c].input));
  }
  void keep(std::size_t c, const Transformer::BlockState& st) {
    Saved& s = saved_[c];
    if (st.x.data() != s.x.data()) s.x.assign(st.x.values().begin(), st.x.values().end());
    if (!st.input.defined()) {
      s.input.clear();  // capacity kept: the next block refills it
      return;
    }
    if (st.input.data() != s.input.data()) s.input.assign(st.input.values().begin(), st.input.values().end());
    s.input_width = st.input.dim(2);
  }
  /// Runs stage `stage` of block b on chunk c's saved state.
  void step(autograd::Graph& g, int b, std::size_t c, int stage) {
    g.clear();
    Transformer::BlockState st{x_of(g, c), input_of(g, c), stage};
    model_.run_stage(b, st);
    keep(c, st);
  }

  /// `solved(first, end, H)` for each stage's layers [first, end) of block b.
  template <class Solved>
  void run_block(int b, Solved&& solved, bool output) {
    const auto& layers = model_.linear_layers();
    std::size_t i = 0;
    while (i < layers.size() && layers[i].block != b) ++i;
    lowbit::detail::check(i < layers.size(), "calibration: block ", b, " has no registered layers");
    autograd::NoGradGuard no_grad;
    autograd::Graph g;
    for (std::size_t c = 0; c < chunks_.size(); ++c) {
      g.clear();
      keep(c, model_.begin_block(b, x_of(g, c)));
    }
    const bool sequential = options_.order == CalibrationOrder::sequential;
    struct Pending {
      std::size_t first, end;
      Hessian h;
    };
    std::vector<Pending> pending;  // parallel: the solves wait for the whole block
    for (int stage = 0; stage < Transformer::block_stages; ++stage) {
      std::size_t end = i;
      while (end < layers.size() && layers[end].block == b && layers[end].stage == stage) ++end;
      if (end > i) {
        HessianAccumulator<float> acc(layers[i].in_features(), options_.count);
        for (std::size_t c = 0; c < chunks_.size(); ++c) {
          g.clear();
          detail::accumulate(acc, layers[i], input_of(g, c), chunks_[c].batch());
        }
        if (sequential) {
          solved(i, end, acc.hessian());
        } else {
          pending.push_back({i, end, acc.hessian()});
        }
        i = end;
      }
      if (!output && stage + 1 == Transformer::block_stages) break;  // nothing reads this stage's result
      for (std::size_t c = 0; c < chunks_.size(); ++c) step(g, b, c, stage);
    }
    for (const Pending& p : pending) solved(p.first, p.end, p.h);
  }

  const Transformer& model_;
  std::vector<detail::CalibrationChunk> chunks_;
  CalibrationOptions options_;
  std::vector<Saved> saved_;
};

/// Calls solve(const LinearLayer&, const Hessian&) once per registered layer, in
/// registry order; solve must overwrite layer.weight's values with the quantized
/// weights (e.g. copy SolveResult::weights). The Hessians follow options.order
/// (BlockCalibration): sequential is GPTQ's reference ("true sequential"), each
/// layer's inputs computed with every earlier layer already quantized; parallel
/// takes every Hessian from the unmodified model.
/// progress(done_layers, total_layers) after each layer when given.
template <class Solve>
void quantize_with_calibration(Transformer& model, const std::vector<std::span<const int>>& windows, Solve&& solve,
                               const CalibrationOptions& options = {},
                               const std::function<void(std::size_t, std::size_t)>& progress = {}) {
  const auto& layers = model.linear_layers();
  const std::size_t total = layers.size();
  std::size_t done = 0;
  BlockCalibration cal(model, windows, options);
  for (int b = 0; b < model.config().layers; ++b)
    cal.quantize_block(b, [&](const LinearLayer& l, const Hessian& h) {
      solve(l, h);
      ++done;
      if (progress) progress(done, total);
    });
  lowbit::detail::check(done == total, "quantize_with_calibration: solved ", done, " of ", total,
                        " layers (registry not in block order)");
}

}  // namespace lowbit::nn
