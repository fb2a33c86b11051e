// The element-wise kernels behind every quantizer: range statistics, fake-quantize
// and integer codes. Each has a plain scalar reference (`*_scalar`) kept beside the
// xsimd path; the two agree bit for bit (tests/quant/test_kernels.cpp), because
// every step is one IEEE operation: multiply or divide, round-half-even, min/max.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <xsimd/xsimd.hpp>

#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/format.hpp"

namespace lowbit {

/// Range of a slice, and whether every value in it is finite.
struct SliceStats {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  bool finite = true;
};

/// What multiplies (or divides) x before rounding: 1/scale in float32 for
/// Division::reciprocal (PyTorch), the scale itself for Division::exact (GPTQ).
struct GridStep {
  float scale;
  float factor;
  Division division;
  static GridStep make(float scale, Division d) {
    return {scale, d == Division::reciprocal ? 1.0f / scale : scale, d};
  }
};

namespace kernels {

using simd = xsimd::batch<float>;
inline constexpr Index lanes = static_cast<Index>(simd::size);

// ---- statistics -------------------------------------------------------------

inline SliceStats stats_scalar(const float* x, Index n) {
  SliceStats s;
  for (Index i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) s.finite = false;
    s.min = std::min(s.min, x[i]);
    s.max = std::max(s.max, x[i]);
  }
  return s;
}

/// Min, max and finiteness in one pass. x * 0 is NaN exactly when x is NaN or
/// ±inf, so one accumulated sum of those products flags every non-finite value.
/// Four independent accumulator sets keep the loop at memory speed rather than
/// at the latency of one min/max chain.
inline SliceStats stats(const float* x, Index n) {
  constexpr int ways = 4;
  const simd zero(0.0f);
  simd vmin[ways], vmax[ways], poison[ways];
  for (int k = 0; k < ways; ++k) {
    vmin[k] = simd(std::numeric_limits<float>::infinity());
    vmax[k] = simd(-std::numeric_limits<float>::infinity());
    poison[k] = zero;
  }
  Index i = 0;
  for (; i + ways * lanes <= n; i += ways * lanes)
    for (int k = 0; k < ways; ++k) {
      const simd v = simd::load_unaligned(x + i + k * lanes);
      vmin[k] = xsimd::min(vmin[k], v);
      vmax[k] = xsimd::max(vmax[k], v);
      poison[k] += v * zero;
    }
  for (; i + lanes <= n; i += lanes) {
    const simd v = simd::load_unaligned(x + i);
    vmin[0] = xsimd::min(vmin[0], v);
    vmax[0] = xsimd::max(vmax[0], v);
    poison[0] += v * zero;
  }
  for (int k = 1; k < ways; ++k) {
    vmin[0] = xsimd::min(vmin[0], vmin[k]);
    vmax[0] = xsimd::max(vmax[0], vmax[k]);
    poison[0] += poison[k];
  }
  alignas(64) float lo[simd::size], hi[simd::size], bad[simd::size];
  vmin[0].store_aligned(lo);
  vmax[0].store_aligned(hi);
  poison[0].store_aligned(bad);
  SliceStats s = stats_scalar(x + i, n - i);
  for (std::size_t k = 0; k < simd::size; ++k) {
    s.min = std::min(s.min, lo[k]);
    s.max = std::max(s.max, hi[k]);
    if (bad[k] != 0.0f) s.finite = false;  // NaN != 0
  }
  return s;
}

/// Index of the first non-finite value, or n.
inline Index first_non_finite(const float* x, Index n) {
  for (Index i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return n;
}

// ---- fake-quantize ------------------------------------------------------------

/// q = clamp(round_half_even(x ⊙ step), qmin, qmax); y = q * scale. Adding +0.0
/// turns -0.0 into +0.0, as PyTorch's integer round trip does.
inline float fake_quantize_one(float x, GridStep g, float qmin, float qmax) {
  const float t = g.division == Division::reciprocal ? x * g.factor : x / g.factor;
  const float q = std::clamp(std::nearbyint(t), qmin, qmax) + 0.0f;
  return q * g.scale;
}

inline void fake_quantize_scalar(const float* x, float* y, Index n, GridStep g, int qmin, int qmax) {
  for (Index i = 0; i < n; ++i)
    y[i] = fake_quantize_one(x[i], g, static_cast<float>(qmin), static_cast<float>(qmax));
}

template <Division D>
inline simd grid_codes(simd v, simd factor, simd lo, simd hi) {
  const simd t = D == Division::reciprocal ? v * factor : v / factor;
  return xsimd::clip(xsimd::nearbyint(t), lo, hi) + simd(0.0f);
}

template <Division D>
inline void fake_quantize_simd(const float* x, float* y, Index n, GridStep g, int qmin, int qmax) {
  const simd factor(g.factor), scale(g.scale);
  const simd lo(static_cast<float>(qmin)), hi(static_cast<float>(qmax));
  Index i = 0;
  for (; i + lanes <= n; i += lanes)
    (grid_codes<D>(simd::load_unaligned(x + i), factor, lo, hi) * scale).store_unaligned(y + i);
  fake_quantize_scalar(x + i, y + i, n - i, g, qmin, qmax);
}

/// Fake-quantizes n values (x and y may alias).
inline void fake_quantize(const float* x, float* y, Index n, GridStep g, int qmin, int qmax) {
  if (g.division == Division::reciprocal)
    fake_quantize_simd<Division::reciprocal>(x, y, n, g, qmin, qmax);
  else
    fake_quantize_simd<Division::exact>(x, y, n, g, qmin, qmax);
}

/// Fake-quantizes n values, each with its own grid step (scale[i], factor[i] as
/// GridStep::make gives them): a GPTQ column, whose rows have their own scales.
inline void fake_quantize_each_scalar(const float* x, float* y, Index n, const float* scale, const float* factor,
                                      Division d, int qmin, int qmax) {
  for (Index i = 0; i < n; ++i)
    y[i] = fake_quantize_one(x[i], GridStep{scale[i], factor[i], d}, static_cast<float>(qmin),
                             static_cast<float>(qmax));
}

template <Division D>
inline void fake_quantize_each_simd(const float* x, float* y, Index n, const float* scale, const float* factor,
                                    int qmin, int qmax) {
  const simd lo(static_cast<float>(qmin)), hi(static_cast<float>(qmax));
  Index i = 0;
  for (; i + lanes <= n; i += lanes)
    (grid_codes<D>(simd::load_unaligned(x + i), simd::load_unaligned(factor + i), lo, hi) *
     simd::load_unaligned(scale + i))
        .store_unaligned(y + i);
  fake_quantize_each_scalar(x + i, y + i, n - i, scale + i, factor + i, D, qmin, qmax);
}

inline void fake_quantize_each(const float* x, float* y, Index n, const float* scale, const float* factor,
                               Division d, int qmin, int qmax) {
  if (d == Division::reciprocal)
    fake_quantize_each_simd<Division::reciprocal>(x, y, n, scale, factor, qmin, qmax);
  else
    fake_quantize_each_simd<Division::exact>(x, y, n, scale, factor, qmin, qmax);
}

// ---- integer codes ------------------------------------------------------------

inline void codes_scalar(const float* x, std::int8_t* q, Index n, GridStep g, int qmin, int qmax) {
  for (Index i = 0; i < n; ++i) {
    const float t = g.division == Division::reciprocal ? x[i] * g.factor : x[i] / g.factor;
    q[i] = static_cast<std::int8_t>(
        std::clamp(std::nearbyint(t), static_cast<float>(qmin), static_cast<float>(qmax)));
  }
}

template <Division D>
inline void codes_simd(const float* x, std::int8_t* q, Index n, GridStep g, int qmin, int qmax) {
  const simd factor(g.factor);
  const simd lo(static_cast<float>(qmin)), hi(static_cast<float>(qmax));
  alignas(64) std::int32_t tmp[simd::size];
  Index i = 0;
  for (; i + lanes <= n; i += lanes) {
    xsimd::to_int(grid_codes<D>(simd::load_unaligned(x + i), factor, lo, hi)).store_aligned(tmp);
    for (std::size_t k = 0; k < simd::size; ++k) q[i + static_cast<Index>(k)] = static_cast<std::int8_t>(tmp[k]);
  }
  codes_scalar(x + i, q + i, n - i, g, qmin, qmax);
}

/// Signed integer codes of n values.
inline void codes(const float* x, std::int8_t* q, Index n, GridStep g, int qmin, int qmax) {
  if (g.division == Division::reciprocal)
    codes_simd<Division::reciprocal>(x, q, n, g, qmin, qmax);
  else
    codes_simd<Division::exact>(x, q, n, g, qmin, qmax);
}

/// y = code * scale (+0.0 for code 0, as PyTorch's dequantize gives).
inline void dequantize(const std::int8_t* q, float* y, Index n, float scale) {
  for (Index i = 0; i < n; ++i) y[i] = static_cast<float>(q[i]) * scale;
}

}  // namespace kernels
}  // namespace lowbit
