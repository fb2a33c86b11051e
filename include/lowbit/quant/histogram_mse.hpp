// HistogramMse: scale search that minimises the quantization MSE estimated from a
// histogram of the slice.
//
// TorchCompatible reproduces PyTorch 1.13's HistogramObserver (one forward call,
// then calculate_qparams) step by step, including its float32 arithmetic:
//  * the histogram comes from torch.histc(x, 2048, min=int(min), max=int(max)):
//    the range is truncated to integers, and only when both truncate to the same
//    integer does histc fall back to the data's own min and max (then ±1 if the
//    data are constant). Weights inside (-1, 1) are therefore binned over their
//    true range, while wider tensors lose the values outside the integer range —
//    a PyTorch quirk that bit-compatibility has to keep;
//  * _non_linear_param_search walks quantile bounds inward in steps of 1e-5 and
//    stops at the first increase of the L2 error, which _compute_quantization_error
//    models with 256 destination bins whatever the target bit width;
//  * the result [new_min, new_max] becomes the format's symmetric scale.
// TrueGrid instead bins [min, max] as they are and evaluates, for each candidate
// clipping threshold, the exact squared error of the format's own 2^B - 1 (or 2^B)
// level grid integrated over the histogram (uniform density inside each bin).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "lowbit/quant/format.hpp"
#include "lowbit/quant/histogram.hpp"
#include "lowbit/quant/kernels.hpp"

namespace lowbit {

enum class HistogramMode { TorchCompatible, TrueGrid };

namespace detail {

/// c10::div_floor_floating in float32: Python's floor division a // b.
inline float div_floor(float a, float b) {
  if (b == 0.0f) return a / b;
  const float mod = std::fmod(a, b);
  float div = (a - mod) / b;
  if (mod != 0.0f && ((b < 0.0f) != (mod < 0.0f))) div -= 1.0f;
  if (div == 0.0f) return std::copysign(0.0f, a / b);
  float floordiv = std::floor(div);
  if (div - floordiv > 0.5f) floordiv += 1.0f;
  return floordiv;
}

/// HistogramObserver._compute_quantization_error for src bins [start, end], in the
/// float32 operation order PyTorch executes (only the final sum is in double).
inline double torch_quantization_error(const std::vector<float>& hist, float min_val, float max_val,
                                       Index start, Index end, int dst_nbins) {
  const auto bins = static_cast<Index>(hist.size());
  const double bin_width_d = (static_cast<double>(max_val) - static_cast<double>(min_val)) /
                             static_cast<double>(bins);
  const double dst_width_d =
      bin_width_d * static_cast<double>(end - start + 1) / static_cast<double>(dst_nbins);
  if (dst_width_d == 0.0) return 0.0;
  const auto bw = static_cast<float>(bin_width_d);
  const auto dw = static_cast<float>(dst_width_d);
  const auto half = static_cast<float>(dst_width_d / 2);
  const auto neg_half = static_cast<float>(-dst_width_d / 2);
  const float neg_half_cube = neg_half * neg_half * neg_half;
  const float half_cube = half * half * half;
  const float whole_bin = (half_cube - neg_half_cube) / 3.0f;
  const float last = static_cast<float>(dst_nbins - 1);
  double sum = 0.0;
  for (Index i = 0; i < bins; ++i) {
    const float count = hist[static_cast<std::size_t>(i)];
    if (count == 0.0f) continue;  // every term carries the factor density = 0
    const float begin = static_cast<float>(i - start) * bw;
    const float end_pos = begin + bw;
    const float dst_begin = std::clamp(div_floor(begin, dw), 0.0f, last);
    const float dst_begin_center = (dst_begin + 0.5f) * dw;
    const float dst_end = std::clamp(div_floor(end_pos, dw), 0.0f, last);
    const float density = count / bw;
    const float delta_begin = begin - dst_begin_center;
    const float t1 = density * ((half_cube - delta_begin * delta_begin * delta_begin) / 3.0f);
    const float t2 = (dst_end - dst_begin - 1.0f) * (density * whole_bin);
    const float dst_end_center = dst_end * dw + half;
    const float delta_end = end_pos - dst_end_center;
    const float t3 = density * ((delta_end * delta_end * delta_end - neg_half_cube) / 3.0f);
    float norm = t1;
    norm = norm + t2;
    norm = norm + t3;
    sum += norm;
  }
  return sum;
}

/// HistogramObserver._non_linear_param_search: returns [new_min, new_max].
inline std::pair<float, float> torch_param_search(const std::vector<float>& hist, float min_val,
                                                  float max_val, int dst_nbins) {
  const auto bins = static_cast<Index>(hist.size());
  std::vector<float> csum(hist.size());
  double run = 0.0, total = 0.0;
  for (std::size_t i = 0; i < hist.size(); ++i) {
    run += hist[i];
    csum[i] = static_cast<float>(run);  // torch.cumsum accumulates in double on CPU
    total += hist[i];
  }
  constexpr double step = 1e-5;
  double alpha = 0.0, beta = 1.0, norm_min = std::numeric_limits<double>::infinity();
  Index start = 0, end = bins - 1;
  while (alpha < beta) {
    const double next_alpha = alpha + step;
    const double next_beta = beta - step;
    // cSum is non-decreasing, so PyTorch's linear scans equal these searches.
    const auto lo_t = static_cast<float>(next_alpha * total);
    const auto hi_t = static_cast<float>(next_beta * total);
    const auto l_it = std::lower_bound(csum.begin() + start, csum.begin() + end, lo_t);
    const Index l = l_it - csum.begin();
    // last r in (start, end] with csum[r] <= hi_t, else start
    const auto r_it = std::upper_bound(csum.begin() + start + 1, csum.begin() + end + 1, hi_t);
    const Index r = (r_it - csum.begin()) - 1 >= start + 1 ? (r_it - csum.begin()) - 1 : start;
    Index next_start = start, next_end = end;
    if (l - start > end - r) {
      next_start = l;
      alpha = next_alpha;
    } else {
      next_end = r;
      beta = next_beta;
    }
    if (next_start == start && next_end == end) continue;
    const double norm = torch_quantization_error(hist, min_val, max_val, next_start, next_end, dst_nbins);
    if (norm > norm_min) break;
    norm_min = norm;
    start = next_start;
    end = next_end;
  }
  const float bin_width = (max_val - min_val) / static_cast<float>(bins);
  const float lo_off = bin_width * static_cast<float>(start);
  const float hi_off = bin_width * static_cast<float>(end + 1);
  return {min_val + lo_off, min_val + hi_off};
}

/// 0 for ranges whose float32 error model stays finite (span ≤ 2^48), else the
/// power of two that brings the span back to that size.
inline int search_exponent(float min_val, float max_val) {
  const double span = static_cast<double>(max_val) - static_cast<double>(min_val);
  constexpr double limit = 281474976710656.0;  // 2^48
  if (!(span > limit)) return 0;
  return static_cast<int>(std::ceil(std::log2(span / limit)));
}

/// histc's range for HistogramObserver's first call: int(min), int(max), falling
/// back to the data range when those agree, then widening a constant range by 1.
inline std::pair<float, float> torch_histc_range(float min_val, float max_val) {
  double lo = std::trunc(static_cast<double>(min_val));
  double hi = std::trunc(static_cast<double>(max_val));
  if (lo == hi) {
    lo = min_val;
    hi = max_val;
  }
  if (lo == hi) {
    lo -= 1;
    hi += 1;
  }
  return {static_cast<float>(lo), static_cast<float>(hi)};
}

/// ∫_a^b (x - level)^2 dx.
inline double squared_error_integral(double a, double b, double level) {
  const double u = a - level, v = b - level;
  return (v * v * v - u * u * u) / 3.0;
}

/// Exact L2 error of the grid {q·s : qmin ≤ q ≤ qmax} on a histogram whose mass is
/// spread uniformly within each bin.
inline double grid_error(const Histogram& h, double s, int qmin, int qmax) {
  const double width = (static_cast<double>(h.hi) - h.lo) / static_cast<double>(h.bins());
  double err = 0.0;
  for (Index b = 0; b < h.bins(); ++b) {
    const double c = h.counts[static_cast<std::size_t>(b)];
    if (c == 0.0) continue;
    double u = h.lo + width * static_cast<double>(b);
    const double end = u + width;
    double e = 0.0;
    while (u < end) {
      // the level that covers u, and the decision boundary above it
      const double q = std::clamp(std::floor(u / s + 0.5), static_cast<double>(qmin),
                                  static_cast<double>(qmax));
      const double boundary = q >= qmax ? end : (q + 0.5) * s;
      const double v = std::min(end, std::max(boundary, u));
      if (v <= u) {  // u sits exactly on a boundary: step past it
        u = std::nextafter(u, end);
        continue;
      }
      e += squared_error_integral(u, v, q * s);
      u = v;
    }
    err += c / width * e;
  }
  return err;
}

}  // namespace detail

/// Histogram-MSE scale search. `bins` = 2048 as PyTorch; `candidates` is the
/// number of clipping thresholds TrueGrid tries (m·k/candidates, k = 1…candidates).
template <HistogramMode Mode = HistogramMode::TorchCompatible>
struct HistogramMse {
  static constexpr const char* name =
      Mode == HistogramMode::TorchCompatible ? "hist" : "hist-true";
  Index bins = 2048;
  Index candidates = 512;

  [[nodiscard]] SliceScale scale(const FormatInfo& f, const float* x, Index n, SliceStats s) const {
    if constexpr (Mode == HistogramMode::TorchCompatible) {
      return torch_scale(f, x, n, s);
    } else {
      return true_grid_scale(f, x, n, s);
    }
  }
  template <QuantFormat F>
  [[nodiscard]] float scale(const float* x, Index n, SliceStats s) const {
    return scale(F::info(), x, n, s).scale;
  }

  /// PyTorch's [new_min, new_max] for these values (the range it would keep).
  [[nodiscard]] std::pair<float, float> torch_range(const float* x, Index n, SliceStats s) const {
    const auto [lo, hi] = detail::torch_histc_range(s.min, s.max);
    const Histogram h = make_histogram(x, n, lo, hi, bins);
    std::vector<float> counts(h.counts.begin(), h.counts.end());
    // The search's error model cubes bin widths in float32, which overflows for
    // ranges beyond ~2^51 (weights near ±FLT_MAX). Its decisions are invariant
    // under scaling min/max by a power of two (exact in float), so such ranges
    // are searched scaled down and the result scaled back: finite, and for every
    // range PyTorch can handle the scale is 1 and the result unchanged.
    const int e = detail::search_exponent(s.min, s.max);
    const auto [a, b] = detail::torch_param_search(counts, std::ldexp(s.min, -e), std::ldexp(s.max, -e), 256);
    return {std::ldexp(a, e), std::ldexp(b, e)};
  }

 private:
  SliceScale torch_scale(const FormatInfo& f, const float* x, Index n, SliceStats s) const {
    const auto [new_min, new_max] = torch_range(x, n, s);
    const float sc = f.scale_for(new_min, new_max);
    return {sc, f.zero_for(f.effective_range(new_min, new_max).first, sc)};
  }

  SliceScale true_grid_scale(const FormatInfo& f, const float* x, Index n, SliceStats s) const {
    const auto [lo, hi] = f.effective_range(s.min, s.max);
    auto candidate = [&](float p) {
      const float sc = f.scale_for(p * lo, p * hi);
      return SliceScale{sc, f.zero_for(p * lo, sc)};
    };
    if (s.min == s.max) return candidate(1.0f);
    const Histogram h = make_histogram(x, n, s.min, s.max, bins);
    SliceScale best_scale = candidate(1.0f);
    double best = std::numeric_limits<double>::infinity();
    for (Index k = candidates; k >= 1; --k) {
      const SliceScale c = candidate(static_cast<float>(k) / static_cast<float>(candidates));
      const auto z = static_cast<int>(c.zero);
      const double err = detail::grid_error(h, c.scale, f.qmin - z, f.qmax - z);
      if (err < best) {
        best = err;
        best_scale = c;
      }
    }
    return best_scale;
  }
};

}  // namespace lowbit
