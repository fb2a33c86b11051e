// WeightedShrink: the shrink-grid scale search with a per-column importance, the
// run-time analogue of llama.cpp's imatrix-weighted search for integer grids.
#pragma once

#include <span>

#include "lowbit/quant/format.hpp"
#include "lowbit/quant/kernels.hpp"
#include "lowbit/quant/mse_shrink.hpp"

namespace lowbit {

/// quant.py's shrink grid (detail::shrink_search, as MseShrink), keeping the range
/// with the smallest Σ_j imp_j·(q(x_j) - x_j)²: the layer-output error when imp = diag(X Xᵀ) (GPTQ's H diagonal, llama.cpp's
/// importance matrix) and the inputs are uncorrelated. An empty importance
/// weighs every column 1, which makes it MseShrink with norm 2.
struct WeightedShrink {
  static constexpr const char* name = "weighted";
  int grid = 100;
  float max_shrink = 0.8f;

  /// Element i of the slice x is column col0 + i (or (col0 + i) % period when the
  /// slice spans rows: a per-tensor slice).
  [[nodiscard]] SliceScale scale(const FormatInfo& f, const float* x, Index n, SliceStats s,
                                 std::span<const float> importance = {}, Index col0 = 0, Index period = 0) const {
    return detail::shrink_search(f, s, grid, max_shrink, [&](GridStep g, float qmin, float qmax) {
      double err = 0.0;
      for (Index k = 0; k < n; ++k) {
        const double d = static_cast<double>(kernels::fake_quantize_one(x[k], g, qmin, qmax) - x[k]);
        err += weight(importance, col0 + k, period) * d * d;
      }
      return err;
    });
  }
  template <QuantFormat F>
  [[nodiscard]] float scale(const float* x, Index n, SliceStats s) const {
    return scale(F::info(), x, n, s).scale;
  }

 private:
  static double weight(std::span<const float> imp, Index col, Index period) {
    if (imp.empty()) return 1.0;
    const Index c = period > 0 ? col % period : col;
    return static_cast<double>(imp[static_cast<std::size_t>(c)]);
  }
};

}  // namespace lowbit
