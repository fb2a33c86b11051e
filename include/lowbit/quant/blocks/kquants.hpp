// llama.cpp's k-quant block formats q2_k, q3_k, q4_k, q5_k and q6_k: super-blocks
// of 256 weights whose sub-block scales (and minima) are themselves quantized under
// one or two f16 super-block scales.
//
// quantize_row_* writes the bytes ggml_quantize_chunk writes for one row: llama.cpp's
// reference quantizer when `importance` is null, its importance-weighted one
// otherwise (the two are different algorithms, not one with unit weights).
// dequantize_row_* returns ggml's to_float bit for bit. grid_row_* / codes_row_* /
// set_codes_row_* split a row into its per-sub-block grids and per-weight codes, with
// scale·levels(t)[code] - min reproducing dequantize exactly; GPTQ rounds onto that
// grid and set_codes_row writes its codes back without touching the scales.
// dequantize_row_* decodes through an xsimd path; dequantize_row_*_scalar is the
// reference beside it, equal bit for bit (one multiply, one subtract per weight).
// Likewise quantize_row_q2_k/q4_k/q5_k without importance run their sub-block
// searches one per SIMD lane (search_simd.hpp); quantize_row_*_scalar is the
// reference, the same bytes.
//
// Block layouts (byte offsets; f16 little-endian):
//   q2_k  84 B: scales[16] (4-bit scale | 4-bit min << 4) @0, qs[64] @16, d @80, dmin @82
//   q3_k 110 B: hmask[32] @0, qs[64] @32, scales[12] (16 6-bit scales) @96, d @108
//   q4_k 144 B: d @0, dmin @2, scales[12] (8 6-bit scales and mins) @4, qs[128] @16
//   q5_k 176 B: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48
//   q6_k 210 B: ql[128] @0, qh[64] @128, scales[16] (int8) @192, d @208
// See ref_math.hpp for the float-exactness rules every line here follows.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>

#include <xsimd/xsimd.hpp>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/blocks/block_type.hpp"
#include "lowbit/quant/blocks/grid.hpp"
#include "lowbit/quant/blocks/ref_math.hpp"
#include "lowbit/quant/blocks/search.hpp"
#include "lowbit/quant/blocks/search_simd.hpp"
#include "lowbit/quant/blocks/simd_decode.hpp"

namespace lowbit::blocks {
namespace impl::kquant {

inline constexpr int qk_k = 256;

// ---- scale packings ---------------------------------------------------------------

/// q4_k/q5_k: eight 6-bit scales and eight 6-bit minima in 12 bytes. Sub-blocks
/// 0..3 keep both in bytes 0..7; 4..7 put their low nibbles in bytes 8..11 and
/// their top two bits in the spare high bits of bytes 0..7. Written in ggml's order
/// so that out-of-range codes (which the importance path can produce) pack alike.
inline void pack_scale_min_k4(std::uint8_t* s, const std::uint8_t* ls, const std::uint8_t* lm) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = static_cast<std::uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] = static_cast<std::uint8_t>(s[j - 4] | ((ls[j] >> 4) << 6));
      s[j] = static_cast<std::uint8_t>(s[j] | ((lm[j] >> 4) << 6));
    }
  }
}

inline void unpack_scale_min_k4(int j, const std::uint8_t* s, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

/// q3_k: sixteen 6-bit scale codes (0..63, the scale being code - 32) in 12 bytes:
/// low nibbles of 0..7 and 8..15 share bytes 0..7, the top two bits of sub-block j
/// sit in byte 8 + j%4 at bit 2·(j/4).
inline void pack_q3_scales(std::uint8_t* s, const int* code) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 16; ++j) {
    const int l = code[j];
    if (j < 8)
      s[j] = static_cast<std::uint8_t>(l & 0xF);
    else
      s[j - 8] = static_cast<std::uint8_t>(s[j - 8] | ((l & 0xF) << 4));
    s[8 + j % 4] = static_cast<std::uint8_t>(s[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
  }
}

/// The signed scale (-32..31) of q3_k sub-block j.
inline int q3_scale(const std::uint8_t* s, int j) {
  const int low = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// ---- re-rounding against the stored (f16-rounded) scales --------------------------

/// Affine types: code = round((x + m_j)/d_j) clamped to [0, nmax], for each
/// sub-block of `sub` weights whose effective scale d_j = d·sc_j is non-zero; a
/// sub-block with d_j == 0 keeps the codes its search produced, as in ggml.
inline void requantize_affine(const float* x, int sub, float d, float dmin, const int* sc, const int* m, int nmax,
                              std::uint8_t* L) {
  for (int j = 0; j < qk_k / sub; ++j) {
    const float dj = d * static_cast<float>(sc[j]);
    if (dj == 0.0f) continue;
    const float mj = dmin * static_cast<float>(m[j]);
    for (int i = 0; i < sub; ++i)
      L[sub * j + i] = static_cast<std::uint8_t>(ref::clamp_int(ref::nearest_int((x[sub * j + i] + mj) / dj), 0, nmax));
  }
}

/// Symmetric types (16-weight sub-blocks): code = round(x/d_j) + nmax, the rounded
/// value clamped to [-nmax, nmax-1].
inline void requantize_symmetric(const float* x, float d, const int* sc, int nmax, std::int8_t* L) {
  for (int j = 0; j < 16; ++j) {
    const float dj = d * static_cast<float>(sc[j]);
    if (dj == 0.0f) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<std::int8_t>(ref::clamp_int(ref::nearest_int(x[16 * j + i] / dj), -nmax, nmax - 1) + nmax);
  }
}

// ---- per-type code layouts ----------------------------------------------------------
// Each type's read_codes/write_codes map the 256 codes of a block to its bit planes;
// write_codes rewrites those bytes entirely. grids() gives each sub-block's grid.

/// 2-bit planes shared by q2_k and q3_k: weight 128h + 32s + l is bits 2s..2s+1 of
/// byte 32h + l.
inline void write_2bit(std::uint8_t* qs, const std::uint8_t* L) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const std::uint8_t* c = L + 128 * h + l;
      qs[32 * h + l] =
          static_cast<std::uint8_t>((c[0] & 3) | ((c[32] & 3) << 2) | ((c[64] & 3) << 4) | ((c[96] & 3) << 6));
    }
}

inline int read_2bit(const std::uint8_t* qs, int i) {
  return (qs[(i / 128) * 32 + i % 32] >> (2 * ((i % 128) / 32))) & 3;
}

struct Q2K {
  static constexpr BlockType type = BlockType::q2_k;
  static constexpr int bytes = 84;
  static void write_codes(std::uint8_t* b, const std::uint8_t* L) { write_2bit(b + 16, L); }
  static void read_codes(const std::uint8_t* b, std::uint8_t* L) {
    for (int i = 0; i < qk_k; ++i) L[i] = static_cast<std::uint8_t>(read_2bit(b + 16, i));
  }
  // ggml: (d·(sc & 15))·q - dmin·(sc >> 4)
  static void grids(const std::uint8_t* b, SubBlockGrid* g) {
    const float d = ref::load_f16(b + 80), dmin = ref::load_f16(b + 82);
    for (int j = 0; j < 16; ++j) g[j] = {d * static_cast<float>(b[j] & 0xF), dmin * static_cast<float>(b[j] >> 4)};
  }
};

struct Q3K {
  static constexpr BlockType type = BlockType::q3_k;
  static constexpr int bytes = 110;
  // Code q = low 2 bits | high bit << 2; the high bit of weight i is bit i/32 of
  // hmask[i % 32]. ggml's decoder subtracts 4 when that bit is clear: level q - 4.
  static void write_codes(std::uint8_t* b, const std::uint8_t* L) {
    std::memset(b, 0, 32);
    for (int i = 0; i < qk_k; ++i)
      if (L[i] > 3) b[i % 32] = static_cast<std::uint8_t>(b[i % 32] | (1 << (i / 32)));
    write_2bit(b + 32, L);
  }
  static void read_codes(const std::uint8_t* b, std::uint8_t* L) {
    for (int i = 0; i < qk_k; ++i)
      L[i] = static_cast<std::uint8_t>(read_2bit(b + 32, i) | (((b[i % 32] >> (i / 32)) & 1) << 2));
  }
  // ggml: (d·(s - 32))·(q - 4), no minimum (x - 0 is x, bit for bit).
  static void grids(const std::uint8_t* b, SubBlockGrid* g) {
    const float d = ref::load_f16(b + 108);
    for (int j = 0; j < 16; ++j) g[j] = {d * static_cast<float>(q3_scale(b + 96, j)), 0.0f};
  }
};

/// 4-bit planes shared by q4_k and q5_k: weight 64c + l (l < 32) is the low nibble
/// of qs[32c + l], weight 64c + 32 + l its high one.
inline void write_nibbles_k4(std::uint8_t* qs, const std::uint8_t* L) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l)
      qs[32 * c + l] = static_cast<std::uint8_t>((L[64 * c + l] & 0xF) | ((L[64 * c + l + 32] & 0xF) << 4));
}

inline int read_nibble_k4(const std::uint8_t* qs, int i) { return (qs[(i / 64) * 32 + i % 32] >> (4 * ((i / 32) % 2))) & 0xF; }

/// Grids of q4_k/q5_k: (d·sc_j)·q - dmin·m_j.
inline void grids_k4(const std::uint8_t* b, SubBlockGrid* g) {
  const float d = ref::load_f16(b), dmin = ref::load_f16(b + 2);
  for (int j = 0; j < 8; ++j) {
    int sc = 0, m = 0;
    unpack_scale_min_k4(j, b + 4, sc, m);
    g[j] = {d * static_cast<float>(sc), dmin * static_cast<float>(m)};
  }
}

struct Q4K {
  static constexpr BlockType type = BlockType::q4_k;
  static constexpr int bytes = 144;
  static void write_codes(std::uint8_t* b, const std::uint8_t* L) { write_nibbles_k4(b + 16, L); }
  static void read_codes(const std::uint8_t* b, std::uint8_t* L) {
    for (int i = 0; i < qk_k; ++i) L[i] = static_cast<std::uint8_t>(read_nibble_k4(b + 16, i));
  }
  static void grids(const std::uint8_t* b, SubBlockGrid* g) { grids_k4(b, g); }
};

struct Q5K {
  static constexpr BlockType type = BlockType::q5_k;
  static constexpr int bytes = 176;
  // The low 4 bits as in q4_k (qs at 48); bit 4 of weight i is bit i/32 of qh[i % 32].
  static void write_codes(std::uint8_t* b, const std::uint8_t* L) {
    std::memset(b + 16, 0, 32);
    for (int i = 0; i < qk_k; ++i)
      if (L[i] > 15) b[16 + i % 32] = static_cast<std::uint8_t>(b[16 + i % 32] | (1 << (i / 32)));
    write_nibbles_k4(b + 48, L);
  }
  static void read_codes(const std::uint8_t* b, std::uint8_t* L) {
    for (int i = 0; i < qk_k; ++i)
      L[i] = static_cast<std::uint8_t>(read_nibble_k4(b + 48, i) | (((b[16 + i % 32] >> (i / 32)) & 1) << 4));
  }
  static void grids(const std::uint8_t* b, SubBlockGrid* g) { grids_k4(b, g); }
};

struct Q6K {
  static constexpr BlockType type = BlockType::q6_k;
  static constexpr int bytes = 210;
  // Weight 128c + 32s + l: low nibble in ql[64c + 32(s&1) + l] (low half for s < 2,
  // high half else), top two bits at bit 2s of qh[32c + l].
  static void write_codes(std::uint8_t* b, const std::uint8_t* L) {
    for (int c = 0; c < 2; ++c)
      for (int l = 0; l < 32; ++l) {
        const std::uint8_t* q = L + 128 * c + l;
        b[64 * c + l] = static_cast<std::uint8_t>((q[0] & 0xF) | ((q[64] & 0xF) << 4));
        b[64 * c + l + 32] = static_cast<std::uint8_t>((q[32] & 0xF) | ((q[96] & 0xF) << 4));
        b[128 + 32 * c + l] = static_cast<std::uint8_t>(((q[0] >> 4) & 3) | (((q[32] >> 4) & 3) << 2) |
                                                        (((q[64] >> 4) & 3) << 4) | (((q[96] >> 4) & 3) << 6));
      }
  }
  static void read_codes(const std::uint8_t* b, std::uint8_t* L) {
    for (int i = 0; i < qk_k; ++i) {
      const int c = i / 128, s = (i % 128) / 32, l = i % 32;
      const int low = (b[64 * c + 32 * (s & 1) + l] >> (4 * (s / 2))) & 0xF;
      const int high = (b[128 + 32 * c + l] >> (2 * s)) & 3;
      L[i] = static_cast<std::uint8_t>(low | (high << 4));
    }
  }
  // ggml: d·sc·(q - 32) evaluated as (d·sc)·(q - 32).
  static void grids(const std::uint8_t* b, SubBlockGrid* g) {
    const float d = ref::load_f16(b + 208);
    for (int j = 0; j < 16; ++j) g[j] = {d * static_cast<float>(static_cast<std::int8_t>(b[192 + j])), 0.0f};
  }
};

// ---- encoders, one super-block each ------------------------------------------------

/// q2_k without importance: per 16 weights a |x|-weighted min/max search (least
/// absolute deviation), then scales and minima quantized to 4 bits against the
/// largest of each.
inline constexpr ref::AffineSearch q2k_search{-0.5f, 0.1f, 15, true};

/// encode_q2k_ref after its searches (codes L, scales and -minima of the 16 sub-blocks).
inline void finish_q2k_ref(const float* x, const float* scales, const float* mins, std::uint8_t* L, std::uint8_t* b) {
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  std::uint8_t* s = b;
  float d = 0, dmin = 0;
  if (max_scale > 0) {
    const float iscale = 15.f / max_scale;
    for (int j = 0; j < 16; ++j) s[j] = static_cast<std::uint8_t>(ref::nearest_int(iscale * scales[j]));
    d = ref::store_f16(b + 80, max_scale / 15.f);
  } else {
    std::memset(s, 0, 16);
    d = ref::store_f16(b + 80, 0.f);
  }
  if (max_min > 0) {
    const float iscale = 15.f / max_min;
    for (int j = 0; j < 16; ++j) s[j] = static_cast<std::uint8_t>(s[j] | (ref::nearest_int(iscale * mins[j]) << 4));
    dmin = ref::store_f16(b + 82, max_min / 15.f);
  } else {
    dmin = ref::store_f16(b + 82, 0.f);
  }
  int sc[16], m[16];
  for (int j = 0; j < 16; ++j) {
    sc[j] = s[j] & 0xF;
    m[j] = s[j] >> 4;
  }
  requantize_affine(x, 16, d, dmin, sc, m, 3, L);
  Q2K::write_codes(b, L);
}

inline void encode_q2k_ref(const float* x, std::uint8_t* b) {
  std::uint8_t L[qk_k];
  float scales[16], mins[16];
  affine_searches_ref<16>(x, 16, 3, q2k_search, SearchWeights::abs, L, scales, mins);
  finish_q2k_ref(x, scales, mins, L, b);
}

/// q2_k with importance: qw·sqrt(σ² + x²)-weighted squared-error searches, and the
/// 4-bit scales and minima themselves fitted to those weights (make_qp_quants).
inline void encode_q2k_importance(const float* x, const float* qw, std::uint8_t* b) {
  std::uint8_t L[qk_k], Ls[16], Lm[16];
  float w[16], sw[16], scales[16], mins[16];
  const float sigma2 = ref::row_sigma2(x, qk_k);
  for (int j = 0; j < 16; ++j) {
    sw[j] = ref::importance_weights(x + 16 * j, qw + 16 * j, sigma2, 16, w);
    scales[j] = ref::affine_search(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], {-0.9f, 0.05f, 36, false});
  }
  const float dm = ref::positive_search(16, 15, scales, Ls, sw);
  const float mm = ref::positive_search(16, 15, mins, Lm, sw);
  const float d = ref::store_f16(b + 80, dm);
  const float dmin = ref::store_f16(b + 82, mm);
  int sc[16], m[16];
  for (int j = 0; j < 16; ++j) {
    b[j] = static_cast<std::uint8_t>(Ls[j] | (Lm[j] << 4));
    sc[j] = b[j] & 0xF;
    m[j] = b[j] >> 4;
  }
  requantize_affine(x, 16, d, dmin, sc, m, 3, L);
  Q2K::write_codes(b, L);
}

/// Writes q3_k's scale codes and d, re-rounds the weights against them and packs.
inline void finish_q3k(const float* x, const int* scale_code, float d_value, std::int8_t* L, std::uint8_t* b) {
  pack_q3_scales(b + 96, scale_code);
  const float d = ref::store_f16(b + 108, d_value);
  int sc[16];
  for (int j = 0; j < 16; ++j) sc[j] = q3_scale(b + 96, j);
  requantize_symmetric(x, d, sc, 4, L);
  std::uint8_t codes[qk_k];
  for (int i = 0; i < qk_k; ++i) codes[i] = static_cast<std::uint8_t>(L[i]);
  Q3K::write_codes(b, codes);
}

/// q3_k without importance: x²-weighted coordinate descent per 16 weights, then the
/// signed scales quantized to 6 bits against the one of largest magnitude.
inline void encode_q3k_ref(const float* x, std::uint8_t* b) {
  std::int8_t L[qk_k];
  float scales[16];
  for (int j = 0; j < 16; ++j) scales[j] = ref::q3_search(16, 4, x + 16 * j, L + 16 * j);
  float amax = 0;
  const float max_scale = ref::signed_abs_max(16, scales, amax);
  int code[16] = {};
  float d_value = 0.f;
  if (max_scale != 0) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < 16; ++j) {
      // ggml narrows to int8 before clamping.
      const auto l = static_cast<std::int8_t>(ref::nearest_int(iscale * scales[j]));
      code[j] = ref::clamp_int(l, -32, 31) + 32;
    }
    d_value = 1 / iscale;
  }
  finish_q3k(x, code, d_value, L, b);
}

/// q3_k with importance: weighted symmetric searches per 16 weights, then the
/// scales fitted by the same search under the sub-blocks' summed weights.
inline void encode_q3k_importance(const float* x, const float* qw, std::uint8_t* b) {
  std::int8_t L[qk_k], Ls[16];
  float w[16], sw[16], scales[16];
  const float sigma2 = 2 * ref::sum_squares(x, qk_k) / static_cast<float>(qk_k);
  for (int j = 0; j < 16; ++j) {
    sw[j] = ref::importance_weights(x + 16 * j, qw + 16 * j, sigma2, 16, w);
    scales[j] = ref::symmetric_search(16, 4, x + 16 * j, L + 16 * j, w);
  }
  const float d_block = ref::symmetric_search(16, 32, scales, Ls, sw);
  int code[16];
  for (int j = 0; j < 16; ++j) code[j] = Ls[j];
  finish_q3k(x, code, d_block, L, b);
}

/// Packs q4_k/q5_k scales, d and dmin, re-rounds to [0, nmax] and packs the codes.
template <class T>
void finish_k4(const float* x, const std::uint8_t* ls, const std::uint8_t* lm, float d_value, float dmin_value,
               int nmax, std::uint8_t* L, std::uint8_t* b) {
  pack_scale_min_k4(b + 4, ls, lm);
  const float d = ref::store_f16(b, d_value);
  const float dmin = ref::store_f16(b + 2, dmin_value);
  int sc[8], m[8];
  for (int j = 0; j < 8; ++j) unpack_scale_min_k4(j, b + 4, sc[j], m[j]);
  requantize_affine(x, 32, d, dmin, sc, m, nmax, L);
  T::write_codes(b, L);
}

/// q4_k/q5_k without importance: per 32 weights a (rms + |x|)-weighted min/max
/// search, then scales and minima quantized to 6 bits against the largest of each.
inline constexpr ref::AffineSearch q4k_search{-1.f, 0.1f, 20, false}, q5k_search{-0.5f, 0.1f, 15, false};

/// encode_k4_ref after its searches (codes L, scales and -minima of the 8 sub-blocks).
template <class T>
void finish_k4_ref(const float* x, const float* scales, const float* mins, int nmax, std::uint8_t* L, std::uint8_t* b) {
  std::uint8_t ls[8], lm[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    // ggml narrows to uint8 before taking min(63, ·).
    ls[j] = std::min<std::uint8_t>(63, static_cast<std::uint8_t>(ref::nearest_int(inv_scale * scales[j])));
    lm[j] = std::min<std::uint8_t>(63, static_cast<std::uint8_t>(ref::nearest_int(inv_min * mins[j])));
  }
  finish_k4<T>(x, ls, lm, max_scale / 63.f, max_min / 63.f, nmax, L, b);
}

template <class T>
void encode_k4_ref(const float* x, std::uint8_t* b, int nmax, ref::AffineSearch search) {
  std::uint8_t L[qk_k];
  float scales[8], mins[8];
  affine_searches_ref<32>(x, 8, nmax, search, SearchWeights::rms_plus_abs, L, scales, mins);
  finish_k4_ref<T>(x, scales, mins, nmax, L, b);
}

/// q4_k/q5_k with importance: qw·sqrt(σ² + x²)-weighted searches, then scales and
/// minima fitted to 6 bits under the summed weights. Only q5_k clamps their codes
/// to 63 (q4_k's cannot exceed it unless a scale is negative or NaN).
template <class T>
void encode_k4_importance(const float* x, const float* qw, std::uint8_t* b, int nmax, bool clamp_codes) {
  std::uint8_t L[qk_k], ls[8], lm[8];
  float w[32], sw[8], scales[8], mins[8];
  const float sigma2 = 2 * ref::sum_squares(x, qk_k) / static_cast<float>(qk_k);
  for (int j = 0; j < 8; ++j) {
    sw[j] = ref::importance_weights(x + 32 * j, qw + 32 * j, sigma2, 32, w);
    scales[j] = ref::affine_search(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], {-0.9f, 0.05f, 36, false});
  }
  const float d_block = ref::positive_search(8, 63, scales, ls, sw);
  const float m_block = ref::positive_search(8, 63, mins, lm, sw);
  if (clamp_codes)
    for (int j = 0; j < 8; ++j) {
      ls[j] = std::min<std::uint8_t>(63, ls[j]);
      lm[j] = std::min<std::uint8_t>(63, lm[j]);
    }
  finish_k4<T>(x, ls, lm, d_block, m_block, nmax, L, b);
}

/// q6_k: symmetric searches per 16 weights (x²-weighted, or weighted by the raw
/// importance when given), then the signed scales quantized to int8 against the one
/// of largest magnitude. A super-block of all-zero scales is all zero bytes.
inline void encode_q6k(const float* x, const float* qw, std::uint8_t* b) {
  std::int8_t L[qk_k];
  float scales[16];
  for (int j = 0; j < 16; ++j)
    scales[j] = ref::symmetric_search(16, 32, x + 16 * j, L + 16 * j, qw ? qw + 16 * j : nullptr);
  float max_abs_scale = 0;
  const float max_scale = ref::signed_abs_max(16, scales, max_abs_scale);
  if (max_abs_scale < ref::group_max_eps) {
    std::memset(b, 0, Q6K::bytes);
    return;
  }
  const float iscale = -128.f / max_scale;
  const float d = ref::store_f16(b + 208, 1 / iscale);
  int sc[16];
  for (int j = 0; j < 16; ++j) {
    const auto s = static_cast<std::int8_t>(std::min(127, ref::nearest_int(iscale * scales[j])));
    b[192 + j] = static_cast<std::uint8_t>(s);
    sc[j] = s;
  }
  requantize_symmetric(x, d, sc, 32, L);
  std::uint8_t codes[qk_k];
  for (int i = 0; i < qk_k; ++i) codes[i] = static_cast<std::uint8_t>(L[i]);
  Q6K::write_codes(b, codes);
}

// ---- row drivers --------------------------------------------------------------------

inline Index super_blocks(BlockType t, Index n) {
  lowbit::detail::check(n > 0 && n % qk_k == 0, info(t).name, ": a row of ", n,
                        " weights is not a whole number of super-blocks of 256");
  return n / qk_k;
}

/// Runs `encode(x_block, qw_block_or_null, out_block)` over every super-block.
template <class T, class Encode>
void quantize_row(const float* x, std::uint8_t* out, Index n, const float* importance, Encode encode) {
  const Index nb = super_blocks(T::type, n);
  for (Index i = 0; i < nb; ++i) encode(x + qk_k * i, importance ? importance + qk_k * i : nullptr, out + T::bytes * i);
}

/// A row of super-blocks of an encoder without importance whose sub-blocks of N
/// weights each run an affine search: the searches of up to 16 super-blocks at a time
/// through affine_searches (SIMD lanes across sub-blocks), then
/// finish(x, scales, neg_mins, L, out) per super-block. Same bytes as the reference.
template <class T, int N, class Finish>
void quantize_row_searched(const float* x, std::uint8_t* out, Index n, int nmax, ref::AffineSearch s,
                           SearchWeights rule, Finish finish) {
  constexpr int per = qk_k / N;
  constexpr Index chunk = 16;
  const Index nb = super_blocks(T::type, n);
  std::uint8_t L[qk_k * chunk];
  float scales[per * chunk], mins[per * chunk];
  for (Index i = 0; i < nb; i += chunk) {
    const Index c = std::min(chunk, nb - i);
    affine_searches<N>(x + qk_k * i, static_cast<int>(c) * per, nmax, s, rule, L, scales, mins);
    for (Index k = 0; k < c; ++k)
      finish(x + qk_k * (i + k), scales + per * k, mins + per * k, L + qk_k * k, out + T::bytes * (i + k));
  }
}

/// Decodes as ggml does: each weight is scale·level - min of its sub-block's grid.
template <class T>
void dequantize_row(const std::uint8_t* in, float* y, Index n) {
  const Index nb = super_blocks(T::type, n);
  const std::span<const float> lv = levels(T::type);
  const int sub = static_cast<int>(info(T::type).sub_block);
  SubBlockGrid g[16];
  std::uint8_t codes[qk_k];
  for (Index i = 0; i < nb; ++i) {
    const std::uint8_t* b = in + T::bytes * i;
    T::grids(b, g);
    T::read_codes(b, codes);
    float* yb = y + qk_k * i;
    for (int k = 0; k < qk_k; ++k) {
      const SubBlockGrid& gk = g[k / sub];
      yb[k] = gk.scale * lv[codes[k]] - gk.min;
    }
  }
}

template <class T>
void grid_row(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  const Index nb = super_blocks(T::type, n);
  const Index per = qk_k / info(T::type).sub_block;
  for (Index i = 0; i < nb; ++i) T::grids(in + T::bytes * i, g + per * i);
}

template <class T>
void codes_row(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  const Index nb = super_blocks(T::type, n);
  for (Index i = 0; i < nb; ++i) T::read_codes(in + T::bytes * i, codes + qk_k * i);
}

template <class T>
void set_codes_row(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  const Index nb = super_blocks(T::type, n);
  check_codes(codes, n, T::type);  // before any byte changes: a refused call leaves the row as it was
  for (Index i = 0; i < nb; ++i) T::write_codes(row + T::bytes * i, codes + qk_k * i);
}

// ---- xsimd decoders (q2_k .. q6_k) -------------------------------------------------
// The same two IEEE operations per weight as the scalar path, scale·level then
// minus min, on whole batches; levels are exact small integers in float. q3_k and
// q6_k have min = +0, and x - (+0) is x bit for bit (-0 stays -0, NaN stays NaN),
// so they only multiply.

using simd::affine_batch;
using simd::scale_batch;

inline void dequantize_q2k_simd(const std::uint8_t* in, float* y, Index n) {
  const Index nb = super_blocks(BlockType::q2_k, n);
  float v[128];
  for (Index i = 0; i < nb; ++i) {
    const std::uint8_t* b = in + Q2K::bytes * i;
    SubBlockGrid g[16];
    Q2K::grids(b, g);
    for (int h = 0; h < 2; ++h) {
      const std::uint8_t* qs = b + 16 + 32 * h;
      for (int l = 0; l < 32; ++l) {
        v[l] = static_cast<float>(qs[l] & 3);
        v[l + 32] = static_cast<float>((qs[l] >> 2) & 3);
        v[l + 64] = static_cast<float>((qs[l] >> 4) & 3);
        v[l + 96] = static_cast<float>(qs[l] >> 6);
      }
      for (int s = 0; s < 8; ++s)
        affine_batch(v + 16 * s, 16, g[8 * h + s].scale, g[8 * h + s].min, y + qk_k * i + 128 * h + 16 * s);
    }
  }
}

inline void dequantize_q3k_simd(const std::uint8_t* in, float* y, Index n) {
  const Index nb = super_blocks(BlockType::q3_k, n);
  float v[128];
  for (Index i = 0; i < nb; ++i) {
    const std::uint8_t* b = in + Q3K::bytes * i;
    SubBlockGrid g[16];
    Q3K::grids(b, g);
    for (int h = 0; h < 2; ++h) {
      const std::uint8_t* qs = b + 32 + 32 * h;
      const int hb = 4 * h;  // hmask bit of weight 128h + 32s + l is 4h + s
      for (int l = 0; l < 32; ++l) {
        const int m = b[l] >> hb;
        v[l] = static_cast<float>(((qs[l] & 3) | ((m & 1) << 2)) - 4);
        v[l + 32] = static_cast<float>((((qs[l] >> 2) & 3) | ((m & 2) << 1)) - 4);
        v[l + 64] = static_cast<float>((((qs[l] >> 4) & 3) | (m & 4)) - 4);
        v[l + 96] = static_cast<float>(((qs[l] >> 6) | ((m & 8) >> 1)) - 4);
      }
      for (int s = 0; s < 8; ++s) scale_batch(v + 16 * s, 16, g[8 * h + s].scale, y + qk_k * i + 128 * h + 16 * s);
    }
  }
}

inline void dequantize_q4k_simd(const std::uint8_t* in, float* y, Index n) {
  const Index nb = super_blocks(BlockType::q4_k, n);
  float lo[32], hi[32];
  for (Index i = 0; i < nb; ++i) {
    const std::uint8_t* b = in + Q4K::bytes * i;
    SubBlockGrid g[8];
    grids_k4(b, g);
    for (int c = 0; c < 4; ++c) {
      const std::uint8_t* qs = b + 16 + 32 * c;
      for (int l = 0; l < 32; ++l) {
        lo[l] = static_cast<float>(qs[l] & 0xF);
        hi[l] = static_cast<float>(qs[l] >> 4);
      }
      float* yc = y + qk_k * i + 64 * c;
      affine_batch(lo, 32, g[2 * c].scale, g[2 * c].min, yc);
      affine_batch(hi, 32, g[2 * c + 1].scale, g[2 * c + 1].min, yc + 32);
    }
  }
}

inline void dequantize_q5k_simd(const std::uint8_t* in, float* y, Index n) {
  const Index nb = super_blocks(BlockType::q5_k, n);
  float lo[32], hi[32];
  for (Index i = 0; i < nb; ++i) {
    const std::uint8_t* b = in + Q5K::bytes * i;
    const std::uint8_t* qh = b + 16;
    SubBlockGrid g[8];
    grids_k4(b, g);
    for (int c = 0; c < 4; ++c) {
      const std::uint8_t* qs = b + 48 + 32 * c;
      for (int l = 0; l < 32; ++l) {
        const int h = qh[l] >> (2 * c);
        lo[l] = static_cast<float>((qs[l] & 0xF) | ((h & 1) << 4));
        hi[l] = static_cast<float>((qs[l] >> 4) | ((h & 2) << 3));
      }
      float* yc = y + qk_k * i + 64 * c;
      affine_batch(lo, 32, g[2 * c].scale, g[2 * c].min, yc);
      affine_batch(hi, 32, g[2 * c + 1].scale, g[2 * c + 1].min, yc + 32);
    }
  }
}

inline void dequantize_q6k_simd(const std::uint8_t* in, float* y, Index n) {
  const Index nb = super_blocks(BlockType::q6_k, n);
  float v[128];
  for (Index i = 0; i < nb; ++i) {
    const std::uint8_t* b = in + Q6K::bytes * i;
    SubBlockGrid g[16];
    Q6K::grids(b, g);
    for (int c = 0; c < 2; ++c) {
      const std::uint8_t* ql = b + 64 * c;
      const std::uint8_t* qh = b + 128 + 32 * c;
      for (int l = 0; l < 32; ++l) {
        v[l] = static_cast<float>(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
        v[l + 32] = static_cast<float>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        v[l + 64] = static_cast<float>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        v[l + 96] = static_cast<float>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
      for (int s = 0; s < 8; ++s) scale_batch(v + 16 * s, 16, g[8 * c + s].scale, y + qk_k * i + 128 * c + 16 * s);
    }
  }
}

}  // namespace impl::kquant

// ---- public API -----------------------------------------------------------------------
// x / y / codes hold n weights, n a multiple of 256; a quantized row holds
// row_bytes(t, n) bytes; importance (nullable) holds n weights; a grid row holds
// n / info(t).sub_block entries. Codes index levels(t); set_codes_row rewrites only
// the code bytes of the row, and is an Error (row untouched) for a code >= levels(t).size().

inline void quantize_row_q2_k(const float* x, std::uint8_t* out, Index n, const float* importance) {
  using namespace impl::kquant;
  if (importance == nullptr)
    return quantize_row_searched<Q2K, 16>(x, out, n, 3, q2k_search, impl::SearchWeights::abs, finish_q2k_ref);
  impl::kquant::quantize_row<impl::kquant::Q2K>(
      x, out, n, importance, [](const float* xb, const float* qw, std::uint8_t* b) {
        qw ? impl::kquant::encode_q2k_importance(xb, qw, b) : impl::kquant::encode_q2k_ref(xb, b);
      });
}
inline void quantize_row_q3_k(const float* x, std::uint8_t* out, Index n, const float* importance) {
  impl::kquant::quantize_row<impl::kquant::Q3K>(
      x, out, n, importance, [](const float* xb, const float* qw, std::uint8_t* b) {
        qw ? impl::kquant::encode_q3k_importance(xb, qw, b) : impl::kquant::encode_q3k_ref(xb, b);
      });
}
inline void quantize_row_q4_k(const float* x, std::uint8_t* out, Index n, const float* importance) {
  using namespace impl::kquant;
  if (importance == nullptr)
    return quantize_row_searched<Q4K, 32>(
        x, out, n, 15, q4k_search, impl::SearchWeights::rms_plus_abs,
        [](const float* xb, const float* sc, const float* m, std::uint8_t* L, std::uint8_t* b) {
          finish_k4_ref<Q4K>(xb, sc, m, 15, L, b);
        });
  quantize_row<Q4K>(x, out, n, importance, [](const float* xb, const float* qw, std::uint8_t* b) {
    encode_k4_importance<Q4K>(xb, qw, b, 15, false);
  });
}
inline void quantize_row_q5_k(const float* x, std::uint8_t* out, Index n, const float* importance) {
  using namespace impl::kquant;
  if (importance == nullptr)
    return quantize_row_searched<Q5K, 32>(
        x, out, n, 31, q5k_search, impl::SearchWeights::rms_plus_abs,
        [](const float* xb, const float* sc, const float* m, std::uint8_t* L, std::uint8_t* b) {
          finish_k4_ref<Q5K>(xb, sc, m, 31, L, b);
        });
  quantize_row<Q5K>(x, out, n, importance, [](const float* xb, const float* qw, std::uint8_t* b) {
    encode_k4_importance<Q5K>(xb, qw, b, 31, true);
  });
}

/// The scalar references of the three encoders above without importance (tests).
inline void quantize_row_q2_k_scalar(const float* x, std::uint8_t* out, Index n) {
  impl::kquant::quantize_row<impl::kquant::Q2K>(x, out, n, nullptr, [](const float* xb, const float*, std::uint8_t* b) {
    impl::kquant::encode_q2k_ref(xb, b);
  });
}
inline void quantize_row_q4_k_scalar(const float* x, std::uint8_t* out, Index n) {
  using namespace impl::kquant;
  quantize_row<Q4K>(x, out, n, nullptr, [](const float* xb, const float*, std::uint8_t* b) {
    encode_k4_ref<Q4K>(xb, b, 15, q4k_search);
  });
}
inline void quantize_row_q5_k_scalar(const float* x, std::uint8_t* out, Index n) {
  using namespace impl::kquant;
  quantize_row<Q5K>(x, out, n, nullptr, [](const float* xb, const float*, std::uint8_t* b) {
    encode_k4_ref<Q5K>(xb, b, 31, q5k_search);
  });
}
inline void quantize_row_q6_k(const float* x, std::uint8_t* out, Index n, const float* importance) {
  impl::kquant::quantize_row<impl::kquant::Q6K>(x, out, n, importance, impl::kquant::encode_q6k);
}

inline void dequantize_row_q2_k(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_q2k_simd(in, y, n);
}
inline void dequantize_row_q3_k(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_q3k_simd(in, y, n);
}
inline void dequantize_row_q4_k(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_q4k_simd(in, y, n);
}
inline void dequantize_row_q5_k(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_q5k_simd(in, y, n);
}
inline void dequantize_row_q6_k(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_q6k_simd(in, y, n);
}
/// The scalar references of the xsimd decoders.
inline void dequantize_row_q2_k_scalar(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_row<impl::kquant::Q2K>(in, y, n);
}
inline void dequantize_row_q3_k_scalar(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_row<impl::kquant::Q3K>(in, y, n);
}
inline void dequantize_row_q4_k_scalar(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_row<impl::kquant::Q4K>(in, y, n);
}
inline void dequantize_row_q5_k_scalar(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_row<impl::kquant::Q5K>(in, y, n);
}
inline void dequantize_row_q6_k_scalar(const std::uint8_t* in, float* y, Index n) {
  impl::kquant::dequantize_row<impl::kquant::Q6K>(in, y, n);
}

inline void grid_row_q2_k(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  impl::kquant::grid_row<impl::kquant::Q2K>(in, n, g);
}
inline void grid_row_q3_k(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  impl::kquant::grid_row<impl::kquant::Q3K>(in, n, g);
}
inline void grid_row_q4_k(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  impl::kquant::grid_row<impl::kquant::Q4K>(in, n, g);
}
inline void grid_row_q5_k(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  impl::kquant::grid_row<impl::kquant::Q5K>(in, n, g);
}
inline void grid_row_q6_k(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  impl::kquant::grid_row<impl::kquant::Q6K>(in, n, g);
}

inline void codes_row_q2_k(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  impl::kquant::codes_row<impl::kquant::Q2K>(in, codes, n);
}
inline void codes_row_q3_k(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  impl::kquant::codes_row<impl::kquant::Q3K>(in, codes, n);
}
inline void codes_row_q4_k(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  impl::kquant::codes_row<impl::kquant::Q4K>(in, codes, n);
}
inline void codes_row_q5_k(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  impl::kquant::codes_row<impl::kquant::Q5K>(in, codes, n);
}
inline void codes_row_q6_k(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  impl::kquant::codes_row<impl::kquant::Q6K>(in, codes, n);
}

inline void set_codes_row_q2_k(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::kquant::set_codes_row<impl::kquant::Q2K>(row, codes, n);
}
inline void set_codes_row_q3_k(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::kquant::set_codes_row<impl::kquant::Q3K>(row, codes, n);
}
inline void set_codes_row_q4_k(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::kquant::set_codes_row<impl::kquant::Q4K>(row, codes, n);
}
inline void set_codes_row_q5_k(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::kquant::set_codes_row<impl::kquant::Q5K>(row, codes, n);
}
inline void set_codes_row_q6_k(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::kquant::set_codes_row<impl::kquant::Q6K>(row, codes, n);
}

}  // namespace lowbit::blocks
