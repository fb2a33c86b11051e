// MseShrink: GPTQ quant.py's grid search over shrunken ranges (find_params, mse=True).
#pragma once

#include <cmath>
#include <limits>

#include "lowbit/quant/format.hpp"
#include "lowbit/quant/kernels.hpp"

namespace lowbit {

namespace detail {

/// quant.py's shrink grid: the ranges p·[xmin, xmax] for p = 1 - i/grid, i <
/// max_shrink·grid, each with its scale (and zero) formed in float32 as the reference
/// does; keeps the first with the smallest error(step, qmin, qmax) (strictly
/// smaller replaces), the bounds being an asymmetric slice's [qmin - z, qmax - z].
template <class Error>
SliceScale shrink_search(const FormatInfo& f, SliceStats s, int grid, float max_shrink, Error&& error) {
  const auto [xmin, xmax] = f.effective_range(s.min, s.max);
  SliceScale best_scale{f.scale_for(xmin, xmax), 0.0f};
  best_scale.zero = f.zero_for(xmin, best_scale.scale);
  double best = std::numeric_limits<double>::infinity();
  const int steps = static_cast<int>(static_cast<double>(max_shrink) * grid);
  for (int i = 0; i < steps; ++i) {
    const auto p = static_cast<float>(1.0 - static_cast<double>(i) / grid);
    const float sc = f.scale_for(p * xmin, p * xmax);
    // quant.py's zero1 = round(-xmin1 / scale1) for sym=False; 0 otherwise.
    const float z = f.zero_for(p * xmin, sc);
    const double err = error(GridStep::make(sc, f.division), static_cast<float>(f.qmin) - z,
                             static_cast<float>(f.qmax) - z);
    if (err < best) {
      best = err;
      best_scale = {sc, z};
    }
  }
  return best_scale;
}

}  // namespace detail

/// Tries the ranges p·[xmin, xmax] for p = 1 - i/grid, i < maxshrink·grid, and
/// keeps the scale with the smallest Σ|q(x) - x|^norm over the slice (defaults as
/// in the reference: norm 2.4, grid 100, maxshrink 0.8). The shrunken ranges and
/// scales are formed in float32 as the reference does; the error sum is in double.
struct MseShrink {
  static constexpr const char* name = "mse";
  float norm = 2.4f;
  int grid = 100;
  float max_shrink = 0.8f;

  [[nodiscard]] SliceScale scale(const FormatInfo& f, const float* x, Index n, SliceStats s) const {
    return detail::shrink_search(f, s, grid, max_shrink, [&](GridStep g, float qmin, float qmax) {
      double err = 0.0;
      for (Index k = 0; k < n; ++k) {
        const float d = kernels::fake_quantize_one(x[k], g, qmin, qmax) - x[k];
        err += static_cast<double>(std::pow(std::fabs(d), norm));
      }
      return err;
    });
  }
  template <QuantFormat F>
  [[nodiscard]] float scale(const float* x, Index n, SliceStats s) const {
    return scale(F::info(), x, n, s).scale;
  }
};

}  // namespace lowbit
