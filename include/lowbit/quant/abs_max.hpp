// AbsMax: the scale that maps the slice's range exactly onto the grid.
#pragma once

#include "lowbit/quant/format.hpp"
#include "lowbit/quant/kernels.hpp"

namespace lowbit {

/// Scale from the observed min and max (PyTorch MinMaxObserver, GPTQ find_params
/// without mse). Nothing clips.
struct AbsMax {
  static constexpr const char* name = "absmax";
  template <QuantFormat F>
  float scale(const float* /*x*/, Index /*n*/, SliceStats s) const {
    return F::scale_for(s.min, s.max);
  }
};

}  // namespace lowbit
