// The float32 arithmetic llama.cpp's reference quantizers are built from, in the
// exact operation order that makes lowbit's encodings byte-identical to theirs:
// little-endian fields, f16 and e8m0 scales, magic-number rounding, the x86-64
// behaviour of C's float -> byte conversions, and the importance weights. The scale
// searches built on these live in search.hpp.
//
// Bit exactness rules, kept here, in search.hpp and in every block format's header:
//  * every sum is a float32 accumulated left to right, every product rounded before
//    it is added, and each expression keeps ggml's association, e.g. `w * x * l` is
//    (w·x)·l, never w·(x·l). No fused multiply-add contraction: lowbit's CMake
//    target passes -ffp-contract=off, and ggml compiles its quantizers in
//    ggml-base, without -march flags, so it has none either;
//  * integers convert to float where ggml's C does (int × float promotes the int);
//  * narrowing to uint8/int8 wraps as C does, before any clamp that follows it;
//  * searches keep the first best candidate (strict comparisons), as ggml does.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "lowbit/io/half.hpp"

namespace lowbit::blocks::impl::ref {

// ---- fields -----------------------------------------------------------------

inline float load_f16(const std::uint8_t* p) {
  return io::f16_to_f32(static_cast<std::uint16_t>(p[0] | (p[1] << 8)));
}

/// Stores v as f16 and returns the float a decoder reads back: the k-quant
/// encoders re-round their weights against the stored scale, not the exact one.
inline float store_f16(std::uint8_t* p, float v) {
  const std::uint16_t h = io::f32_to_f16(v);
  p[0] = static_cast<std::uint8_t>(h & 0xFFu);
  p[1] = static_cast<std::uint8_t>(h >> 8);
  return io::f16_to_f32(h);
}

inline std::uint32_t load_u32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

inline void store_u32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

/// An e8m0 exponent byte as half its power of two, 2^(e-128): mxfp4 stores its
/// E2M1 values doubled, so the half scale makes them integers. e = 0 and 1 give
/// the float32 subnormals 2^-128 and 2^-127.
inline float e8m0_half(std::uint8_t e) {
  const std::uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<std::uint32_t>(e - 1) << 23);
  return std::bit_cast<float>(bits);
}

// ---- rounding ---------------------------------------------------------------

/// Round to nearest, ties to even, by adding 1.5·2^23 so the integer lands in the
/// mantissa: exact for |v| <= 2^22 - 1. Beyond that (or for inf/NaN) it returns
/// the same wrapped value as llama.cpp's nearest_int, which the callers then clamp.
/// llama.cpp's searches round this way, not with roundf, and ties differ.
inline int nearest_int(float v) {
  const float shifted = v + 12582912.0f;
  return static_cast<int>(std::bit_cast<std::int32_t>(shifted) & 0x007FFFFF) - 0x00400000;
}

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/// C's conversion of a float to int8_t or uint8_t as GCC emits it on x86-64:
/// cvttss2si truncates to int32 (INT32_MIN for NaN or out of range) and the low
/// byte is kept. In-range values simply truncate toward zero; the degenerate case
/// is a block whose tiny subnormal scale has an infinite inverse, where llama.cpp
/// converts inf or NaN and gets 0, and so must we (C++ would call it undefined).
inline std::uint8_t truncate_to_byte(float v) {
  const bool fits = v >= -2147483648.0f && v < 2147483648.0f;
  const std::int32_t i = fits ? static_cast<std::int32_t>(v) : std::numeric_limits<std::int32_t>::min();
  return static_cast<std::uint8_t>(static_cast<std::uint32_t>(i) & 0xFFu);
}

/// The same conversion read back as the signed byte it is in llama.cpp's
/// `MIN(15, (int8_t)(x + 8.5f))` idiom.
inline int truncate_to_int8(float v) { return static_cast<std::int8_t>(truncate_to_byte(v)); }

// ---- group extremes ---------------------------------------------------------

/// Values below this are an all-zero group (llama.cpp's GROUP_MAX_EPS).
inline constexpr float group_max_eps = 1e-15f;

/// The element of largest magnitude, keeping its sign and the first one on ties
/// (the symmetric formats map it to the most negative code); writes |max| to
/// `amax`, 0 for an empty or all-NaN group.
inline float signed_abs_max(int n, const float* x, float& amax) {
  float max = 0.0f;
  amax = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

// ---- importance -------------------------------------------------------------

/// sum(x²), accumulated left to right in float.
inline float sum_squares(const float* x, std::int64_t n) {
  float sum = 0.0f;
  for (std::int64_t j = 0; j < n; ++j) sum += x[j] * x[j];
  return sum;
}

/// sigma² of a whole row (or super-block), sum(x²)/n: the importance-weighted
/// quantizers add it under the square root of every weight's importance.
inline float row_sigma2(const float* x, std::int64_t n) { return sum_squares(x, n) / static_cast<float>(n); }

/// w[j] = importance[j]·sqrt(sigma² + x[j]²) for the `count` weights of one
/// (sub-)block; returns sum(w), which the k-quants weigh their sub-block scales by.
inline float importance_weights(const float* x, const float* importance, float sigma2, int count, float* w) {
  for (int j = 0; j < count; ++j) w[j] = importance[j] * std::sqrt(sigma2 + x[j] * x[j]);
  float sum = 0.0f;
  for (int j = 0; j < count; ++j) sum += w[j];
  return sum;
}

}  // namespace lowbit::blocks::impl::ref
