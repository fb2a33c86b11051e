// MseShrink: GPTQ quant.py's grid search over shrunken ranges (find_params, mse=True).
#pragma once

#include <cmath>
#include <limits>

#include "lowbit/quant/format.hpp"
#include "lowbit/quant/kernels.hpp"

namespace lowbit {

/// Tries the ranges p·[xmin, xmax] for p = 1 - i/grid, i < maxshrink·grid, and
/// keeps the scale with the smallest Σ|q(x) - x|^norm over the slice (defaults as
/// in the reference: norm 2.4, grid 100, maxshrink 0.8). The shrunken ranges and
/// scales are formed in float32 as the reference does; the error sum is in double.
struct MseShrink {
  static constexpr const char* name = "mse";
  float norm = 2.4f;
  int grid = 100;
  float max_shrink = 0.8f;

  template <QuantFormat F>
  float scale(const float* x, Index n, SliceStats s) const {
    const auto [xmin, xmax] = F::effective_range(s.min, s.max);
    const auto qmin = static_cast<float>(F::qmin), qmax = static_cast<float>(F::qmax);
    float best_scale = F::scale_for(xmin, xmax);
    double best = std::numeric_limits<double>::infinity();
    const int steps = static_cast<int>(static_cast<double>(max_shrink) * grid);
    for (int i = 0; i < steps; ++i) {
      const auto p = static_cast<float>(1.0 - static_cast<double>(i) / grid);
      const float sc = F::scale_for(p * xmin, p * xmax);
      const GridStep g = GridStep::make(sc, F::division);
      double err = 0.0;
      for (Index k = 0; k < n; ++k) {
        const float d = kernels::fake_quantize_one(x[k], g, qmin, qmax) - x[k];
        err += static_cast<double>(std::pow(std::fabs(d), norm));
      }
      if (err < best) {
        best = err;
        best_scale = sc;
      }
    }
    return best_scale;
  }
};

}  // namespace lowbit
