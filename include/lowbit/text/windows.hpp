// Evaluation windows, calibration sampling and the NLL / perplexity tally
// (docs/data.md "Evaluation protocol").
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "lowbit/core/error.hpp"

namespace lowbit::text {

/// Non-overlapping windows of `context` tokens from the start; a tail shorter than
/// `context` is dropped (the GPTQ / Hugging Face protocol: nsamples = n / context).
inline std::vector<std::span<const int>> eval_windows(std::span<const int> tokens, std::ptrdiff_t context) {
  detail::check(context >= 2, "eval_windows: context must be at least 2 tokens, got ", context);
  std::vector<std::span<const int>> w;
  const auto n = static_cast<std::ptrdiff_t>(tokens.size());
  for (std::ptrdiff_t s = 0; s + context <= n; s += context)
    w.push_back(tokens.subspan(static_cast<std::size_t>(s), static_cast<std::size_t>(context)));
  return w;
}

/// At most k of the windows, evenly spread over them (window i*n/k for i < k): a
/// cheap validation subset that still covers every part of the split.
inline std::vector<std::span<const int>> spread_windows(const std::vector<std::span<const int>>& all, std::size_t k) {
  k = std::min(k, all.size());
  std::vector<std::span<const int>> out;
  out.reserve(k);
  for (std::size_t i = 0; i < k; ++i) out.push_back(all[i * all.size() / k]);
  return out;
}

/// Uniform integer in [0, bound) from a 64-bit generator, by rejection, so the
/// draw is the same on every standard library (std::uniform_int_distribution is not).
inline std::uint64_t uniform_below(std::mt19937_64& g, std::uint64_t bound) {
  const std::uint64_t limit = UINT64_MAX - (UINT64_MAX % bound + 1) % bound;  // largest multiple - 1
  for (;;) {
    const std::uint64_t x = g();
    if (x <= limit) return x % bound;
  }
}

/// n windows of `context` tokens whose starts are drawn uniformly (with
/// replacement, as GPTQ's calibration sampler) from [0, size - context], using
/// std::mt19937_64 seeded with `seed`.
inline std::vector<std::span<const int>> calibration_windows(std::span<const int> tokens, std::ptrdiff_t n,
                                                             std::ptrdiff_t context, std::uint64_t seed) {
  detail::check(n >= 0, "calibration_windows: negative sample count ", n);
  detail::check(context >= 1 && static_cast<std::size_t>(context) <= tokens.size(), "calibration_windows: ",
                "context ", context, " does not fit ", tokens.size(), " tokens");
  std::mt19937_64 g(seed);
  const auto starts = static_cast<std::uint64_t>(tokens.size()) - static_cast<std::uint64_t>(context) + 1;
  std::vector<std::span<const int>> w;
  for (std::ptrdiff_t i = 0; i < n; ++i)
    w.push_back(tokens.subspan(static_cast<std::size_t>(uniform_below(g, starts)), static_cast<std::size_t>(context)));
  return w;
}

/// The first `fraction` of the tokens (rounded down) and the rest: the shared data
/// has no WikiText-2 train split, so calibration uses the first 80% of validation
/// and hyper-parameter selection its last 20% (../shared/README.md).
inline std::pair<std::span<const int>, std::span<const int>> split_fraction(std::span<const int> tokens,
                                                                             double fraction) {
  detail::check(fraction >= 0.0 && fraction <= 1.0, "split_fraction: fraction ", fraction, " is not in [0, 1]");
  const auto k = static_cast<std::size_t>(std::floor(fraction * static_cast<double>(tokens.size())));
  return {tokens.first(k), tokens.subspan(k)};
}

/// Sums token negative log-likelihoods (nats) over windows. A window of L tokens
/// predicts L - 1 of them (every token after the first from its prefix).
class NllTally {
 public:
  void add(double nll_sum, std::int64_t predicted) {
    detail::check(predicted >= 0 && std::isfinite(nll_sum), "NllTally: bad window (sum ", nll_sum, ", ", predicted,
                  " tokens)");
    sum_ += nll_sum;
    count_ += predicted;
  }
  [[nodiscard]] std::int64_t tokens() const { return count_; }
  [[nodiscard]] double sum() const { return sum_; }
  [[nodiscard]] double mean_nll() const {
    detail::check(count_ > 0, "NllTally: no predicted tokens");
    return sum_ / static_cast<double>(count_);
  }
  [[nodiscard]] double perplexity() const { return std::exp(mean_nll()); }

 private:
  double sum_ = 0;
  std::int64_t count_ = 0;
};

}  // namespace lowbit::text
