// Straight-through-estimator fake quantization of a weight (the op QAFT trains through).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

#include "lowbit/autograd/tensor.hpp"
#include "lowbit/quant/kernels.hpp"
#include "lowbit/quant/quant_params.hpp"
#include "lowbit/quant/quantizer.hpp"

namespace lowbit::autograd {

/// What the backward pass of fake_quant_ste passes through.
enum class SteGradient {
  identity,        ///< dW = dQ everywhere (the plain straight-through estimator)
  mask_clipped,    ///< dW = dQ where the code round(w/s) lies in [qmin, qmax], else 0
};

struct SteOptions {
  SteGradient gradient = SteGradient::identity;
};

namespace detail {

// Forward with given scales; the mask (1 = gradient passes) follows PyTorch's
// fake_quantize_per_*_affine_cachemask: the rounded code, before clamping, is in range.
inline BasicTensor<float> ste_apply(BasicGraph<float>& g, BasicTensor<float> w, TensorImpl<float>* y,
                                    const QuantParams& p, SteOptions opt) {
  const bool track = g.tracks({w.impl()});
  std::uint8_t* mask = nullptr;
  // A block format's scales live in its encoded rows (no QuantParams scales): its
  // gradient passes straight through.
  if (track && opt.gradient == SteGradient::mask_clipped && !p.scales.empty()) {
    mask = g.arena().template alloc<std::uint8_t>(static_cast<std::size_t>(w.numel()));
    const Index cols = w.shape().last();
    p.for_each_slice([&](Index r, Index c0, Index c1, std::size_t k) {
      const GridStep step = GridStep::make(p.scales[k], p.format.division);
      // an asymmetric slice's codes are round(x/s) + z
      const float qmin = static_cast<float>(p.format.qmin) - p.zero(k);
      const float qmax = static_cast<float>(p.format.qmax) - p.zero(k);
      for (Index c = c0; c < c1; ++c) {
        const float x = w.data()[r * cols + c];
        if (p.format.non_uniform()) {  // NF4's levels span [-s, s]: beyond them it clips
          mask[r * cols + c] = std::fabs(x * step.factor) <= 1.0f ? 1 : 0;
          continue;
        }
        const float code = std::nearbyint(step.division == Division::reciprocal ? x * step.factor
                                                                               : x / step.factor);
        mask[r * cols + c] = code >= qmin && code <= qmax ? 1 : 0;
      }
    });
  }
  if (track)
    g.record(y, {w.impl()}, [w = w.impl(), y, mask] {
      const Index n = w->shape.numel();
      if (mask)
        for (Index i = 0; i < n; ++i) w->grad[i] += mask[i] ? y->grad[i] : 0.0f;
      else
        for (Index i = 0; i < n; ++i) w->grad[i] += y->grad[i];
    });
  return BasicTensor<float>(y);
}

inline MatrixView as_matrix(TensorImpl<float>* t) { return {t->data, t->shape.rows(), t->shape.last()}; }

}  // namespace detail

/// Fake-quantizes w (viewed as rows × last dimension, i.e. [out, in]) with any lowbit
/// quantizer (a SpecQuantizer, or a typed Quantizer<...>), recomputing its scales from the current w (what the study does every
/// step: the observer runs on the weight inside the forward pass). Backward: straight
/// through (identity), or masked outside the grid with SteGradient::mask_clipped.
/// The scales are not differentiated (they are treated as constants).
inline BasicTensor<float> fake_quant_ste(BasicTensor<float> w, const SpecQuantizer& q, SteOptions opt = {},
                                         std::string_view name = "weight") {
  auto& g = BasicGraph<float>::current("fake_quant_ste");
  TensorImpl<float>* y = g.make(w.shape());
  const QuantParams p = q.fake_quantize(detail::as_matrix(w.impl()), detail::as_matrix(y), name);
  return detail::ste_apply(g, w, y, p, opt);
}

/// Same with frozen scales (e.g. `q.params(weight.matrix())` taken once before fine-tuning).
inline BasicTensor<float> fake_quant_ste(BasicTensor<float> w, const QuantParams& frozen, SteOptions opt = {}) {
  auto& g = BasicGraph<float>::current("fake_quant_ste");
  TensorImpl<float>* y = g.make(w.shape());
  frozen.apply(detail::as_matrix(w.impl()), detail::as_matrix(y));
  return detail::ste_apply(g, w, y, frozen, opt);
}

}  // namespace lowbit::autograd
