// AbsMax: the scale that maps the slice's range exactly onto the grid.
#pragma once

#include "lowbit/quant/format.hpp"
#include "lowbit/quant/kernels.hpp"

namespace lowbit {

/// Scale from the observed min and max (PyTorch MinMaxObserver, GPTQ find_params
/// without mse). Nothing clips.
struct AbsMax {
  static constexpr const char* name = "absmax";

  [[nodiscard]] SliceScale scale(const FormatInfo& f, const float* /*x*/, Index /*n*/, SliceStats s) const {
    const float sc = f.scale_for(s.min, s.max);
    return {sc, f.zero_for(f.effective_range(s.min, s.max).first, sc)};
  }
  template <QuantFormat F>
  [[nodiscard]] float scale(const float* x, Index n, SliceStats s) const {
    return scale(F::info(), x, n, s).scale;
  }
};

}  // namespace lowbit
