// Quantizer<Format, Granularity, ScaleSearch>: the composed fake-quantizer.
#pragma once

#include <algorithm>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/abs_max.hpp"
#include "lowbit/quant/format.hpp"
#include "lowbit/quant/granularity.hpp"
#include "lowbit/quant/kernels.hpp"
#include "lowbit/quant/quant_params.hpp"

namespace lowbit {

/// A scale search turns a slice (and its statistics) into one scale for a format.
template <class S, class F>
concept ScaleSearchFor = QuantFormat<F> && requires(const S s, const float* x, Index n, SliceStats st) {
  { s.template scale<F>(x, n, st) } -> std::same_as<float>;
};

/// Composes a format (Int<4>, IntFull<4>, GptqGrid<4>), a granularity (PerTensor,
/// PerChannel, PerGroup<G>) and a scale search (AbsMax, HistogramMse<>, MseShrink)
/// at compile time. Weights are row-major [out_features, in_features].
///
///   lowbit::Quantizer<lowbit::Int<4>, lowbit::PerChannel, lowbit::HistogramMse<>> q;
///   q.fake_quantize_in_place(w);                 // w ← dequant(quant(w))
///   lowbit::QuantizedTensor t = q.quantize(w);   // int8 codes + scales
template <QuantFormat Format, class Granularity = PerTensor, class ScaleSearch = AbsMax>
  requires ScaleSearchFor<ScaleSearch, Format>
class Quantizer {
 public:
  using format_type = Format;
  using granularity_type = Granularity;
  using search_type = ScaleSearch;

  Quantizer() = default;
  explicit Quantizer(Granularity granularity, ScaleSearch search = {})
      : granularity_(granularity), search_(search) {}

  [[nodiscard]] static constexpr FormatInfo format() { return Format::info(); }
  [[nodiscard]] const Granularity& granularity() const { return granularity_; }
  [[nodiscard]] const ScaleSearch& search() const { return search_; }

  /// Scales for w. Throws lowbit::Error naming `name` and the element for an empty
  /// tensor or a non-finite value.
  [[nodiscard]] QuantParams params(ConstMatrixView w, std::string_view name = "weight") const {
    QuantParams p{Format::info(), layout_for(w, name), {}};
    p.scales.resize(static_cast<std::size_t>(p.layout.num_scales()));
    if (p.layout.kind == ScaleLayout::Kind::tensor) {
      p.scales[0] = slice_scale(w, 0, 0, w.size(), name);
      return p;
    }
    std::size_t k = 0;
    p.for_each_run([&](Index r, Index c0, Index c1, float) {
      p.scales[k++] = slice_scale(w, r, c0, c1 - c0, name);
    });
    return p;
  }

  /// out ← fake-quantized w; returns the scales used.
  QuantParams fake_quantize(ConstMatrixView w, MatrixView out, std::string_view name = "weight") const {
    detail::check_same_shape(w, out, "Quantizer::fake_quantize");
    if (layout_for(w, name).kind == ScaleLayout::Kind::tensor) {
      QuantParams p = params(w, name);
      p.apply(w, out);
      return p;
    }
    // One pass: each run's scale is found and applied while the run is in cache.
    // Large outputs are streamed past the cache, and while a run is written the
    // next one is prefetched, so that its scale search does not wait on memory.
    QuantParams p{Format::info(), layout_for(w, name), {}};
    p.scales.resize(static_cast<std::size_t>(p.layout.num_scales()));
    const kernels::Store store = kernels::store_for(static_cast<std::size_t>(w.size()) * sizeof(float),
                                                    std::min(p.layout.group_size, w.cols));
    const float* end = w.data + w.size();
    std::size_t k = 0;
    p.for_each_run([&](Index r, Index c0, Index c1, float) {
      const Index n = c1 - c0;
      const float s = slice_scale(w, r, c0, n, name);
      p.scales[k++] = s;
      const float* x = w.row(r) + c0;
      const float* next = store == kernels::Store::streaming && end - (x + n) >= n ? x + n : nullptr;
      kernels::fake_quantize(x, out.row(r) + c0, n, GridStep::make(s, Format::division), Format::qmin,
                             Format::qmax, store, next);
    });
    if (store == kernels::Store::streaming) kernels::streaming_fence();
    return p;
  }

  QuantParams fake_quantize_in_place(MatrixView w, std::string_view name = "weight") const {
    return fake_quantize(w, w, name);
  }

  /// Integer codes and scales.
  [[nodiscard]] QuantizedTensor quantize(ConstMatrixView w, std::string_view name = "weight") const {
    QuantizedTensor t{params(w, name), {}};
    t.codes = t.params.codes(w);
    return t;
  }

 private:
  ScaleLayout layout_for(ConstMatrixView w, std::string_view name) const {
    detail::check(!w.empty(), "tensor '", name, "' is empty (", w.rows, "x", w.cols, ")");
    try {
      return granularity_.layout(w.rows, w.cols);
    } catch (const Error& e) {
      detail::fail("tensor '", name, "': ", e.what());
    }
  }

  float slice_scale(ConstMatrixView w, Index r, Index c0, Index n, std::string_view name) const {
    const float* x = w.row(r) + c0;
    const SliceStats st = kernels::stats(x, n);
    if (!st.finite) {
      const Index i = kernels::first_non_finite(x, n);
      const Index flat = r * w.cols + c0 + i;
      detail::fail("tensor '", name, "' has a non-finite value (", x[i], ") at [", flat / w.cols, ", ",
                   flat % w.cols, "]");
    }
    return search_.template scale<Format>(x, n, st);
  }

  [[no_unique_address]] Granularity granularity_{};
  [[no_unique_address]] ScaleSearch search_{};
};

}  // namespace lowbit
