// llama.cpp's original 32-weight block formats, bit for bit:
//   q4_0  [f16 d][16 B nibbles]              w = d·(q-8)
//   q4_1  [f16 d][f16 m][16 B nibbles]       w = d·q + m
//   q5_0  [f16 d][u32 5th bits][16 B]        w = d·(q-16)
//   q5_1  [f16 d][f16 m][u32 5th bits][16 B] w = d·q + m
//   q8_0  [f16 d][32 × int8]                 w = d·q
// Inside a block, byte j holds weight j in its low nibble and weight j+16 in its
// high one; bit i of the 32-bit word holds the fifth bit of weight i.
//
// Encoding follows ggml_quantize_chunk: without an importance matrix each type uses
// llama.cpp's plain reference rounding (abs-max or min/max scale); with one, the
// 4- and 5-bit types search the scale (and minimum) that minimises the squared error
// weighted by importance·sqrt(sigma² + x²), while q8_0 ignores it.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/blocks/block_type.hpp"
#include "lowbit/quant/blocks/grid.hpp"
#include "lowbit/quant/blocks/ref_math.hpp"
#include "lowbit/quant/blocks/search.hpp"

namespace lowbit::blocks {

namespace impl {

inline constexpr int qk32 = 32;

/// The 4-bit code of weight i (0..31) of a block's nibble array.
inline std::uint8_t nibble(const std::uint8_t* qs, int i) {
  return i < 16 ? static_cast<std::uint8_t>(qs[i] & 0x0F) : static_cast<std::uint8_t>(qs[i - 16] >> 4);
}

/// Packs 32 codes' low nibbles: weight j low, weight j+16 high.
inline void pack_nibbles(const std::uint8_t* codes, std::uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<std::uint8_t>((codes[j] & 0x0F) | ((codes[j + 16] & 0x0F) << 4));
}

/// The fifth bits of 32 codes, weight i at bit i.
inline std::uint32_t fifth_bits(const std::uint8_t* codes) {
  std::uint32_t qh = 0;
  for (int i = 0; i < qk32; ++i) qh |= static_cast<std::uint32_t>((codes[i] >> 4) & 1u) << i;
  return qh;
}

// ---- per-block encoders -----------------------------------------------------

/// q4_0 and q5_0 without importance: d = max/-half puts the extreme weight on code 0,
/// codes are trunc(x/d + half + 0.5) capped at 2·half-1, written into `codes`.
inline float symmetric_ref_codes(const float* x, int half, std::uint8_t* codes) {
  float amax = 0.0f;
  const float d = ref::signed_abs_max(qk32, x, amax) / static_cast<float>(-half);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const float offset = static_cast<float>(half) + 0.5f;
  for (int j = 0; j < qk32; ++j) {
    const int q = ref::truncate_to_int8(x[j] * id + offset);
    codes[j] = static_cast<std::uint8_t>(q < 2 * half - 1 ? q : 2 * half - 1);
  }
  return d;
}

/// q4_1 and q5_1 without importance: d = (max-min)/top and m = min, codes
/// trunc((x-min)/d + 0.5); q4_1 caps them at 15, q5_1 does not (llama.cpp's
/// two reference functions differ there; in range it cannot matter).
inline void affine_ref_codes(const float* x, int top, bool cap, float& d, float& m, std::uint8_t* codes) {
  float min = FLT_MAX;
  float max = -FLT_MAX;
  for (int j = 0; j < qk32; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  d = (max - min) / static_cast<float>(top);
  m = min;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < qk32; ++j) {
    const float v = (x[j] - min) * id + 0.5f;
    if (cap) {
      const int q = ref::truncate_to_int8(v);
      codes[j] = static_cast<std::uint8_t>(q < top ? q : top);
    } else {
      codes[j] = ref::truncate_to_byte(v);
    }
  }
}

/// With importance, symmetric: the weighted scale search over codes 0..2·half-1.
inline float symmetric_weighted_codes(const float* x, const float* qw, float sigma2, int half, std::uint8_t* codes) {
  float w[qk32];
  std::int8_t L[qk32];
  ref::importance_weights(x, qw, sigma2, qk32, w);
  const float d = ref::symmetric_search(qk32, half, x, L, w);
  for (int j = 0; j < qk32; ++j) codes[j] = static_cast<std::uint8_t>(L[j]);
  return d;
}

/// With importance, affine: the weighted scale-and-minimum search over 0..top.
inline void affine_weighted_codes(const float* x, const float* qw, float sigma2, int top, float& d, float& m,
                                  std::uint8_t* codes) {
  float w[qk32];
  ref::importance_weights(x, qw, sigma2, qk32, w);
  float neg_min = 0.0f;
  d = ref::affine_search(qk32, top, x, w, codes, &neg_min, {-0.9f, 0.05f, 36, false});
  m = -neg_min;
}

/// Writes a 5-bit block body: the fifth-bit word at `qh`, nibbles at `qs`.
inline void store_five_bit(const std::uint8_t* codes, std::uint8_t* qh, std::uint8_t* qs) {
  ref::store_u32(qh, fifth_bits(codes));
  pack_nibbles(codes, qs);
}

/// The 5-bit code of weight i from a block's fifth-bit word and nibbles.
inline std::uint8_t five_bit(std::uint32_t qh, const std::uint8_t* qs, int i) {
  return static_cast<std::uint8_t>(nibble(qs, i) | (((qh >> i) & 1u) << 4));
}

/// Runs `block(x_block, importance_block_or_null, sigma2, out_block)` over the
/// blocks of one row; sigma² (of the whole row) is computed only with importance.
template <class Block>
inline void for_each_block(const float* x, std::uint8_t* out, Index n, const float* importance, Index bytes, Block block) {
  const float sigma2 = importance ? ref::row_sigma2(x, n) : 0.0f;
  for (Index ib = 0; ib < n / qk32; ++ib)
    block(x + qk32 * ib, importance ? importance + qk32 * ib : nullptr, sigma2, out + bytes * ib);
}

}  // namespace impl

// ---- q4_0 -------------------------------------------------------------------

inline void quantize_row_q4_0(const float* x, std::uint8_t* out, Index n, const float* importance) {
  impl::for_each_block(x, out, n, importance, 18, [](const float* xb, const float* qw, float sigma2, std::uint8_t* b) {
    std::uint8_t codes[impl::qk32];
    const float d = qw ? impl::symmetric_weighted_codes(xb, qw, sigma2, 8, codes) : impl::symmetric_ref_codes(xb, 8, codes);
    impl::ref::store_f16(b, d);
    impl::pack_nibbles(codes, b + 2);
  });
}

inline void dequantize_row_q4_0(const std::uint8_t* in, float* y, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib, in += 18, y += impl::qk32) {
    const float d = impl::ref::load_f16(in);
    for (int j = 0; j < impl::qk32; ++j) y[j] = static_cast<float>(impl::nibble(in + 2, j) - 8) * d;
  }
}

inline void grid_row_q4_0(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib) g[ib] = {impl::ref::load_f16(in + 18 * ib), 0.0f};
}

inline void codes_row_q4_0(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    for (int j = 0; j < impl::qk32; ++j) codes[impl::qk32 * ib + j] = impl::nibble(in + 18 * ib + 2, j);
}

inline void set_codes_row_q4_0(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::check_codes(codes, n, BlockType::q4_0);
  for (Index ib = 0; ib < n / impl::qk32; ++ib) impl::pack_nibbles(codes + impl::qk32 * ib, row + 18 * ib + 2);
}

// ---- q4_1 -------------------------------------------------------------------

inline void quantize_row_q4_1(const float* x, std::uint8_t* out, Index n, const float* importance) {
  impl::for_each_block(x, out, n, importance, 20, [](const float* xb, const float* qw, float sigma2, std::uint8_t* b) {
    std::uint8_t codes[impl::qk32];
    float d = 0.0f;
    float m = 0.0f;
    if (qw)
      impl::affine_weighted_codes(xb, qw, sigma2, 15, d, m, codes);
    else
      impl::affine_ref_codes(xb, 15, true, d, m, codes);
    impl::ref::store_f16(b, d);
    impl::ref::store_f16(b + 2, m);
    impl::pack_nibbles(codes, b + 4);
  });
}

inline void dequantize_row_q4_1(const std::uint8_t* in, float* y, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib, in += 20, y += impl::qk32) {
    const float d = impl::ref::load_f16(in);
    const float m = impl::ref::load_f16(in + 2);
    for (int j = 0; j < impl::qk32; ++j) y[j] = static_cast<float>(impl::nibble(in + 4, j)) * d + m;
  }
}

inline void grid_row_q4_1(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    g[ib] = {impl::ref::load_f16(in + 20 * ib), -impl::ref::load_f16(in + 20 * ib + 2)};
}

inline void codes_row_q4_1(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    for (int j = 0; j < impl::qk32; ++j) codes[impl::qk32 * ib + j] = impl::nibble(in + 20 * ib + 4, j);
}

inline void set_codes_row_q4_1(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::check_codes(codes, n, BlockType::q4_1);
  for (Index ib = 0; ib < n / impl::qk32; ++ib) impl::pack_nibbles(codes + impl::qk32 * ib, row + 20 * ib + 4);
}

// ---- q5_0 -------------------------------------------------------------------

inline void quantize_row_q5_0(const float* x, std::uint8_t* out, Index n, const float* importance) {
  impl::for_each_block(x, out, n, importance, 22, [](const float* xb, const float* qw, float sigma2, std::uint8_t* b) {
    std::uint8_t codes[impl::qk32];
    const float d =
        qw ? impl::symmetric_weighted_codes(xb, qw, sigma2, 16, codes) : impl::symmetric_ref_codes(xb, 16, codes);
    impl::ref::store_f16(b, d);
    impl::store_five_bit(codes, b + 2, b + 6);
  });
}

inline void dequantize_row_q5_0(const std::uint8_t* in, float* y, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib, in += 22, y += impl::qk32) {
    const float d = impl::ref::load_f16(in);
    const std::uint32_t qh = impl::ref::load_u32(in + 2);
    for (int j = 0; j < impl::qk32; ++j) y[j] = static_cast<float>(impl::five_bit(qh, in + 6, j) - 16) * d;
  }
}

inline void grid_row_q5_0(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib) g[ib] = {impl::ref::load_f16(in + 22 * ib), 0.0f};
}

inline void codes_row_q5_0(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib) {
    const std::uint8_t* b = in + 22 * ib;
    const std::uint32_t qh = impl::ref::load_u32(b + 2);
    for (int j = 0; j < impl::qk32; ++j) codes[impl::qk32 * ib + j] = impl::five_bit(qh, b + 6, j);
  }
}

inline void set_codes_row_q5_0(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::check_codes(codes, n, BlockType::q5_0);
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    impl::store_five_bit(codes + impl::qk32 * ib, row + 22 * ib + 2, row + 22 * ib + 6);
}

// ---- q5_1 -------------------------------------------------------------------

inline void quantize_row_q5_1(const float* x, std::uint8_t* out, Index n, const float* importance) {
  impl::for_each_block(x, out, n, importance, 24, [](const float* xb, const float* qw, float sigma2, std::uint8_t* b) {
    std::uint8_t codes[impl::qk32];
    float d = 0.0f;
    float m = 0.0f;
    if (qw)
      impl::affine_weighted_codes(xb, qw, sigma2, 31, d, m, codes);
    else
      impl::affine_ref_codes(xb, 31, false, d, m, codes);
    impl::ref::store_f16(b, d);
    impl::ref::store_f16(b + 2, m);
    impl::store_five_bit(codes, b + 4, b + 8);
  });
}

inline void dequantize_row_q5_1(const std::uint8_t* in, float* y, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib, in += 24, y += impl::qk32) {
    const float d = impl::ref::load_f16(in);
    const float m = impl::ref::load_f16(in + 2);
    const std::uint32_t qh = impl::ref::load_u32(in + 4);
    for (int j = 0; j < impl::qk32; ++j) y[j] = static_cast<float>(impl::five_bit(qh, in + 8, j)) * d + m;
  }
}

inline void grid_row_q5_1(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    g[ib] = {impl::ref::load_f16(in + 24 * ib), -impl::ref::load_f16(in + 24 * ib + 2)};
}

inline void codes_row_q5_1(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib) {
    const std::uint8_t* b = in + 24 * ib;
    const std::uint32_t qh = impl::ref::load_u32(b + 4);
    for (int j = 0; j < impl::qk32; ++j) codes[impl::qk32 * ib + j] = impl::five_bit(qh, b + 8, j);
  }
}

inline void set_codes_row_q5_1(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::check_codes(codes, n, BlockType::q5_1);
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    impl::store_five_bit(codes + impl::qk32 * ib, row + 24 * ib + 4, row + 24 * ib + 8);
}

// ---- q8_0 -------------------------------------------------------------------
// Codes are the stored int8 plus 128, so they index levels -128..127.

/// q8_0 ignores importance, as llama.cpp's quantize_q8_0 does.
inline void quantize_row_q8_0(const float* x, std::uint8_t* out, Index n, const float* /*importance*/) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib, x += impl::qk32, out += 34) {
    float amax = 0.0f;
    for (int j = 0; j < impl::qk32; ++j) amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    impl::ref::store_f16(out, d);
    // roundf (half away from zero) here, unlike the searches' nearest_int.
    for (int j = 0; j < impl::qk32; ++j) out[2 + j] = impl::ref::truncate_to_byte(std::round(x[j] * id));
  }
}

inline void dequantize_row_q8_0(const std::uint8_t* in, float* y, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib, in += 34, y += impl::qk32) {
    const float d = impl::ref::load_f16(in);
    for (int j = 0; j < impl::qk32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(in[2 + j])) * d;
  }
}

inline void grid_row_q8_0(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib) g[ib] = {impl::ref::load_f16(in + 34 * ib), 0.0f};
}

inline void codes_row_q8_0(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    for (int j = 0; j < impl::qk32; ++j) codes[impl::qk32 * ib + j] = static_cast<std::uint8_t>(in[34 * ib + 2 + j] ^ 0x80u);
}

inline void set_codes_row_q8_0(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  for (Index ib = 0; ib < n / impl::qk32; ++ib)
    for (int j = 0; j < impl::qk32; ++j) row[34 * ib + 2 + j] = static_cast<std::uint8_t>(codes[impl::qk32 * ib + j] ^ 0x80u);
}

}  // namespace lowbit::blocks
