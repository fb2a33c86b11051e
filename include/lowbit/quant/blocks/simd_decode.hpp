// Batch helpers shared by the xsimd block decoders (kquants.hpp, nonuniform.hpp,
// ternary.hpp). Each performs, per weight, exactly the IEEE operations of the
// scalar reference it replaces, in the same order: one multiply, then (affine
// types) one subtract. No fused multiply-add: xsimd's operator* and operator- are
// separate instructions, and the project builds with -ffp-contract=off.
#pragma once

#include <xsimd/xsimd.hpp>

namespace lowbit::blocks::impl::simd {

using simd_f = xsimd::batch<float>;

/// y[k] = scale·v[k] - min for k < count.
inline void affine_batch(const float* v, int count, float scale, float min, float* y) {
  constexpr int w = static_cast<int>(simd_f::size);
  const simd_f s(scale), m(min);
  int k = 0;
  for (; k + w <= count; k += w) (s * simd_f::load_unaligned(v + k) - m).store_unaligned(y + k);
  for (; k < count; ++k) y[k] = scale * v[k] - min;
}

/// y[k] = scale·v[k] for k < count. IEEE multiplication is commutative bit for bit
/// (no operand here is ever NaN but the scale), so this also serves v[k]·scale.
inline void scale_batch(const float* v, int count, float scale, float* y) {
  constexpr int w = static_cast<int>(simd_f::size);
  const simd_f s(scale);
  int k = 0;
  for (; k + w <= count; k += w) (s * simd_f::load_unaligned(v + k)).store_unaligned(y + k);
  for (; k < count; ++k) y[k] = scale * v[k];
}

}  // namespace lowbit::blocks::impl::simd
