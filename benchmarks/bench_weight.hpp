// The 4096×4096 fp32 weight the quantizer benchmarks share, and the memcpy of its
// bytes into a prefaulted buffer that their ratios are taken against (the floor for
// any out-of-place pass). The weight is a std::vector, i.e. malloc'ed and only
// 16-byte aligned, as most callers' are.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <lowbit/core/matrix_view.hpp>

namespace bench {

inline constexpr lowbit::Index kRows = 4096, kCols = 4096;

inline const std::vector<float>& weight() {
  static const std::vector<float> w = [] {
    std::vector<float> v(static_cast<std::size_t>(kRows * kCols));
    std::mt19937 gen(1);
    std::normal_distribution<float> d(0.0f, 0.02f);
    for (auto& x : v) x = d(gen);
    return v;
  }();
  return w;
}

inline std::vector<float> prefaulted() { return std::vector<float>(static_cast<std::size_t>(kRows * kCols), 1.0f); }

inline void set_bytes(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRows * kCols * 4);
}

/// The baseline: copy the weight's bytes.
inline void memcpy_weight(benchmark::State& state) {
  const auto& w = weight();
  auto out = prefaulted();
  for (auto _ : state) {
    std::memcpy(out.data(), w.data(), w.size() * sizeof(float));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

}  // namespace bench
