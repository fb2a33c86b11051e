// Integer formats: which codes exist, how a scale is derived from a value range,
// and how a value is divided by its scale. See docs/formats.md for the three side by side.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <utility>

namespace lowbit {

/// How x is brought onto the integer grid before rounding. PyTorch's fake_quantize
/// multiplies by the float32 reciprocal of the scale; GPTQ's quant.py divides.
/// The two differ in the last ulp, which can move a value across a rounding tie.
enum class Division { reciprocal, exact };

/// Runtime description of a format, carried by quantization results so that code
/// that is not templated on the format (export, GPTQ's column loop) can use it.
struct FormatInfo {
  int bits = 0;
  int qmin = 0;          ///< smallest signed code
  int qmax = 0;          ///< largest signed code
  int code_offset = 0;   ///< stored (unsigned) code = signed code + code_offset
  Division division = Division::reciprocal;
  const char* name = "";
};

/// A format: signed codes qmin..qmax, an unsigned storage offset, and the
/// range → scale rule. `effective_range` turns observed [lo, hi] into the range
/// the grid must cover (symmetrised, zero included, degenerate ranges fixed);
/// `scale_for` maps such a range (possibly shrunk by a search) to a scale.
template <class F>
concept QuantFormat = requires(float lo, float hi) {
  { F::bits } -> std::convertible_to<int>;
  { F::qmin } -> std::convertible_to<int>;
  { F::qmax } -> std::convertible_to<int>;
  { F::code_offset } -> std::convertible_to<int>;
  { F::division } -> std::convertible_to<Division>;
  { F::effective_range(lo, hi) } -> std::same_as<std::pair<float, float>>;
  { F::scale_for(lo, hi) } -> std::same_as<float>;
  { F::info() } -> std::same_as<FormatInfo>;
};

namespace detail {

inline constexpr bool valid_bits(int b) { return b >= 2 && b <= 8; }

/// The largest scale s for which every code of magnitude ≤ `top` decodes to a
/// finite float (top·s ≤ FLT_MAX). Only weights near ±FLT_MAX reach it; below it
/// scales are exactly what the reference computes.
inline float max_finite_scale(int top) {
  const auto t = static_cast<float>(top);
  float s = std::numeric_limits<float>::max() / t;
  while (!std::isfinite(s * t)) s = std::nextafter(s, 0.0f);
  return s;
}

/// PyTorch observers' symmetric rule (_calculate_qparams, per_tensor_symmetric):
/// scale = max(-min(lo,0), max(hi,0)) / ((qmax - qmin) / 2), at least float32 eps.
template <int QMin, int QMax>
struct TorchSymmetricRule {
  static std::pair<float, float> effective_range(float lo, float hi) {
    const float m = std::max(-std::min(lo, 0.0f), std::max(hi, 0.0f));
    return {-m, m};
  }
  static float scale_for(float lo, float hi) {
    const float m = std::max(-std::min(lo, 0.0f), std::max(hi, 0.0f));
    constexpr float half_range = static_cast<float>(QMax - QMin) / 2.0f;
    // The cap keeps QMin·scale finite for weights near ±FLT_MAX (IntFull's scale
    // is absmax / (2^(B-1) - 0.5), so its -2^(B-1) code would overflow).
    static const float cap = max_finite_scale(std::max(-QMin, QMax));
    return std::min(std::max(m / half_range, std::numeric_limits<float>::epsilon()), cap);
  }
};

}  // namespace detail

/// The study's format: symmetric narrow range {-(2^(B-1)-1) … 2^(B-1)-1}, 2^B - 1
/// levels with zero exact (int2 is ternary). Scale = absmax / (2^(B-1) - 1),
/// computed as PyTorch's observers do for quant_min = -quant_max.
template <int B>
struct Int : detail::TorchSymmetricRule<-((1 << (B - 1)) - 1), (1 << (B - 1)) - 1> {
  static_assert(detail::valid_bits(B), "lowbit formats have 2 to 8 bits");
  static constexpr int bits = B;
  static constexpr int qmax = (1 << (B - 1)) - 1;
  static constexpr int qmin = -qmax;
  static constexpr int code_offset = 1 << (B - 1);
  static constexpr Division division = Division::reciprocal;
  static constexpr FormatInfo info() { return {bits, qmin, qmax, code_offset, division, "int"}; }
};

/// Full signed range [-2^(B-1), 2^(B-1)-1] with PyTorch observers' symmetric scale
/// absmax / (2^(B-1) - 0.5) (e.g. qint8: absmax / 127.5).
template <int B>
struct IntFull : detail::TorchSymmetricRule<-(1 << (B - 1)), (1 << (B - 1)) - 1> {
  static_assert(detail::valid_bits(B), "lowbit formats have 2 to 8 bits");
  static constexpr int bits = B;
  static constexpr int qmin = -(1 << (B - 1));
  static constexpr int qmax = (1 << (B - 1)) - 1;
  static constexpr int code_offset = 1 << (B - 1);
  static constexpr Division division = Division::reciprocal;
  static constexpr FormatInfo info() { return {bits, qmin, qmax, code_offset, division, "int_full"}; }
};

/// GPTQ quant.py's symmetric grid: unsigned codes 0 … 2^B-1 with zero point 2^(B-1),
/// scale = (xmax - xmin) / (2^B - 1) after symmetrising, and x / scale by division.
/// Signed code = stored code - 2^(B-1). Two quirks are kept because the reference
/// has them: a range with no negative value keeps xmin = 0 (so the scale halves and
/// the top half of the values clip), and an all-zero range becomes [-1, 1].
template <int B>
struct GptqGrid {
  static_assert(detail::valid_bits(B), "lowbit formats have 2 to 8 bits");
  static constexpr int bits = B;
  static constexpr int maxq = (1 << B) - 1;
  static constexpr int code_offset = 1 << (B - 1);
  static constexpr int qmin = -code_offset;
  static constexpr int qmax = maxq - code_offset;
  static constexpr Division division = Division::exact;
  static constexpr FormatInfo info() { return {bits, qmin, qmax, code_offset, division, "gptq"}; }

  static std::pair<float, float> effective_range(float lo, float hi) {
    float xmin = std::min(lo, 0.0f);
    float xmax = std::max(std::fabs(xmin), std::max(hi, 0.0f));
    if (xmin < 0.0f) xmin = -xmax;
    if (xmin == 0.0f && xmax == 0.0f) return {-1.0f, 1.0f};
    return {xmin, xmax};
  }
  static float scale_for(float lo, float hi) {
    const auto [xmin, xmax] = effective_range(lo, hi);
    const float s = (xmax - xmin) / static_cast<float>(maxq);
    if (std::isfinite(s) && s >= std::numeric_limits<float>::min()) return s;
    return range_safe_scale(xmin, xmax);
  }

 private:
  /// Off the reference's path: xmax - xmin overflows float32 (weights near
  /// ±FLT_MAX) or the scale is denormal or zero (weights below ~1e-38), which the
  /// reference would turn into inf or a zero division. The difference is formed in
  /// double and the scale kept within [FLT_MIN, the largest finite-decoding scale].
  static float range_safe_scale(float xmin, float xmax) {
    const double s = (static_cast<double>(xmax) - static_cast<double>(xmin)) / maxq;
    static const float cap = detail::max_finite_scale(std::max(code_offset, maxq - code_offset));
    return static_cast<float>(std::clamp(s, static_cast<double>(std::numeric_limits<float>::min()),
                                         static_cast<double>(cap)));
  }
};

}  // namespace lowbit
