// NF4, QLoRA's 4-bit NormalFloat (Dettmers et al. 2023), as bitsandbytes stores it:
// sixteen levels on [-1, 1] placed at quantiles of N(0, 1) with zero exact, one
// absmax per block. A value x of a block with absmax s is stored as the level
// nearest to x·(1/s) (the float32 reciprocal, as bitsandbytes' kQuantizeBlockwise
// multiplies) and decoded as level·s. Codes are bitsandbytes' nibbles 0..15.
//
// The kernels select levels with a chain of comparisons against the midpoints
// between levels, the form of bitsandbytes' dQuantizeNF4 decision tree: a value
// exactly on a midpoint takes the lower level (its `x > t` tests), which a
// nearest-by-distance search would leave to the order of the table. Each kernel
// has a scalar reference beside its xsimd path (tests/quant/test_normal_float.cpp).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include <xsimd/xsimd.hpp>

#include "lowbit/core/matrix_view.hpp"

namespace lowbit::nf4 {

/// The levels, by code (QLoRA's appendix E; bitsandbytes' create_normal_map with
/// offset 0.9677083, rounded to float32).
inline constexpr std::array<float, 16> levels{
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

/// The code of level 0 (what an all-zero block stores).
inline constexpr int zero_code = 7;

/// Midpoint k lies between levels k and k+1: their mean in double, rounded to
/// float32 — bitsandbytes' decision-tree constants (the fixture script checks the
/// two agree).
inline constexpr std::array<float, 15> thresholds = [] {
  std::array<float, 15> t{};
  for (std::size_t k = 0; k < t.size(); ++k)
    t[k] = static_cast<float>((static_cast<double>(levels[k]) + static_cast<double>(levels[k + 1])) / 2.0);
  return t;
}();

/// The code of a normalised value t = x·(1/s): how many midpoints lie strictly
/// below it. NaN compares false everywhere and gets code 0, as in bitsandbytes.
inline int code(float t) {
  int k = 0;
  for (const float m : thresholds) k += t > m ? 1 : 0;
  return k;
}

/// The float32 reciprocal a block of absmax s is normalised with.
inline float inverse(float s) { return 1.0f / s; }

// ---- scalar references ----------------------------------------------------------

inline void fake_quantize_scalar(const float* x, float* y, Index n, float scale) {
  const float inv = inverse(scale);
  for (Index i = 0; i < n; ++i) y[i] = levels[static_cast<std::size_t>(code(x[i] * inv))] * scale;
}

/// Each value with its own scale and reciprocal (a GPTQ column: a scale per row).
inline void fake_quantize_each_scalar(const float* x, float* y, Index n, const float* scale, const float* inv) {
  for (Index i = 0; i < n; ++i) y[i] = levels[static_cast<std::size_t>(code(x[i] * inv[i]))] * scale[i];
}

/// Signed codes (stored nibble − 8, lowbit's code convention with code_offset 8).
inline void codes(const float* x, std::int8_t* q, Index n, float scale) {
  const float inv = inverse(scale);
  for (Index i = 0; i < n; ++i) q[i] = static_cast<std::int8_t>(code(x[i] * inv) - 8);
}

/// y = level(q + 8)·scale for signed codes q in -8..7.
inline void dequantize(const std::int8_t* q, float* y, Index n, float scale) {
  for (Index i = 0; i < n; ++i) y[i] = levels[static_cast<std::size_t>(q[i] + 8)] * scale;
}

// ---- xsimd paths ---------------------------------------------------------------

using simd = xsimd::batch<float>;

/// The level of each lane of t: a select per midpoint, in increasing order, so the
/// last midpoint below t decides — exactly levels[code(t)].
inline simd level_of(simd t) {
  simd r(levels[0]);
  for (std::size_t k = 0; k < thresholds.size(); ++k) r = xsimd::select(t > simd(thresholds[k]), simd(levels[k + 1]), r);
  return r;
}

inline void fake_quantize(const float* x, float* y, Index n, float scale) {
  constexpr auto lanes = static_cast<Index>(simd::size);
  const float inv = inverse(scale);
  const simd vinv(inv), vscale(scale);
  Index i = 0;
  for (; i + lanes <= n; i += lanes) (level_of(simd::load_unaligned(x + i) * vinv) * vscale).store_unaligned(y + i);
  fake_quantize_scalar(x + i, y + i, n - i, scale);
}

inline void fake_quantize_each(const float* x, float* y, Index n, const float* scale, const float* inv) {
  constexpr auto lanes = static_cast<Index>(simd::size);
  Index i = 0;
  for (; i + lanes <= n; i += lanes)
    (level_of(simd::load_unaligned(x + i) * simd::load_unaligned(inv + i)) * simd::load_unaligned(scale + i))
        .store_unaligned(y + i);
  fake_quantize_each_scalar(x + i, y + i, n - i, scale + i, inv + i);
}

}  // namespace lowbit::nf4
