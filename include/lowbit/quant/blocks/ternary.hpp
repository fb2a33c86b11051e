// llama.cpp's tq2_0, the ternary format of BitNet b1.58 and TriLMs, bit for bit:
// 256 weights as [64 B of 2-bit codes][f16 d], w = d·(q-1). Byte 32·c + m holds,
// at bits 2l..2l+1, weight 128·c + 32·l + m. The quantizer writes q in 0..2 only
// (the ternary -1, 0, 1 of the block's abs max d); the fourth code decodes as +2·d
// in llama.cpp, so levels(tq2_0) lists it too and every byte pattern has a value.
// dequantize_row_tq2_0 decodes through xsimd beside its bit-identical scalar
// reference dequantize_row_tq2_0_scalar.
#pragma once

#include <cmath>
#include <cstdint>

#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/blocks/grid.hpp"
#include "lowbit/quant/blocks/legacy.hpp"
#include "lowbit/quant/blocks/ref_math.hpp"
#include "lowbit/quant/blocks/simd_decode.hpp"

namespace lowbit::blocks {

namespace impl {
inline constexpr int qk256 = 256;
inline constexpr Index tq2_0_bytes = 66;

/// Byte and bit shift of weight i (0..255) in a tq2_0 block.
inline int tq2_0_byte(int i) { return 32 * (i / 128) + i % 32; }
inline int tq2_0_shift(int i) { return 2 * ((i % 128) / 32); }
}  // namespace impl

/// tq2_0 ignores importance, as llama.cpp's quantize_tq2_0 does.
inline void quantize_row_tq2_0(const float* x, std::uint8_t* out, Index n, const float* /*importance*/) {
  for (Index ib = 0; ib < n / impl::qk256; ++ib, x += impl::qk256, out += impl::tq2_0_bytes) {
    float amax = 0.0f;
    for (int j = 0; j < impl::qk256; ++j) amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);
    const float id = amax != 0.0f ? 1.0f / amax : 0.0f;
    for (int j = 0; j < 64; ++j) out[j] = 0;
    for (int i = 0; i < impl::qk256; ++i) {
      // lroundf rounds half away from zero; its long result plus one is kept to
      // two bits exactly as llama.cpp does (only 0..2 occur for finite rows).
      const long q = std::lround(x[i] * id) + 1;
      out[impl::tq2_0_byte(i)] |= static_cast<std::uint8_t>((static_cast<unsigned long>(q) & 3u) << impl::tq2_0_shift(i));
    }
    impl::ref::store_f16(out + 64, amax);
  }
}

inline void codes_row_tq2_0(const std::uint8_t* in, std::uint8_t* codes, Index n) {
  for (Index ib = 0; ib < n / impl::qk256; ++ib, in += impl::tq2_0_bytes, codes += impl::qk256)
    for (int i = 0; i < impl::qk256; ++i)
      codes[i] = static_cast<std::uint8_t>((in[impl::tq2_0_byte(i)] >> impl::tq2_0_shift(i)) & 3u);
}

/// The scalar reference of dequantize_row_tq2_0: y = (q-1)·d.
inline void dequantize_row_tq2_0_scalar(const std::uint8_t* in, float* y, Index n) {
  for (Index ib = 0; ib < n / impl::qk256; ++ib, in += impl::tq2_0_bytes, y += impl::qk256) {
    const float d = impl::ref::load_f16(in + 64);
    for (int i = 0; i < impl::qk256; ++i) {
      const int q = (in[impl::tq2_0_byte(i)] >> impl::tq2_0_shift(i)) & 3;
      y[i] = static_cast<float>(q - 1) * d;
    }
  }
}

/// xsimd decode, bit for bit the scalar one (d·(q-1) is (q-1)·d in IEEE arithmetic).
inline void dequantize_row_tq2_0(const std::uint8_t* in, float* y, Index n) {
  float v[impl::qk256];
  for (Index ib = 0; ib < n / impl::qk256; ++ib, in += impl::tq2_0_bytes, y += impl::qk256) {
    for (int c = 0; c < 2; ++c) {
      const std::uint8_t* qs = in + 32 * c;
      float* vc = v + 128 * c;
      for (int m = 0; m < 32; ++m) {
        vc[m] = static_cast<float>((qs[m] & 3) - 1);
        vc[m + 32] = static_cast<float>(((qs[m] >> 2) & 3) - 1);
        vc[m + 64] = static_cast<float>(((qs[m] >> 4) & 3) - 1);
        vc[m + 96] = static_cast<float>((qs[m] >> 6) - 1);
      }
    }
    impl::simd::scale_batch(v, impl::qk256, impl::ref::load_f16(in + 64), y);
  }
}

inline void grid_row_tq2_0(const std::uint8_t* in, Index n, SubBlockGrid* g) {
  for (Index ib = 0; ib < n / impl::qk256; ++ib) g[ib] = {impl::ref::load_f16(in + impl::tq2_0_bytes * ib + 64), 0.0f};
}

inline void set_codes_row_tq2_0(std::uint8_t* row, const std::uint8_t* codes, Index n) {
  impl::check_codes(codes, n, BlockType::tq2_0);
  for (Index ib = 0; ib < n / impl::qk256; ++ib, row += impl::tq2_0_bytes, codes += impl::qk256) {
    for (int j = 0; j < 64; ++j) row[j] = 0;
    for (int i = 0; i < impl::qk256; ++i)
      row[impl::tq2_0_byte(i)] |= static_cast<std::uint8_t>(codes[i] << impl::tq2_0_shift(i));
  }
}

}  // namespace lowbit::blocks
