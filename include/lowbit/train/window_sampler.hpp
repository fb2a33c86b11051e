// Random training windows from one token stream, drawn as a pure function of
// (seed, step, row): the sampler has no state to save, so a resumed run draws
// exactly the batches the uninterrupted run would have drawn.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit::train {

/// splitmix64's finaliser: a bijective 64-bit mixer with full avalanche.
[[nodiscard]] inline constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Batches of `batch` windows of `context + 1` consecutive tokens (inputs are the
/// first `context`, targets the last `context`). Window starts are uniform over
/// [0, size − context − 1]; the modulo bias is below 2⁻⁴⁰ for streams under 16M tokens.
class WindowSampler {
 public:
  WindowSampler(std::span<const int> tokens, Index context, Index batch, std::uint64_t seed)
      : tokens_(tokens), context_(context), batch_(batch), seed_(seed) {
    lowbit::detail::check(context >= 1, "WindowSampler: context must be positive, got ", context);
    lowbit::detail::check(batch >= 1, "WindowSampler: batch must be positive, got ", batch);
    lowbit::detail::check(static_cast<Index>(tokens.size()) > context, "WindowSampler: a stream of ",
                          tokens.size(), " tokens is too short for windows of ", context, " + 1 tokens");
  }

  [[nodiscard]] Index context() const { return context_; }
  [[nodiscard]] Index batch() const { return batch_; }

  /// Start of row `row` of the batch for optimizer step `step`.
  [[nodiscard]] Index start(Index step, Index row) const {
    const auto starts = static_cast<std::uint64_t>(static_cast<Index>(tokens_.size()) - context_);
    const std::uint64_t key = mix64(seed_ + 0x9E3779B97F4A7C15ull) ^
                              (static_cast<std::uint64_t>(step) * static_cast<std::uint64_t>(batch_) +
                               static_cast<std::uint64_t>(row));
    return static_cast<Index>(mix64(mix64(key)) % starts);
  }

  /// Fills inputs and targets ([batch, context] row-major) for step `step`.
  void fill(Index step, std::vector<std::int32_t>& inputs, std::vector<std::int32_t>& targets) const {
    lowbit::detail::check(step >= 0, "WindowSampler: negative step ", step);
    inputs.resize(static_cast<std::size_t>(batch_ * context_));
    targets.resize(inputs.size());
    for (Index b = 0; b < batch_; ++b) {
      const Index s = start(step, b);
      for (Index t = 0; t < context_; ++t) {
        inputs[static_cast<std::size_t>(b * context_ + t)] = tokens_[static_cast<std::size_t>(s + t)];
        targets[static_cast<std::size_t>(b * context_ + t)] = tokens_[static_cast<std::size_t>(s + t + 1)];
      }
    }
  }

 private:
  std::span<const int> tokens_;
  Index context_, batch_;
  std::uint64_t seed_;
};

}  // namespace lowbit::train
