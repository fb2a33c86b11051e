// Quantizer<Format, Granularity, ScaleSearch>: the compile-time façade over
// SpecQuantizer. Picking every choice at compile time names the scheme in the type;
// the work is SpecQuantizer's, so both give the same bits.
#pragma once

#include <string_view>
#include <type_traits>

#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/abs_max.hpp"
#include "lowbit/quant/format.hpp"
#include "lowbit/quant/granularity.hpp"
#include "lowbit/quant/histogram_mse.hpp"
#include "lowbit/quant/mse_shrink.hpp"
#include "lowbit/quant/quant_params.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"
#include "lowbit/quant/weighted_shrink.hpp"

namespace lowbit {

/// The scale searches a QuantSpec names (SearchKind), as types. (A closed set: a
/// scheme is a QuantSpec, and every search it can name is one of these.)
template <class S, class F>
concept ScaleSearchFor = QuantFormat<F> && (std::is_same_v<S, AbsMax> || std::is_same_v<S, MseShrink> ||
                                            std::is_same_v<S, WeightedShrink> ||
                                            std::is_same_v<S, HistogramMse<HistogramMode::TorchCompatible>> ||
                                            std::is_same_v<S, HistogramMse<HistogramMode::TrueGrid>>);

/// The code set of a compile-time format.
inline constexpr CodeSet code_set_of(const FormatInfo& f) {
  switch (f.rule) {
    case ScaleRule::gptq_symmetric: return CodeSet::gptq;
    case ScaleRule::gptq_asymmetric: return CodeSet::asym;
    case ScaleRule::nf4_absmax: return CodeSet::nf4;
    case ScaleRule::torch_symmetric: break;
  }
  return f.qmin == -f.qmax ? CodeSet::narrow : CodeSet::full;
}

/// The QuantSpec (and search settings) that Quantizer<F, G, S>(granularity, search) stands for.
template <QuantFormat F, class G, class S>
QuantSpec spec_of([[maybe_unused]] const G& granularity) {
  // The work is done on integer_format(code set, bits): a format must be one of them.
  static_assert(std::is_base_of_v<IntegerFormat<code_set_of(F::info()), F::bits>, F>,
                "Quantizer<F, ...>: F must be one of lowbit's formats (Int, IntFull, GptqGrid, IntAsym, NormalFloat4)");
  QuantSpec q;
  q.codes = code_set_of(F::info());
  q.bits = F::bits;
  if constexpr (std::is_same_v<G, PerTensor>) {
    q.granularity = ScaleLayout::Kind::tensor;
  } else if constexpr (std::is_same_v<G, PerChannel>) {
    q.granularity = ScaleLayout::Kind::channel;
  } else {
    const Index g = granularity.group_size();
    lowbit::detail::check(g > 0, "PerGroup: group size must be positive, got ", g);
    q.granularity = ScaleLayout::Kind::group;
    q.group_size = g;
  }
  if constexpr (std::is_same_v<S, AbsMax>) q.search = SearchKind::absmax;
  if constexpr (std::is_same_v<S, MseShrink>) q.search = SearchKind::mse;
  if constexpr (std::is_same_v<S, WeightedShrink>) q.search = SearchKind::weighted;
  if constexpr (std::is_same_v<S, HistogramMse<HistogramMode::TorchCompatible>>) q.search = SearchKind::hist;
  if constexpr (std::is_same_v<S, HistogramMse<HistogramMode::TrueGrid>>) q.search = SearchKind::hist_true;
  return q;
}

template <class S>
SearchSettings settings_of(const S& search) {
  SearchSettings s;
  if constexpr (std::is_same_v<S, AbsMax>) s.absmax = search;
  if constexpr (std::is_same_v<S, MseShrink>) s.mse = search;
  if constexpr (std::is_same_v<S, WeightedShrink>) s.weighted = search;
  if constexpr (std::is_same_v<S, HistogramMse<HistogramMode::TorchCompatible>>) s.hist = search;
  if constexpr (std::is_same_v<S, HistogramMse<HistogramMode::TrueGrid>>) s.hist_true = search;
  return s;
}

/// Composes a format (Int<4>, IntFull<4>, GptqGrid<4>, IntAsym<4>), a granularity
/// (PerTensor, PerChannel, PerGroup<G>) and a scale search (AbsMax, HistogramMse<>,
/// MseShrink, WeightedShrink) at compile time. Weights are row-major
/// [out_features, in_features].
///
///   lowbit::Quantizer<lowbit::Int<4>, lowbit::PerChannel, lowbit::HistogramMse<>> q;
///   q.fake_quantize_in_place(w);                 // w ← dequant(quant(w))
///   lowbit::QuantizedTensor t = q.quantize(w);   // int8 codes + scales
///   q.spec().str();                              // "int4:channel:hist"
template <QuantFormat Format, class Granularity = PerTensor, class ScaleSearch = AbsMax>
  requires ScaleSearchFor<ScaleSearch, Format>
class Quantizer : public SpecQuantizer {
 public:
  using format_type = Format;
  using granularity_type = Granularity;
  using search_type = ScaleSearch;

  Quantizer() : Quantizer(Granularity{}) {}
  explicit Quantizer(Granularity granularity, ScaleSearch search = {})
      : SpecQuantizer(spec_of<Format, Granularity, ScaleSearch>(granularity), settings_of(search)),
        granularity_(granularity),
        search_(search) {}

  [[nodiscard]] static constexpr FormatInfo format() { return Format::info(); }
  [[nodiscard]] const Granularity& granularity() const { return granularity_; }
  [[nodiscard]] const ScaleSearch& search() const { return search_; }

 private:
  [[no_unique_address]] Granularity granularity_{};
  [[no_unique_address]] ScaleSearch search_{};
};

}  // namespace lowbit
