// Evaluation one block at a time: the token NLL of a model that does not fit in
// memory in fp32 — a streaming Transformer over a Hugging Face folder (BF16 shards)
// or over a GGUF file whose quantized tensors are decoded a block at a time
// (nn/checkpoint.hpp's open_gguf).
//
// The windows go through in groups whose saved activations fit a budget: a group is
// embedded, passed through block 0, 1, … (each block widened from its file, run on
// every window of the group, freed — BlockCalibration::pass_block, the pass the
// block-by-block quantizer makes), then through the final norm and classifier one
// window at a time, so the logits of only one window are ever held. Memory: one
// block in fp32 + the group's activations + one window's logits; each block is
// widened once per group.
//
// Same windows, same semantics as nn::evaluate (each window of L tokens predicts its
// last L − 1 from their prefixes); the sums differ from it in the last bits only,
// because windows run batched here (another GEMM shape) and one at a time there.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "lowbit/autograd/tensor.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/nn/calibration.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/text/windows.hpp"

namespace lowbit::nn {

struct BlockwiseEvalOptions {
  Index batch = 8;  ///< windows per forward chunk (bounds the transient activations)
  /// The most bytes a group's saved activations may take (at least one window a group).
  std::size_t state_bytes = std::size_t{1} << 30;
  /// (blocks passed, blocks to pass) over all groups, after each block.
  std::function<void(std::size_t, std::size_t)> progress;
};

struct BlockwiseEvalReport {
  text::NllTally tally;
  std::size_t groups = 0;
  double load_seconds = 0;     ///< widening weights from their files
  double forward_seconds = 0;  ///< embedding, blocks and classifier
};

namespace eval_detail {

/// Bytes the saved state takes per token: the residual stream and the widest stage
/// input (BlockCalibration's note on memory).
inline std::size_t state_bytes_per_token(const Transformer& model) {
  Index widest = model.config().dim;
  for (const auto& l : model.linear_layers()) widest = std::max(widest, l.in_features());
  return static_cast<std::size_t>(model.config().dim + widest) * sizeof(float);
}

/// Consecutive windows [first, end) per group, each group's state within `budget`.
inline std::vector<std::pair<std::size_t, std::size_t>> groups_of(const std::vector<std::span<const int>>& windows,
                                                                 std::size_t per_token, std::size_t budget) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  std::size_t first = 0, bytes = 0;
  for (std::size_t w = 0; w < windows.size(); ++w) {
    const std::size_t need = (windows[w].size() - 1) * per_token;
    if (w > first && bytes + need > budget) {
      out.emplace_back(first, w);
      first = w;
      bytes = 0;
    }
    bytes += need;
  }
  if (first < windows.size()) out.emplace_back(first, windows.size());
  return out;
}

}  // namespace eval_detail

/// Mean NLL of `model` over `windows`, one block in memory at a time when the model
/// is streaming (an in-memory model runs the same way, with nothing to load).
inline BlockwiseEvalReport evaluate_blockwise(Transformer& model, const std::vector<std::span<const int>>& windows,
                                              const BlockwiseEvalOptions& o = {}) {
  lowbit::detail::check(!windows.empty(), "evaluate_blockwise: no windows");
  const TransformerConfig& c = model.config();
  for (std::size_t w = 0; w < windows.size(); ++w) {
    const std::span<const int> win = windows[w];
    lowbit::detail::check(win.size() >= 2, "evaluate_blockwise: window ", w, " needs at least two tokens, got ",
                          win.size());
    lowbit::detail::check(static_cast<Index>(win.size()) - 1 <= c.context, "evaluate_blockwise: window ", w, " has ",
                          win.size(), " tokens; the model's context of ", c.context, " takes at most ", c.context + 1);
    for (std::size_t t = 0; t < win.size(); ++t)
      lowbit::detail::check(win[t] >= 0 && win[t] < c.vocab, "evaluate_blockwise: window ", w, " has token id ",
                            win[t], " at position ", t, ", outside the vocabulary [0, ", c.vocab, ")");
  }
  using clock = std::chrono::steady_clock;
  const auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  const bool streaming = model.is_streaming();
  BlockwiseEvalReport report;
  const auto load = [&](const std::vector<autograd::Parameter*>& ps) {
    if (!streaming) return;
    const auto t = clock::now();
    model.load(ps);
    report.load_seconds += since(t);
  };
  const auto unload = [&](const std::vector<autograd::Parameter*>& ps) {
    if (streaming) model.unload(ps);
  };

  const int layers = c.layers;
  const auto groups = eval_detail::groups_of(windows, eval_detail::state_bytes_per_token(model), o.state_bytes);
  report.groups = groups.size();
  std::size_t passed = 0;
  for (const auto& [first, end] : groups) {
    std::vector<std::span<const int>> inputs;
    for (std::size_t w = first; w < end; ++w) inputs.push_back(windows[w].first(windows[w].size() - 1));
    CalibrationOptions co;
    co.batch = o.batch;
    const std::vector<autograd::Parameter*> tables = model.embedding_parameters();
    load(tables);
    auto t = clock::now();
    BlockCalibration state(model, inputs, co);
    report.forward_seconds += since(t);
    unload(tables);
    for (int b = 0; b < layers; ++b) {
      const std::vector<autograd::Parameter*> params = model.block_parameters(b);
      load(params);
      t = clock::now();
      state.pass_block(b);
      report.forward_seconds += since(t);
      unload(params);
      if (o.progress) o.progress(++passed, groups.size() * static_cast<std::size_t>(layers));
    }
    const std::vector<autograd::Parameter*> outside = model.outside_parameters();
    load(outside);
    t = clock::now();
    autograd::NoGradGuard no_grad;
    autograd::Graph g;
    const Index dim = c.dim;
    for (std::size_t c = 0; c < state.chunk_count(); ++c) {
      const Index seq = state.chunk_seq(c);
      const auto per_window = static_cast<std::size_t>(seq * dim);
      const auto& members = state.chunk_windows(c);
      for (std::size_t j = 0; j < members.size(); ++j) {
        g.clear();  // one window's logits at a time
        const std::span<const int> window = windows[first + members[j]];
        const autograd::Tensor x = g.view({1, seq, dim}, state.residual(c).subspan(j * per_window, per_window));
        const autograd::Tensor logits = model.head(x);
        const double sum = detail::nll_sum(logits.data(), logits.shape().last(), window.subspan(1));
        lowbit::detail::check(std::isfinite(sum), "evaluate_blockwise: the model's NLL is not finite (non-finite "
                              "weights or activations) on window ", first + members[j]);
        report.tally.add(sum, seq);
      }
    }
    report.forward_seconds += since(t);
    unload(outside);
  }
  return report;
}

}  // namespace lowbit::nn
