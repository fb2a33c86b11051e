// IEEE binary16 (F16) and bfloat16 (BF16) <-> float32, scalar and exact.
// Narrowing rounds to nearest, ties to even (as PyTorch's .half() / .bfloat16()),
// keeps infinities and turns every NaN into a quiet NaN of the same sign.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace lowbit::io {

inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  const std::uint32_t mant = h & 0x3FFu;
  if (exp == 0) {
    // Zero or subnormal: mant · 2^-24, exact in float32.
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline std::uint16_t f32_to_f16(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7FFFFFFFu;
  if (x >= 0x7F800000u) return sign | (x > 0x7F800000u ? 0x7E00u : 0x7C00u);
  if (x >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to infinity
  if (x < 0x38800000u) {
    // Below 2^-14: a binary16 subnormal m · 2^-24. Scaling by 2^24 is exact, and
    // nearbyint rounds half to even in the default rounding mode; m = 1024 is the
    // smallest normal, whose encoding is also 1024.
    const float m = std::nearbyint(std::bit_cast<float>(x) * 16777216.0f);
    return sign | static_cast<std::uint16_t>(m);
  }
  const std::uint32_t exp = (x >> 23) - 112u;
  std::uint32_t h = (exp << 10) | ((x & 0x7FFFFFu) >> 13);
  const std::uint32_t rest = x & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry correctly bumps the exponent
  return sign | static_cast<std::uint16_t>(h);
}

inline float bf16_to_f32(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

inline std::uint16_t f32_to_bf16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x0040u);
  const std::uint32_t rounded = x + 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(rounded >> 16);
}

}  // namespace lowbit::io
