// llama.cpp's non-uniform 4-bit formats, bit for bit; both store 32 weights as one
// scale and 16 bytes of nibbles (weight j low, weight j+16 high):
//   iq4_nl  [f16 d][16 B]  w = d·T[q], T llama.cpp's 16-value table -127..113
//   mxfp4   [e8m0 e][16 B] w = 2^(e-128)·F[q], F the E2M1 values doubled (0..±12)
// dequantize_row_* decodes through xsimd; dequantize_row_*_scalar is the reference
// beside it, equal bit for bit (one multiply per weight).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include <xsimd/xsimd.hpp>

#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/blocks/grid.hpp"
#include "lowbit/quant/blocks/legacy.hpp"
#include "lowbit/quant/blocks/ref_math.hpp"
#include "lowbit/quant/blocks/simd_decode.hpp"

namespace lowbit::blocks {

namespace impl {

inline constexpr std::int8_t iq4_nl_table[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                 1,    13,   25,  38,  53,  69,  89,  113};
inline constexpr std::int8_t mxfp4_table[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// The encoders keep llama.cpp's int8 tables; grid.hpp's float levels must agree.
static_assert([] {
  for (int i = 0; i < 16; ++i)
    if (iq4_nl_levels[i] != iq4_nl_table[i] || mxfp4_levels[i] != mxfp4_table[i]) return false;
  return true;
}());

/// The iq4_nl code nearest to v (in units of d), by bisection over the ascending
/// table; an exact midpoint goes to the upper entry, as in llama.cpp.
inline int iq4_nl_nearest(float v) {
  const std::int8_t* t = iq4_nl_table;
  if (v <= static_cast<float>(t[0])) return 0;
  if (v >= static_cast<float>(t[15])) return 15;
  int lo = 0;
  int hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < static_cast<float>(t[mid]))
      hi = mid;
    else
      lo = mid;
  }
  return v - static_cast<float>(t[hi - 1]) < static_cast<float>(t[hi]) - v ? hi - 1 : hi;
}

/// Midpoint k between table entries k and k+1: a half-integer, exact in float.
inline constexpr std::array<float, 15> iq4_nl_midpoints = [] {
  std::array<float, 15> m{};
  for (std::size_t k = 0; k < m.size(); ++k) m[k] = (static_cast<float>(iq4_nl_table[k]) + iq4_nl_table[k + 1]) / 2.0f;
  return m;
}();

/// q[j] = the table value iq4_nl_nearest picks for id·x[j], j < 32, without
/// branches: one select per midpoint, in increasing order, v ≥ midpoint taking the
/// upper entry. The same choice as the bisection's `v − t[k] < t[k+1] − v`: near a
/// midpoint both differences are exact in float (they are below twice |v|'s binade
/// for every midpoint of this table), and away from one rounding cannot make them
/// equal. Bisection branches mispredict on every weight; this is ~5× faster.
inline void iq4_nl_values(const float* x, float id, float* q) {
  using batch = xsimd::batch<float>;
  static_assert(qk32 % batch::size == 0);
  const batch vid(id);
  for (int j = 0; j < qk32; j += static_cast<int>(batch::size)) {
    const batch v = batch::load_unaligned(x + j) * vid;
    batch r(static_cast<float>(iq4_nl_table[0]));
    for (std::size_t k = 0; k < iq4_nl_midpoints.size(); ++k)
      r = xsimd::select(v >= batch(iq4_nl_midpoints[k]), batch(static_cast<float>(iq4_nl_table[k + 1])), r);
    r.store_unaligned(q + j);
  }
}

/// The scalar reference of iq4_nl_values: the bisection of iq4_nl_nearest.
inline void iq4_nl_values_scalar(const float* x, float id, float* q) {
  for (int j = 0; j < qk32; ++j) q[j] = static_cast<float>(iq4_nl_table[iq4_nl_nearest(id * x[j])]);
}

/// Weighted sums sum w·q·x and sum w·q² of the table values reciprocal scale `id`
/// picks, summed in llama.cpp's order (element by element) for bit-exact scales.
inline void iq4_nl_sums(const float* x, const float* w, float id, float& sumqx, float& sumq2) {
  float q[qk32];
  iq4_nl_values(x, id, q);
  sumqx = 0.0f;
  sumq2 = 0.0f;
  for (int j = 0; j < qk32; ++j) {
    sumqx += w[j] * q[j] * x[j];
    sumq2 += w[j] * q[j] * q[j];
  }
}

/// The scale of one iq4_nl block (llama.cpp's quantize_iq4_nl, 15 tries): the
/// least-squares scale of the codes that map the extreme weight onto -127, then
/// of those of the reciprocal scales (k-127)/max for k = -7..7, keeping one only
/// when strictly better. Importance weights are qw·sqrt(sigma² + x²) with sigma²
/// = 2·mean(x²) of this block (not the row); without importance they are x².
inline float iq4_nl_scale(const float* x, const float* qw) {
  const float sigma2 = ref::sum_squares(x, qk32) * (2.0f / static_cast<float>(qk32));
  float w[qk32];
  if (qw)
    ref::importance_weights(x, qw, sigma2, qk32, w);
  else
    for (int j = 0; j < qk32; ++j) w[j] = x[j] * x[j];

  float amax = 0.0f;
  const float max = ref::signed_abs_max(qk32, x, amax);
  if (amax < ref::group_max_eps) return 0.0f;

  const float first = static_cast<float>(iq4_nl_table[0]);
  float sumqx = 0.0f;
  float sumq2 = 0.0f;
  iq4_nl_sums(x, w, 1.0f / (-max / first), sumqx, sumq2);
  float d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
  float best = d * sumqx;
  for (int itry = -7; itry <= 7; ++itry) {
    iq4_nl_sums(x, w, static_cast<float>(itry + iq4_nl_table[0]) / max, sumqx, sumq2);
    if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

/// The mxfp4 code nearest to v at half-scale e: the first of equally near codes
/// wins, so a tie between +0 (code 0) and -0 (code 8) keeps +0.
inline std::uint8_t mxfp4_nearest(float v, float e) {
  int best = 0;
  float best_err = std::fabs(static_cast<float>(mxfp4_table[0]) * e - v);
  for (int i = 1; i < 16; ++i) {
    const float err = std::fabs(static_cast<float>(mxfp4_table[i]) * e - v);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return static_cast<std::uint8_t>(best);
}

/// The shared exponent: 2^(floor(log2 amax) - 2) puts amax in E2M1's top binade
/// [4, 8); llama.cpp converts the float sum to a byte (see truncate_to_byte), so a
/// tiny amax wraps around to a large exponent, which we reproduce.
inline std::uint8_t mxfp4_exponent(float amax) {
  return amax > 0.0f ? ref::truncate_to_byte(std::floor(std::log2(amax)) - 2.0f + 127.0f) : std::uint8_t{0};
}

/// For each byte, the levels of its low and high nibble: one table load per byte
/// in the xsimd decoders instead of two masked lookups.
template <const std::array<float, 16>& L>
inline constexpr auto nibble_pair_levels = [] {
  std::array<std::array<float, 2>, 256> t{};
  for (int b = 0; b < 256; ++b) t[static_cast<std::size_t>(b)] = {L[static_cast<std::size_t>(b & 0xF)], L[static_cast<std::size_t>(b >> 4)]};
  return t;
}();

/// v[j] = L[low nibble of qs[j]], v[j + 16] = L[its high nibble], j < 16.
template <const std::array<float, 16>& L>
inline void nibble_levels(const std::uint8_t* qs, float* v) {
  for (int j = 0; j < qk32 / 2; ++j) {
    const std::array<float, 2>& p = nibble_pair_levels<L>[qs[j]];
    v[j] = p[0];
    v[j + qk32 / 2] = p[1];
  }
}

inline constexpr Index nibble_block_bytes = 18;  // iq4_nl
inline constexpr Index mxfp4_block_bytes = 17;

}  // namespace impl

// ---- iq4_nl -----------------------------------------------------------------

/// Without importance this is quantize_iq4_nl with null weights (the 15-try search
/// with w = x²), which is what ggml_quantize_chunk runs; llama.cpp's
/// quantize_row_iq4_nl_ref (no search) is a different encoder.
inline void quantize_row_iq4_nl(const float* x, std::uint8_t* out, Index n, const float* importance) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib) {
    const float* xb = x + impl::qk32 * ib;
    std::uint8_t* b = out + impl::nibble_block_bytes * ib;
    const float d = impl::iq4_nl_scale(xb, importance ? importance + impl::qk32 * ib : nullptr);
    impl::ref::store_f16(b, d);
    // Codes come from the float scale, before it is rounded to f16.
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    std::uint8_t codes[impl::qk32];
    for (int j = 0; j < impl::qk32; ++j) codes[j] = static_cast<std::uint8_t>(impl::iq4_nl_nearest(id * xb[j]));
    impl::pack_nibbles(codes, b + 2);
  }
}

/// The scalar reference of dequantize_row_iq4_nl: y = d·T[q].
inline void dequantize_row_iq4_nl_scalar(const std::uint8_t* in, float* y, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib, in += impl::nibble_block_bytes, y += impl::qk32) {
    const float d = impl::ref::load_f16(in);
    for (int j = 0; j < impl::qk32; ++j) y[j] = d * static_cast<float>(impl::iq4_nl_table[impl::nibble(in + 2, j)]);
  }
}

/// xsimd decode, bit for bit the scalar one: the table values as floats, times d.
inline void dequantize_row_iq4_nl(const std::uint8_t* in, float* y, Index n) {
  float v[impl::qk32];
  for (Index ib = 0; ib < n / impl::qk32; ++ib, in += impl::nibble_block_bytes, y += impl::qk32) {
    impl::nibble_levels<impl::iq4_nl_levels>(in + 2, v);
    impl::simd::scale_batch(v, impl::qk32, impl::ref::load_f16(in), y);
  }
}

inline void grid_row_iq4_nl(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib) g[ib] = {impl::ref::load_f16(in + impl::nibble_block_bytes * ib), 0.0f};
}

inline void codes_row_iq4_nl(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    for (int j = 0; j < impl::qk32; ++j) codes[impl::qk32 * ib + j] = impl::nibble(in + impl::nibble_block_bytes * ib + 2, j);
}

inline void set_codes_row_iq4_nl(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::check_codes(codes, n, BlockType::iq4_nl);
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    impl::pack_nibbles(codes + impl::qk32 * ib, row + impl::nibble_block_bytes * ib + 2);
}

// ---- mxfp4 ------------------------------------------------------------------

/// mxfp4 ignores importance, as llama.cpp's quantize_mxfp4 does.
inline void quantize_row_mxfp4(const float* x, std::uint8_t* out, Index n, const float* /*importance*/) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib, x += impl::qk32, out += impl::mxfp4_block_bytes) {
    float amax = 0.0f;
    for (int j = 0; j < impl::qk32; ++j)
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
    const std::uint8_t e = impl::mxfp4_exponent(amax);
    const float d = impl::ref::e8m0_half(e);
    out[0] = e;
    std::uint8_t codes[impl::qk32];
    for (int j = 0; j < impl::qk32; ++j) codes[j] = impl::mxfp4_nearest(x[j], d);
    impl::pack_nibbles(codes, out + 1);
  }
}

/// The scalar reference of dequantize_row_mxfp4: y = F[q]·d.
inline void dequantize_row_mxfp4_scalar(const std::uint8_t* in, float* y, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib, in += impl::mxfp4_block_bytes, y += impl::qk32) {
    const float d = impl::ref::e8m0_half(in[0]);
    for (int j = 0; j < impl::qk32; ++j) y[j] = static_cast<float>(impl::mxfp4_table[impl::nibble(in + 1, j)]) * d;
  }
}

/// xsimd decode, bit for bit the scalar one (d·F[q] is F[q]·d in IEEE arithmetic).
inline void dequantize_row_mxfp4(const std::uint8_t* in, float* y, Index n) {
  float v[impl::qk32];
  for (Index ib = 0; ib < n / impl::qk32; ++ib, in += impl::mxfp4_block_bytes, y += impl::qk32) {
    impl::nibble_levels<impl::mxfp4_levels>(in + 1, v);
    impl::simd::scale_batch(v, impl::qk32, impl::ref::e8m0_half(in[0]), y);
  }
}

/// The scale is half the e8m0 power of two, to go with the doubled E2M1 levels.
inline void grid_row_mxfp4(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib) g[ib] = {impl::ref::e8m0_half(in[impl::mxfp4_block_bytes * ib]), 0.0f};
}

inline void codes_row_mxfp4(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    for (int j = 0; j < impl::qk32; ++j) codes[impl::qk32 * ib + j] = impl::nibble(in + impl::mxfp4_block_bytes * ib + 1, j);
}

inline void set_codes_row_mxfp4(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::check_codes(codes, n, BlockType::mxfp4);
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    impl::pack_nibbles(codes + impl::qk32 * ib, row + impl::mxfp4_block_bytes * ib + 1);
}

}  // namespace lowbit::blocks
