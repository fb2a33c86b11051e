// SpecQuantizer: the fake-quantizer of a run-time QuantSpec. Quantizer<Format,
// Granularity, Search> is a typed façade over it (quant/quantizer.hpp), so both give
// the same bits; the study and the tools build one from a parsed scheme.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/quant/abs_max.hpp"
#include "lowbit/quant/blocks/codec.hpp"
#include "lowbit/quant/histogram_mse.hpp"
#include "lowbit/quant/kernels.hpp"
#include "lowbit/quant/mse_shrink.hpp"
#include "lowbit/quant/quant_params.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/weighted_shrink.hpp"

namespace lowbit {

/// The searches a SpecQuantizer can run, with their tunable settings. The defaults
/// are the references' (PyTorch's 2048 bins, quant.py's shrink grid).
struct SearchSettings {
  AbsMax absmax{};
  HistogramMse<HistogramMode::TorchCompatible> hist{};
  HistogramMse<HistogramMode::TrueGrid> hist_true{};
  MseShrink mse{};
  WeightedShrink weighted{};
};

/// Fake-quantizes, quantizes and finds scales for one QuantSpec. Weights are
/// row-major [out_features, in_features]. A llama.cpp block format (q4_k, ...) keeps
/// its scales inside its encoded rows: encode() gives them, fake_quantize() decodes
/// them again, and params()/quantize() (integer codes + scales) are for integer
/// grids only.
class SpecQuantizer {
 public:
  SpecQuantizer() : SpecQuantizer(QuantSpec{}) {}
  explicit SpecQuantizer(QuantSpec spec, SearchSettings settings = {})
      : spec_((spec.validate(), spec)), format_(format_of(spec)), settings_(settings) {}

  [[nodiscard]] const QuantSpec& spec() const { return spec_; }
  [[nodiscard]] const FormatInfo& format_info() const { return format_; }
  [[nodiscard]] const SearchSettings& settings() const { return settings_; }

  /// Per-column importance for SearchKind::weighted and for block formats whose
  /// llama.cpp quantizer reads an importance matrix (diag(H), an imatrix entry); it
  /// must outlive the calls that use it. Empty: every column weighs 1 (block
  /// formats: llama.cpp's quantizer without an imatrix).
  void set_importance(std::span<const float> importance) { importance_ = importance; }

  /// Scales (and zeros) for w. Throws lowbit::Error naming `name` and the element
  /// for an empty tensor or a non-finite value.
  [[nodiscard]] QuantParams params(ConstMatrixView w, std::string_view name = "weight") const {
    check_integer_grid(name, "params");
    QuantParams p = empty_params(w, name);
    fill(p, w, name);
    return p;
  }

  /// out ← fake-quantized w; returns the scales used.
  QuantParams fake_quantize(ConstMatrixView w, MatrixView out, std::string_view name = "weight") const {
    detail::check_same_shape(w, out, "Quantizer::fake_quantize");
    if (spec_.is_block()) {
      const std::vector<std::uint8_t> rows = encode(w, name);
      blocks::dequantize(spec_.block, rows.data(), out, name);
      return QuantParams{format_, spec_.layout(w.rows, w.cols, name), {}};
    }
    QuantParams p = empty_params(w, name);
    if (p.layout.kind == ScaleLayout::Kind::tensor || format_.asymmetric()) {
      fill(p, w, name);
      p.apply(w, out);
      return p;
    }
    // One pass: each run's scale is found and applied while the run is in cache.
    // Large outputs are streamed past the cache, and while a run is written the
    // next one is prefetched, so that its scale search does not wait on memory.
    const kernels::Store store = kernels::store_for(static_cast<std::size_t>(w.size()) * sizeof(float),
                                                    std::min(p.layout.group_size, w.cols));
    const float* end = w.data + w.size();
    p.for_each_slice([&](Index r, Index c0, Index c1, std::size_t k) {
      const Index n = c1 - c0;
      set_slice(p, k, w, r, c0, n, name);
      const float* x = w.row(r) + c0;
      if (format_.non_uniform()) {
        nf4::fake_quantize(x, out.row(r) + c0, n, p.scales[k]);
        return;
      }
      const float* next = store == kernels::Store::streaming && end - (x + n) >= n ? x + n : nullptr;
      kernels::fake_quantize(x, out.row(r) + c0, n, GridStep::make(p.scales[k], format_.division), format_.qmin,
                             format_.qmax, store, next);
    });
    if (store == kernels::Store::streaming) kernels::streaming_fence();
    return p;
  }

  QuantParams fake_quantize_in_place(MatrixView w, std::string_view name = "weight") const {
    return fake_quantize(w, w, name);
  }

  /// Integer codes and scales.
  [[nodiscard]] QuantizedTensor quantize(ConstMatrixView w, std::string_view name = "weight") const {
    check_integer_grid(name, "quantize");
    QuantizedTensor t{params(w, name), {}};
    t.codes = t.params.codes(w);
    return t;
  }

  /// The encoded rows of a block-format spec: llama.cpp's bytes, from llama.cpp's
  /// quantizer (with the importance, if one is set).
  [[nodiscard]] std::vector<std::uint8_t> encode(ConstMatrixView w, std::string_view name = "weight") const {
    detail::check(spec_.is_block(), "tensor '", name, "': ", spec_.str(), " is not a block format; use quantize()");
    detail::check(!w.empty(), "tensor '", name, "' is empty (", w.rows, "x", w.cols, ")");
    detail::check(importance_.empty() || static_cast<Index>(importance_.size()) == w.cols, "tensor '", name,
                  "': the importance has ", importance_.size(), " entries for ", w.cols, " columns");
    return blocks::quantize(spec_.block, w, name, importance_.empty() ? nullptr : importance_.data());
  }

 private:
  static FormatInfo format_of(const QuantSpec& s) {
    if (!s.is_block()) return s.format();
    FormatInfo f;
    f.name = blocks::info(s.block).name;
    return f;
  }

  void check_integer_grid(std::string_view name, const char* what) const {
    detail::check(!spec_.is_block(), "tensor '", name, "': ", spec_.str(), " keeps its scales in its blocks; ", what,
                  "() is for integer grids (use encode())");
  }

  void fill(QuantParams& p, ConstMatrixView w, std::string_view name) const {
    if (p.layout.kind == ScaleLayout::Kind::tensor) {
      set_slice(p, 0, w, 0, 0, w.size(), name);
      return;
    }
    p.for_each_slice([&](Index r, Index c0, Index c1, std::size_t k) { set_slice(p, k, w, r, c0, c1 - c0, name); });
  }

  QuantParams empty_params(ConstMatrixView w, std::string_view name) const {
    detail::check(!w.empty(), "tensor '", name, "' is empty (", w.rows, "x", w.cols, ")");
    QuantParams p{format_, spec_.layout(w.rows, w.cols, name), {}};
    p.scales.resize(static_cast<std::size_t>(p.layout.num_scales()));
    if (format_.asymmetric()) p.zeros.resize(p.scales.size());
    detail::check(spec_.search != SearchKind::weighted || importance_.empty() ||
                      static_cast<Index>(importance_.size()) == w.cols,
                  "tensor '", name, "': the importance has ", importance_.size(), " entries for ", w.cols, " columns");
    return p;
  }

  void set_slice(QuantParams& p, std::size_t k, ConstMatrixView w, Index r, Index c0, Index n,
                 std::string_view name) const {
    // A per-tensor slice is the whole (contiguous) tensor: n = rows·cols from row 0.
    const bool whole = p.layout.kind == ScaleLayout::Kind::tensor;
    const float* x = w.row(r) + c0;
    const SliceStats st = kernels::stats(x, n);
    if (!st.finite) {
      const Index i = kernels::first_non_finite(x, n);
      const Index flat = r * w.cols + c0 + i;
      detail::fail("tensor '", name, "' has a non-finite value (", x[i], ") at [", flat / w.cols, ", ",
                   flat % w.cols, "]");
    }
    SliceScale s = search(x, n, st, c0, whole ? w.cols : 0);
    p.scales[k] = stored(s.scale);
    if (!p.zeros.empty()) p.zeros[k] = s.zero;
  }

  /// Element i of the slice is column col0 + i, or (col0 + i) % period for a
  /// per-tensor slice that spans rows (importance is per column).
  SliceScale search(const float* x, Index n, SliceStats st, Index col0, Index period = 0) const {
    switch (spec_.search) {
      case SearchKind::absmax: return settings_.absmax.scale(format_, x, n, st);
      case SearchKind::hist: return settings_.hist.scale(format_, x, n, st);
      case SearchKind::hist_true: return settings_.hist_true.scale(format_, x, n, st);
      case SearchKind::mse: return settings_.mse.scale(format_, x, n, st);
      case SearchKind::weighted: break;
    }
    return settings_.weighted.scale(format_, x, n, st, importance_, col0, period);
  }

  /// The scale as the spec stores it: float32 unchanged, else rounded to nearest
  /// even in float16 / bfloat16 and kept within that type's positive finite range
  /// (a scale below its smallest value would decode every weight to zero).
  float stored(float s) const {
    switch (spec_.storage) {
      case ScaleStorage::f32: return s;
      case ScaleStorage::f16: {
        const float r = io::f16_to_f32(io::f32_to_f16(std::min(s, 65504.0f)));
        return r > 0.0f ? r : std::ldexp(1.0f, -24);
      }
      case ScaleStorage::bf16: {
        const float r = io::bf16_to_f32(io::f32_to_bf16(s));
        if (!std::isfinite(r)) return io::bf16_to_f32(0x7F7F);  // the largest finite bfloat16
        return r > 0.0f ? r : io::bf16_to_f32(0x0080);         // the smallest normal one
      }
    }
    return s;
  }

  QuantSpec spec_;
  FormatInfo format_;
  SearchSettings settings_;
  std::span<const float> importance_;
};

}  // namespace lowbit
