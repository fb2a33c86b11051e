// llama.cpp's affine (scale and minimum) search, ref::affine_search, run on one
// sub-block per SIMD lane. The scalar search spends ~400 float operations per weight
// (21 or more trial scales, each a rounding pass, three weighted sums and an error
// pass) and is most of the time to write a q4_k / q5_k / q2_k file; lanes make it
// several times faster with the same bytes.
//
// Bit-identity with the scalar reference, not closeness: each lane performs exactly
// the IEEE operations of ref::affine_search, in its order — sums accumulated weight
// by weight, no fused multiply-add (xsimd's operator* and operator+ are separate
// instructions; the project builds with -ffp-contract=off), llama.cpp's nearest_int
// by the same bit trick, and every data-dependent branch of the scalar code taken as
// a per-lane select. tests/quant/test_blocks_kquants.cpp holds the two to equal
// bytes on random and degenerate sub-blocks.
#pragma once

#include <cmath>
#include <cstdint>

#include <xsimd/xsimd.hpp>

#include "lowbit/quant/blocks/search.hpp"

namespace lowbit::blocks::impl::simd {

using lanes_f = xsimd::batch<float>;
using lanes_i = xsimd::batch<std::int32_t>;
inline constexpr int lane_count = static_cast<int>(lanes_f::size);

/// ref::nearest_int per lane (the float 1.5·2^23 shift, then the low mantissa bits).
inline lanes_i nearest_int(lanes_f v) {
  const lanes_i bits = xsimd::bitwise_cast<lanes_i>(v + lanes_f(12582912.0f));
  return (bits & lanes_i(0x007FFFFF)) - lanes_i(0x00400000);
}

/// -v as the scalar code's unary minus: the sign bit flipped. (xsimd 8's AVX-512
/// negation is 0 - v, which makes -(+0) +0 where the scalar -0.0f is -0.)
inline lanes_f negate(lanes_f v) { return xsimd::bitwise_xor(v, lanes_f(-0.0f)); }

/// clamp(nearest_int(v), 0, nmax) as a float, as ref::affine_search's level().
inline lanes_f level(lanes_f v, lanes_i nmax) {
  return xsimd::to_float(xsimd::min(xsimd::max(nearest_int(v), lanes_i(0)), nmax));
}

/// ref::affine_search for lane_count sub-blocks of N weights, one per lane:
/// x[i] and w[i] hold weight i of every lane's sub-block (transposed). Writes each
/// lane's codes to L[i] (as floats, 0..nmax), its scale and -min.
template <int N>
void affine_search_lanes(const lanes_f* x, const lanes_f* w, int nmax, ref::AffineSearch s, lanes_f* L,
                         lanes_f& scale_out, lanes_f& neg_min_out) {
  const lanes_i nmax_i(nmax);
  lanes_f min = x[0], max = x[0];
  lanes_f sum_w = w[0];
  lanes_f sum_x = sum_w * x[0];
  for (int i = 1; i < N; ++i) {
    min = xsimd::select(x[i] < min, x[i], min);
    max = xsimd::select(x[i] > max, x[i], max);
    sum_w = sum_w + w[i];
    sum_x = sum_x + w[i] * x[i];
  }
  min = xsimd::select(min > lanes_f(0.0f), lanes_f(0.0f), min);
  const lanes_f first_min = min;
  const auto flat = max <= min;  // the scalar search returns at once: codes 0, scale 0, -min
  const auto error = [&](lanes_f scale, lanes_f mn, const lanes_f* q) {
    lanes_f e(0.0f);
    for (int i = 0; i < N; ++i) {
      lanes_f diff = scale * q[i] + mn - x[i];
      diff = s.use_mad ? xsimd::abs(diff) : diff * diff;
      e = e + w[i] * diff;
    }
    return e;
  };
  lanes_f iscale = lanes_f(static_cast<float>(nmax)) / (max - min);
  lanes_f scale = lanes_f(1.0f) / iscale;
  for (int i = 0; i < N; ++i) L[i] = level(iscale * (x[i] - min), nmax_i);
  lanes_f best_error = error(scale, min, L);
  lanes_f aux[N];
  for (int is = 0; s.nstep >= 1 && is <= s.nstep; ++is) {
    iscale = lanes_f(s.rmin + s.rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    lanes_f sum_l(0.0f), sum_l2(0.0f), sum_xl(0.0f);
    for (int i = 0; i < N; ++i) {
      aux[i] = level(iscale * (x[i] - min), nmax_i);
      sum_l = sum_l + w[i] * aux[i];
      sum_l2 = sum_l2 + w[i] * aux[i] * aux[i];
      sum_xl = sum_xl + w[i] * aux[i] * x[i];
    }
    const lanes_f D = sum_w * sum_l2 - sum_l * sum_l;
    lanes_f this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    lanes_f this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    const auto positive = this_min > lanes_f(0.0f);  // refit the scale alone, keep zero exact
    this_min = xsimd::select(positive, lanes_f(0.0f), this_min);
    this_scale = xsimd::select(positive, sum_xl / sum_l2, this_scale);
    const lanes_f cur_error = error(this_scale, this_min, aux);
    const auto take = (D > lanes_f(0.0f)) & (cur_error < best_error);
    for (int i = 0; i < N; ++i) L[i] = xsimd::select(take, aux[i], L[i]);
    best_error = xsimd::select(take, cur_error, best_error);
    scale = xsimd::select(take, this_scale, scale);
    min = xsimd::select(take, this_min, min);
  }
  for (int i = 0; i < N; ++i) L[i] = xsimd::select(flat, lanes_f(0.0f), L[i]);
  scale_out = xsimd::select(flat, lanes_f(0.0f), scale);
  neg_min_out = negate(xsimd::select(flat, first_min, min));  // as the scalar -min: +0 becomes -0
}

}  // namespace lowbit::blocks::impl::simd

namespace lowbit::blocks::impl {

/// How an encoder without importance weights each sub-block's search: q4_k/q5_k by
/// the sub-block's rms plus |x|, q2_k by |x|.
enum class SearchWeights { rms_plus_abs, abs };

inline void search_weights(const float* x, int n, SearchWeights rule, float* w) {
  if (rule == SearchWeights::abs) {
    for (int l = 0; l < n; ++l) w[l] = std::fabs(x[l]);
    return;
  }
  float sum_x2 = 0;
  for (int l = 0; l < n; ++l) sum_x2 += x[l] * x[l];
  const float av_x = std::sqrt(sum_x2 / static_cast<float>(n));
  for (int l = 0; l < n; ++l) w[l] = av_x + std::fabs(x[l]);
}

/// ref::affine_search of `count` consecutive sub-blocks of N weights (sub-block j at
/// x + N·j, its codes at L + N·j), weighted by `rule`, one at a time: the reference.
template <int N>
void affine_searches_ref(const float* x, int count, int nmax, ref::AffineSearch s, SearchWeights rule,
                         std::uint8_t* L, float* scales, float* neg_mins) {
  float w[N];
  for (int j = 0; j < count; ++j) {
    search_weights(x + N * j, N, rule, w);
    scales[j] = ref::affine_search(N, nmax, x + N * j, w, L + N * j, &neg_mins[j], s);
  }
}

/// affine_searches_ref, simd::lane_count sub-blocks at a time (one per lane) and the
/// remainder by the reference: the same scales, minima and codes.
template <int N>
void affine_searches(const float* x, int count, int nmax, ref::AffineSearch s, SearchWeights rule, std::uint8_t* L,
                     float* scales, float* neg_mins) {
  using simd::lanes_f;
  constexpr int lanes = simd::lane_count;
  int j = 0;
  for (; j + lanes <= count; j += lanes) {
    alignas(64) float t[N][lanes];  // t[i][k]: weight i of sub-block j + k
    for (int k = 0; k < lanes; ++k)
      for (int i = 0; i < N; ++i) t[i][k] = x[N * (j + k) + i];
    lanes_f xv[N], wv[N], codes[N];
    for (int i = 0; i < N; ++i) xv[i] = lanes_f::load_aligned(t[i]);
    if (rule == SearchWeights::abs) {
      for (int i = 0; i < N; ++i) wv[i] = xsimd::abs(xv[i]);
    } else {
      lanes_f sum_x2(0.0f);
      for (int i = 0; i < N; ++i) sum_x2 = sum_x2 + xv[i] * xv[i];
      const lanes_f av_x = xsimd::sqrt(sum_x2 / lanes_f(static_cast<float>(N)));
      for (int i = 0; i < N; ++i) wv[i] = av_x + xsimd::abs(xv[i]);
    }
    lanes_f scale, neg_min;
    simd::affine_search_lanes<N>(xv, wv, nmax, s, codes, scale, neg_min);
    for (int i = 0; i < N; ++i) codes[i].store_aligned(t[i]);
    for (int k = 0; k < lanes; ++k)
      for (int i = 0; i < N; ++i) L[N * (j + k) + i] = static_cast<std::uint8_t>(t[i][k]);
    scale.store_unaligned(scales + j);
    neg_min.store_unaligned(neg_mins + j);
  }
  affine_searches_ref<N>(x + N * j, count - j, nmax, s, rule, L + N * j, scales + j, neg_mins + j);
}

}  // namespace lowbit::blocks::impl
