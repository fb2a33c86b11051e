// A fixed-bin histogram with torch.histc's exact bin assignment.
#pragma once

#include <array>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/kernels.hpp"

namespace lowbit {

/// Counts of `bins` equal-width bins over [lo, hi]. Values outside (and NaN) are
/// not counted; hi itself falls into the last bin.
struct Histogram {
  float lo = 0.0f;
  float hi = 0.0f;
  std::vector<double> counts;

  [[nodiscard]] Index bins() const { return static_cast<Index>(counts.size()); }
  [[nodiscard]] double total() const {
    double t = 0;
    for (double c : counts) t += c;
    return t;
  }
};

namespace kernels {

/// torch.histc's bin of x (CPU, linear interpolation without local search):
/// trunc((x - lo) * bins / (hi - lo)), all in float32, clamped to the last bin.
/// Returns -1 when x is outside [lo, hi] or NaN.
inline Index histc_bin(float x, float lo, float hi, Index bins) {
  if (!(x >= lo && x <= hi)) return -1;
  const float span = hi - lo;
  const float scaled = (x - lo) * static_cast<float>(bins);
  const auto pos = static_cast<Index>(scaled / span);
  return pos == bins ? bins - 1 : pos;
}

inline void histc_scalar(const float* x, Index n, Histogram& h) {
  for (Index i = 0; i < n; ++i) {
    const Index b = histc_bin(x[i], h.lo, h.hi, h.bins());
    if (b >= 0) h.counts[static_cast<std::size_t>(b)] += 1.0;
  }
}

/// Vectorised bin indices, then a scalar scatter into four interleaved
/// sub-histograms so that runs of equal bins do not serialise on one counter.
///
/// The index is computed with the float32 reciprocal of the span (a multiply
/// instead of a divide) and checked: m = a·fl(1/span) is within 3.7e-4 of
/// fl(a/span) for a ≤ bins ≤ 4096, so the two truncate differently only when
/// m lies within 1e-3 of an integer; such vectors (a few percent) are redone
/// with the exact division, keeping torch.histc's bins bit for bit.
///
/// The counting runs one step behind the binning, a block of `block` values at a
/// time: the indices of a block are all stored before the first is read back, so
/// the scalar loads find them in L1 instead of waiting for a store to forward
/// (that wait made the counting ~1.3× slower). Long inputs are read in aligned vectors
/// (see head_to_align).
inline void histc(const float* x, Index n, Histogram& h) {
  constexpr Index block = 128;
  static_assert(block % lanes == 0 && block % 4 == 0);
  const Index bins = h.bins();
  if (bins > 4096) {  // the error bound above assumes small bin counts
    histc_scalar(x, n, h);
    return;
  }
  // Slot `bins` takes x == hi, `bins + 1` the rejects; rows padded to whole cache lines.
  const Index stride = (bins + 2 + 15) / 16 * 16;
  std::vector<std::uint32_t> sub(static_cast<std::size_t>(4 * stride), 0u);
  std::uint32_t* s0 = sub.data();
  std::uint32_t* s1 = s0 + stride;
  std::uint32_t* s2 = s1 + stride;
  std::uint32_t* s3 = s2 + stride;
  const float span_f = h.hi - h.lo;
  const simd lo(h.lo), hi(h.hi), nb(static_cast<float>(bins)), span(span_f), inv(1.0f / span_f);
  const simd reject(static_cast<float>(bins + 1)), guard(1e-3f), one(1.0f);
  const Index head = n >= align_from ? head_to_align(x, n) : 0;
  histc_scalar(x, head, h);
  alignas(64) std::int32_t idx[block];
  Index i = head;
  for (; i + block <= n; i += block) {
    for (Index j = 0; j < block; j += lanes) {
      const simd v = simd::load_unaligned(x + i + j);
      const auto inside = (v >= lo) & (v <= hi);
      const simd a = (v - lo) * nb;
      simd pos = a * inv;
      const simd frac = pos - xsimd::floor(pos);
      if (xsimd::any(inside & ((frac < guard) | (frac > one - guard)))) pos = a / span;
      xsimd::to_int(xsimd::select(inside, pos, reject)).store_aligned(idx + j);
    }
    for (Index k = 0; k < block; k += 4) {
      ++s0[idx[k]];
      ++s1[idx[k + 1]];
      ++s2[idx[k + 2]];
      ++s3[idx[k + 3]];
    }
  }
  for (Index c = 0; c < 4; ++c) {
    const std::uint32_t* s = sub.data() + c * stride;
    for (Index b = 0; b < bins; ++b) h.counts[static_cast<std::size_t>(b)] += s[b];
    h.counts[static_cast<std::size_t>(bins - 1)] += s[bins];
  }
  histc_scalar(x + i, n - i, h);
}

}  // namespace kernels

namespace kernels {

/// Whether torch.histc's float32 bin arithmetic stays finite on [lo, hi]:
/// (x - lo)·bins must not overflow, which only ranges near ±FLT_MAX break.
inline bool histc_range_is_finite(float lo, float hi, Index bins) {
  const double span = static_cast<double>(hi) - static_cast<double>(lo);
  return span * static_cast<double>(bins) <= static_cast<double>(std::numeric_limits<float>::max());
}

/// The same bins computed in double, for ranges where the float32 formula would
/// overflow (torch itself gives inf/NaN positions there; lowbit gives true bins).
inline void histc_wide(const float* x, Index n, Histogram& h) {
  const double lo = h.lo, span = static_cast<double>(h.hi) - lo;
  const Index bins = h.bins();
  for (Index i = 0; i < n; ++i) {
    if (!(x[i] >= h.lo && x[i] <= h.hi)) continue;
    const auto pos = static_cast<Index>((static_cast<double>(x[i]) - lo) * static_cast<double>(bins) / span);
    h.counts[static_cast<std::size_t>(std::min(pos, bins - 1))] += 1.0;
  }
}

}  // namespace kernels

/// Histogram of n values over [lo, hi] (lo < hi).
inline Histogram make_histogram(const float* x, Index n, float lo, float hi, Index bins) {
  Histogram h{lo, hi, std::vector<double>(static_cast<std::size_t>(bins), 0.0)};
  if (kernels::histc_range_is_finite(lo, hi, bins)) kernels::histc(x, n, h);
  else kernels::histc_wide(x, n, h);
  return h;
}

}  // namespace lowbit
