// Token negative log-likelihood of a model over windows, without a tape, and
// greedy generation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "lowbit/autograd/tensor.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/text/windows.hpp"

namespace lowbit::nn {

namespace detail {

/// Σ over rows r of logsumexp(logits[r]) − logits[r, targets[r]], in double so a
/// sum over 10⁵ tokens keeps its digits.
inline double nll_sum(const float* logits, Index vocab, std::span<const std::int32_t> targets) {
  double total = 0;
  for (std::size_t r = 0; r < targets.size(); ++r) {
    const float* row = logits + static_cast<Index>(r) * vocab;
    const float mx = *std::max_element(row, row + vocab);
    double s = 0;
    for (Index j = 0; j < vocab; ++j) s += std::exp(static_cast<double>(row[j] - mx));
    total += std::log(s) + static_cast<double>(mx) - static_cast<double>(row[targets[r]]);
  }
  return total;
}

}  // namespace detail

/// Evaluates windows one at a time on a private graph (no tape): each window of L
/// tokens predicts its last L − 1 from their prefixes. The graph's memory is kept
/// from window to window (a fresh graph per window would fault ~1 GiB of pages back
/// in for each GPT-2-small window). Like a Graph, an Evaluator is the current graph
/// of its thread while it lives: keep it scoped.
class Evaluator {
 public:
  explicit Evaluator(const Transformer& model) : model_(model) {}

  /// Sum of token NLLs (nats) of one window and the number of predicted tokens.
  std::pair<double, std::int64_t> window_nll(std::span<const int> window, const ForwardHooks& hooks = {}) {
    lowbit::detail::check(window.size() >= 2, "evaluate: a window needs at least two tokens, got ", window.size());
    graph_.clear();
    autograd::NoGradGuard no_grad;
    const Index t = static_cast<Index>(window.size()) - 1;
    const autograd::Tensor logits = model_.forward(window.first(static_cast<std::size_t>(t)), 1, t, hooks);
    const double sum = detail::nll_sum(logits.data(), logits.shape().last(), window.subspan(1));
    lowbit::detail::check(std::isfinite(sum), "evaluate: the model's NLL is not finite (non-finite weights or "
                          "activations)");
    return {sum, t};
  }

  /// Mean NLL over windows; `progress(done, total)` is called after each window.
  text::NllTally evaluate(const std::vector<std::span<const int>>& windows, const ForwardHooks& hooks = {},
                          const std::function<void(std::size_t, std::size_t)>& progress = {}) {
    text::NllTally tally;
    for (std::size_t i = 0; i < windows.size(); ++i) {
      const auto [sum, n] = window_nll(windows[i], hooks);
      tally.add(sum, n);
      if (progress) progress(i + 1, windows.size());
    }
    return tally;
  }

 private:
  const Transformer& model_;
  autograd::Graph graph_;
};

/// Mean NLL of `model` over `windows`.
inline text::NllTally evaluate(const Transformer& model, const std::vector<std::span<const int>>& windows,
                               const ForwardHooks& hooks = {}) {
  return Evaluator(model).evaluate(windows, hooks);
}

/// Greedy decoding: appends up to `steps` argmax tokens to `prompt`, stopping early
/// at `stop_id` (when ≥ 0) or at the model's context. Recomputes the whole prefix
/// each step (no KV cache): meant for examples and tests, not for serving.
inline std::vector<int> generate_greedy(const Transformer& model, std::vector<int> prompt, int steps,
                                        int stop_id = -1) {
  lowbit::detail::check(!prompt.empty(), "generate_greedy: the prompt is empty");
  autograd::NoGradGuard no_grad;
  autograd::Graph g;
  for (int s = 0; s < steps && static_cast<Index>(prompt.size()) < model.config().context; ++s) {
    g.clear();
    const Index t = static_cast<Index>(prompt.size());
    const autograd::Tensor logits = model.forward(prompt, 1, t);
    const Index vocab = logits.shape().last();
    const float* last = logits.data() + (t - 1) * vocab;
    const int next = static_cast<int>(std::max_element(last, last + vocab) - last);
    if (next == stop_id) break;
    prompt.push_back(next);
  }
  return prompt;
}

}  // namespace lowbit::nn
