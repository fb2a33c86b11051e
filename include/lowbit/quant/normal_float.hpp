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

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/kernels.hpp"

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

/// y = level(q + 8)·scale for signed codes q in -8..7 (the reference of dequantize_simd).
inline void dequantize_scalar(const std::int8_t* q, float* y, Index n, float scale) {
  for (Index i = 0; i < n; ++i) y[i] = levels[static_cast<std::size_t>(q[i] + 8)] * scale;
}

// ---- xsimd paths ---------------------------------------------------------------

using simd = xsimd::batch<float>;

#if defined(__AVX512F__)
/// AVX-512: code(t) by a 4-step binary search over the midpoints held in one
/// register (a lane permute fetches each probe), then the level by one more permute:
/// 14 instructions for 16 values instead of 30 selects. Same code as code(): t >
/// midpoint, compared ordered so NaN gets code 0.
inline __m512 level_of_avx512(__m512 t) {
  alignas(64) static constexpr float mids[16] = {thresholds[0],  thresholds[1],  thresholds[2],  thresholds[3],
                                                 thresholds[4],  thresholds[5],  thresholds[6],  thresholds[7],
                                                 thresholds[8],  thresholds[9],  thresholds[10], thresholds[11],
                                                 thresholds[12], thresholds[13], thresholds[14], 0.0f};
  const __m512 m = _mm512_load_ps(mids), lv = _mm512_loadu_ps(levels.data());
  __m512i idx = _mm512_setzero_si512();
  for (const int step : {8, 4, 2, 1}) {
    const __m512 probe = _mm512_permutexvar_ps(_mm512_add_epi32(idx, _mm512_set1_epi32(step - 1)), m);
    idx = _mm512_mask_add_epi32(idx, _mm512_cmp_ps_mask(t, probe, _CMP_GT_OQ), idx, _mm512_set1_epi32(step));
  }
  return _mm512_permutexvar_ps(idx, lv);
}
#endif

/// The level of each lane of t: exactly levels[code(t)]. Portable form: a select per
/// midpoint, in increasing order, so the last midpoint below t decides.
inline simd level_of(simd t) {
#if defined(__AVX512F__)
  if constexpr (sizeof(simd) == 64) return simd(level_of_avx512(t));
#endif
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

/// A row of n values in groups of `group` (the last may be shorter), group k with
/// scale steps[k].scale and reciprocal steps[k].factor (GridStep::make(s,
/// Division::reciprocal)): one pass per row, streaming past the cache for large
/// outputs as the integer grids do (kernels::fake_quantize_groups_with). With
/// Store::streaming the caller ends with kernels::streaming_fence().
inline void fake_quantize_groups(const float* x, float* y, Index n, Index group, const GridStep* steps,
                                 kernels::Store store = kernels::Store::cached) {
  const auto vec = [](simd v, simd inv, simd scale) { return level_of(v * inv) * scale; };
  const auto one = [](float v, GridStep g) { return levels[static_cast<std::size_t>(code(v * g.factor))] * g.scale; };
  if (group < static_cast<Index>(simd::size)) {
    for (Index i = 0; i < n; ++i) y[i] = one(x[i], steps[i / group]);
  } else if (store == kernels::Store::streaming) {
    kernels::fake_quantize_groups_with<kernels::Store::streaming>(x, y, n, group, steps, vec, one, nullptr);
  } else {
    kernels::fake_quantize_groups_with<kernels::Store::cached>(x, y, n, group, steps, vec, one, nullptr);
  }
}

/// The level of each lane's signed code c (-8..7, as floats): a select per code
/// boundary c - 0.5, so levels[c + 8] exactly.
inline simd level_of_code(simd c) {
  simd r(levels[0]);
  for (std::size_t k = 1; k < levels.size(); ++k)
    r = xsimd::select(c > simd(static_cast<float>(k) - 8.5f), simd(levels[k]), r);
  return r;
}

/// dequantize through xsimd, bit for bit dequantize_scalar (codes widened to float
/// by the compiler's vector conversion, levels selected, one multiply).
inline void dequantize_simd(const std::int8_t* q, float* y, Index n, float scale) {
  constexpr auto lanes = static_cast<Index>(simd::size);
  const simd vs(scale);
  Index i = 0;
#if defined(__AVX512F__)
  if constexpr (lanes == 16) {  // 16 codes widened to lane indices, one permute of the levels
    const __m512 lv = _mm512_loadu_ps(levels.data());
    const __m512i eight = _mm512_set1_epi32(8);
    for (; i + lanes <= n; i += lanes) {
      const __m512i c = _mm512_add_epi32(
          _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i))), eight);
      (simd(_mm512_permutexvar_ps(c, lv)) * vs).store_unaligned(y + i);
    }
  }
#endif
  alignas(64) float c[simd::size];
  for (; i + lanes <= n; i += lanes) {
    for (Index k = 0; k < lanes; ++k) c[k] = static_cast<float>(q[i + k]);
    (level_of_code(simd::load_aligned(c)) * vs).store_unaligned(y + i);
  }
  dequantize_scalar(q + i, y + i, n - i, scale);
}

}  // namespace lowbit::nf4
