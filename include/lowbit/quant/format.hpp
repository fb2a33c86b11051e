// Integer formats: which codes exist, how a scale is derived from a value range,
// and how a value is divided by its scale. See docs/formats.md for the three side by side.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <cstdint>
#include <utility>

namespace lowbit {

/// How x is brought onto the integer grid before rounding. PyTorch's fake_quantize
/// multiplies by the float32 reciprocal of the scale; GPTQ's quant.py divides.
/// The two differ in the last ulp, which can move a value across a rounding tie.
enum class Division { reciprocal, exact };

namespace detail {
inline float max_finite_scale(int top);
}

/// The rule that turns an observed range into a scale (and, for an asymmetric grid,
/// a zero point). One implementation per rule, used by the compile-time formats
/// below and by run-time QuantSpecs alike.
enum class ScaleRule : std::uint8_t {
  torch_symmetric,  ///< PyTorch observers' symmetric qparams (Int, IntFull)
  gptq_symmetric,   ///< GPTQ quant.py, sym=True (GptqGrid)
  gptq_asymmetric,  ///< GPTQ quant.py, sym=False: integer zero point per slice
  nf4_absmax,       ///< NF4 (bitsandbytes): the slice's absmax, codes index a level table
};

/// Runtime description of a format: which codes exist, how x is divided, and the
/// range → scale rule. Carried by quantization results, so that code that is not
/// templated on the format (export, GPTQ's column loop, QuantSpec) can use it.
///
/// Codes are signed: stored (unsigned) code = signed code + code_offset. An
/// asymmetric grid keeps the same signed range and adds a per-slice zero z (also
/// signed, z = zero point - code_offset): x ↦ clamp(round(x/s) + z, qmin, qmax),
/// decoded as s·(code - z). That is quant.py's clamp(round(x/s) + zero, 0, maxq),
/// and it equals clamping round(x/s) to [qmin - z, qmax - z], so the kernels need
/// only per-slice bounds.
struct FormatInfo {
  int bits = 0;
  int qmin = 0;          ///< smallest signed code
  int qmax = 0;          ///< largest signed code
  int code_offset = 0;   ///< stored (unsigned) code = signed code + code_offset
  Division division = Division::reciprocal;
  const char* name = "";
  ScaleRule rule = ScaleRule::torch_symmetric;

  [[nodiscard]] constexpr bool asymmetric() const { return rule == ScaleRule::gptq_asymmetric; }
  /// Codes index a table of levels (nf4::levels) instead of standing for code·scale.
  [[nodiscard]] constexpr bool non_uniform() const { return rule == ScaleRule::nf4_absmax; }

  /// The range the grid must cover for observed [lo, hi]: symmetrised (or, for an
  /// asymmetric grid, widened to include zero), degenerate ranges fixed.
  [[nodiscard]] std::pair<float, float> effective_range(float lo, float hi) const {
    switch (rule) {
      case ScaleRule::torch_symmetric:
      case ScaleRule::nf4_absmax: {
        const float m = std::max(-std::min(lo, 0.0f), std::max(hi, 0.0f));
        return {-m, m};
      }
      case ScaleRule::gptq_symmetric: {
        float xmin = std::min(lo, 0.0f);
        const float xmax = std::max(std::fabs(xmin), std::max(hi, 0.0f));
        if (xmin < 0.0f) xmin = -xmax;
        if (xmin == 0.0f && xmax == 0.0f) return {-1.0f, 1.0f};
        return {xmin, xmax};
      }
      case ScaleRule::gptq_asymmetric: break;
    }
    const float xmin = std::min(lo, 0.0f), xmax = std::max(hi, 0.0f);
    if (xmin == 0.0f && xmax == 0.0f) return {-1.0f, 1.0f};
    return {xmin, xmax};
  }

  /// The scale for a range (observed, or shrunk by a search).
  [[nodiscard]] float scale_for(float lo, float hi) const {
    if (rule == ScaleRule::nf4_absmax) {
      // bitsandbytes stores the absmax itself. An all-zero (or denormal) slice
      // would make its reciprocal infinite; FLT_MIN decodes such a slice alike.
      const float m = std::max(-std::min(lo, 0.0f), std::max(hi, 0.0f));
      return std::max(m, std::numeric_limits<float>::min());
    }
    if (rule == ScaleRule::torch_symmetric) {
      // PyTorch's _calculate_qparams: max(-min(lo,0), max(hi,0)) / ((qmax - qmin) / 2),
      // at least float32 eps.
      const float m = std::max(-std::min(lo, 0.0f), std::max(hi, 0.0f));
      const float half_range = static_cast<float>(qmax - qmin) / 2.0f;
      return capped(std::max(m / half_range, std::numeric_limits<float>::epsilon()));
    }
    // quant.py: (xmax - xmin) / maxq on the effective range.
    const auto [xmin, xmax] = effective_range(lo, hi);
    const int maxq = qmax - qmin;
    const float s = (xmax - xmin) / static_cast<float>(maxq);
    if (std::isfinite(s) && s >= std::numeric_limits<float>::min()) return s;
    return range_safe_scale(xmin, xmax);
  }

  /// The signed zero z of an asymmetric grid whose range starts at `lo` (an
  /// effective range's lower end) with scale s: quant.py's round(-xmin / scale),
  /// minus code_offset. 0 for symmetric grids.
  [[nodiscard]] float zero_for(float lo, float s) const {
    if (!asymmetric()) return 0.0f;
    const float z = std::clamp(std::nearbyint(-std::min(lo, 0.0f) / s), 0.0f, static_cast<float>(qmax - qmin));
    return z - static_cast<float>(code_offset);
  }

 private:
  /// Keeps top·s finite for weights near ±FLT_MAX (IntFull's scale is absmax /
  /// (2^(B-1) - 0.5), so its -2^(B-1) code would overflow). Below FLT_MAX / 256
  /// (every code is at most 255 in magnitude) nothing is changed.
  [[nodiscard]] float capped(float s) const {
    if (s <= std::numeric_limits<float>::max() / 256.0f) return s;
    return std::min(s, detail::max_finite_scale(largest_code()));
  }

  /// The largest |code - z| a slice can decode: every code magnitude for symmetric
  /// grids, the whole span for an asymmetric one (its zero can sit at either end).
  [[nodiscard]] constexpr int largest_code() const { return asymmetric() ? qmax - qmin : std::max(-qmin, qmax); }

  /// Off the reference's path: xmax - xmin overflows float32 (weights near
  /// ±FLT_MAX) or the scale is denormal or zero (weights below ~1e-38), which the
  /// reference would turn into inf or a zero division. The difference is formed in
  /// double and the scale kept within [FLT_MIN, the largest finite-decoding scale].
  [[nodiscard]] float range_safe_scale(float xmin, float xmax) const {
    const double s = (static_cast<double>(xmax) - static_cast<double>(xmin)) / (qmax - qmin);
    const float cap = detail::max_finite_scale(largest_code());
    return static_cast<float>(std::clamp(s, static_cast<double>(std::numeric_limits<float>::min()),
                                         static_cast<double>(cap)));
  }
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

}  // namespace detail

/// The integer code sets (QuantSpec's CodeSet; `block` names a llama.cpp block
/// format, which has no single integer grid).
enum class CodeSet : std::uint8_t {
  narrow,  ///< symmetric narrow range ±(2^(B-1)-1), PyTorch observers' scale (Int<B>)
  full,    ///< symmetric full range -2^(B-1)..2^(B-1)-1, PyTorch's scale (IntFull<B>)
  gptq,    ///< GPTQ quant.py's symmetric grid, sym=True (GptqGrid<B>)
  asym,    ///< GPTQ quant.py's asymmetric grid with an integer zero point (IntAsym<B>)
  nf4,     ///< QLoRA's NormalFloat: 16 levels at normal quantiles, absmax scale (4 bits only)
  block,   ///< a llama.cpp block format: codes, scales and search are the block type's
};

/// The one definition of every integer grid: codes, storage offset, division, rule.
///  * narrow: {-(2^(B-1)-1) … 2^(B-1)-1}, 2^B - 1 levels with zero exact (int2 is
///    ternary); scale = absmax / (2^(B-1) - 1) as PyTorch's observers compute it for
///    quant_min = -quant_max. The study's format.
///  * full: [-2^(B-1), 2^(B-1)-1] with PyTorch's symmetric scale absmax / (2^(B-1) -
///    0.5) (qint8: absmax / 127.5).
///  * gptq: quant.py's symmetric grid, unsigned codes 0 … 2^B-1 around zero point
///    2^(B-1), scale (xmax - xmin) / (2^B - 1) after symmetrising, x / scale by
///    division. Two reference quirks kept: a range with no negative value keeps
///    xmin = 0 (so the scale halves and the top half of the values clip), and an
///    all-zero range becomes [-1, 1].
///  * asym: quant.py's sym=False (its default; AWQ, HQQ and most GPTQ checkpoints):
///    codes 0 … 2^B-1 with a per-slice zero point round(-xmin / scale), scale (xmax -
///    xmin) / (2^B - 1) over the range widened to include zero.
///  * nf4: QLoRA's NormalFloat (quant/normal_float.hpp), 4 bits whatever `bits`
///    says: stored codes 0..15 index nf4::levels, scale = the slice's absmax, x
///    normalised by the float32 reciprocal.
/// Signed code = stored code - 2^(B-1) for all five.
constexpr FormatInfo integer_format(CodeSet c, int bits) {
  const int half = 1 << (bits - 1), maxq = (1 << bits) - 1;
  switch (c) {
    case CodeSet::narrow:
      return {bits, -(half - 1), half - 1, half, Division::reciprocal, "int", ScaleRule::torch_symmetric};
    case CodeSet::full: return {bits, -half, half - 1, half, Division::reciprocal, "int_full", ScaleRule::torch_symmetric};
    case CodeSet::gptq: return {bits, -half, maxq - half, half, Division::exact, "gptq", ScaleRule::gptq_symmetric};
    case CodeSet::asym: return {bits, -half, maxq - half, half, Division::exact, "asym", ScaleRule::gptq_asymmetric};
    case CodeSet::nf4: return {4, -8, 7, 8, Division::reciprocal, "nf4", ScaleRule::nf4_absmax};
    case CodeSet::block: break;
  }
  return {};
}

/// A compile-time integer format (the QuantFormat policies below): every member
/// comes from integer_format, so a typed Quantizer and a QuantSpec agree.
template <CodeSet C, int B>
struct IntegerFormat {
  static_assert(detail::valid_bits(B), "lowbit formats have 2 to 8 bits");
  static_assert(C != CodeSet::block, "a block format is not an integer grid");
  static constexpr FormatInfo info() { return integer_format(C, B); }
  static constexpr int bits = B;
  static constexpr int qmin = integer_format(C, B).qmin;
  static constexpr int qmax = integer_format(C, B).qmax;
  static constexpr int maxq = qmax - qmin;
  static constexpr int code_offset = integer_format(C, B).code_offset;
  static constexpr Division division = integer_format(C, B).division;
  static std::pair<float, float> effective_range(float lo, float hi) { return info().effective_range(lo, hi); }
  static float scale_for(float lo, float hi) { return info().scale_for(lo, hi); }
};

/// The study's format: symmetric narrow range (see integer_format).
template <int B>
struct Int : IntegerFormat<CodeSet::narrow, B> {};

/// Full signed range with PyTorch observers' symmetric scale.
template <int B>
struct IntFull : IntegerFormat<CodeSet::full, B> {};

/// GPTQ quant.py's symmetric grid (sym=True).
template <int B>
struct GptqGrid : IntegerFormat<CodeSet::gptq, B> {};

/// GPTQ quant.py's asymmetric grid (sym=False): a search returns the zero with the
/// scale (SliceScale).
template <int B>
struct IntAsym : IntegerFormat<CodeSet::asym, B> {};

/// QLoRA's NormalFloat 4 (bitsandbytes' nf4): a level table with absmax scales.
struct NormalFloat4 : IntegerFormat<CodeSet::nf4, 4> {};

/// The code sets with one grid per slice (every CodeSet but block), for code that
/// lists them (file readers, usage text).
inline constexpr CodeSet grid_code_sets[] = {CodeSet::narrow, CodeSet::full, CodeSet::gptq, CodeSet::asym,
                                             CodeSet::nf4};

}  // namespace lowbit
