// From the study's run-time choices (bits, granularity, scale search) to lowbit's
// compile-time Quantizer / Gptq policies: one switch, so every method quantizes
// with exactly the same quantizer.
#pragma once

#include <string>
#include <type_traits>

#include "lowbit/core/error.hpp"
#include "lowbit/quant/abs_max.hpp"
#include "lowbit/quant/format.hpp"
#include "lowbit/quant/granularity.hpp"
#include "lowbit/quant/histogram_mse.hpp"
#include "lowbit/quant/mse_shrink.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/study/options.hpp"

namespace lowbit::study {

/// The quantizer of one study unit: the study's symmetric narrow-range Int<bits>.
struct QuantChoice {
  int bits = 4;
  Granularity granularity{};
  ScaleChoice scale = ScaleChoice::hist;

  [[nodiscard]] std::string describe() const {
    std::string g = granularity.kind == Granularity::Kind::tensor    ? "per-tensor"
                    : granularity.kind == Granularity::Kind::channel ? "per-channel"
                                                                     : "per-group of " + std::to_string(granularity.group_size);
    const char* s = scale == ScaleChoice::hist       ? "histogram-MSE (PyTorch-compatible)"
                    : scale == ScaleChoice::hist_true ? "histogram-MSE (true grid)"
                    : scale == ScaleChoice::absmax    ? "abs-max"
                                                      : "MSE shrink (GPTQ)";
    return "int" + std::to_string(bits) + " symmetric, " + g + ", " + s + " scales";
  }
};

namespace detail {

template <int B, class F>
decltype(auto) with_granularity(const QuantChoice& c, F&& f) {
  switch (c.granularity.kind) {
    case Granularity::Kind::tensor: return f(Int<B>{}, PerTensor{});
    case Granularity::Kind::channel: return f(Int<B>{}, PerChannel{});
    case Granularity::Kind::group: break;
  }
  return f(Int<B>{}, PerGroup<>{static_cast<Index>(c.granularity.group_size)});
}

template <int B, class F>
decltype(auto) with_format(const QuantChoice& c, F&& f) {
  return with_granularity<B>(c, [&](auto format, auto granularity) -> decltype(auto) {
    switch (c.scale) {
      case ScaleChoice::hist: return f(format, granularity, HistogramMse<>{});
      case ScaleChoice::hist_true: return f(format, granularity, HistogramMse<HistogramMode::TrueGrid>{});
      case ScaleChoice::absmax: return f(format, granularity, AbsMax{});
      case ScaleChoice::mse: break;
    }
    return f(format, granularity, MseShrink{});
  });
}

}  // namespace detail

/// Calls f(format, granularity, search) with the policy objects of `c` (all calls
/// must return the same type).
template <class F>
decltype(auto) with_policies(const QuantChoice& c, F&& f) {
  switch (c.bits) {
    case 2: return detail::with_format<2>(c, f);
    case 3: return detail::with_format<3>(c, f);
    case 4: return detail::with_format<4>(c, f);
    case 5: return detail::with_format<5>(c, f);
    case 6: return detail::with_format<6>(c, f);
    case 7: return detail::with_format<7>(c, f);
    case 8: break;
    default: lowbit::detail::fail("study: ", c.bits, " bits is outside 2..8");
  }
  return detail::with_format<8>(c, f);
}

/// Calls f(quantizer) with the Quantizer<Int<bits>, granularity, search> of `c`.
template <class F>
decltype(auto) with_quantizer(const QuantChoice& c, F&& f) {
  return with_policies(c, [&](auto format, auto granularity, auto search) -> decltype(auto) {
    return f(Quantizer<decltype(format), decltype(granularity), decltype(search)>(granularity, search));
  });
}

}  // namespace lowbit::study
