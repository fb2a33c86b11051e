// QuantParams: the scales of one weight plus everything needed to apply them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/format.hpp"
#include "lowbit/quant/granularity.hpp"
#include "lowbit/quant/kernels.hpp"
#include "lowbit/quant/normal_float.hpp"

namespace lowbit {

/// Scales in layout order (row-major over rows × groups_per_row) and the format.
/// Applying them needs no template: export code and solvers use this directly.
/// An asymmetric format also has one signed zero per scale (FormatInfo): a slice
/// with scale s and zero z maps x to the code clamp(round(x/s) + z, qmin, qmax)
/// and decodes it as s·(code - z). Symmetric formats leave `zeros` empty. A
/// non-uniform format (NF4) decodes code k as s·levels[k + code_offset].
struct QuantParams {
  FormatInfo format;
  ScaleLayout layout;
  std::vector<float> scales;
  std::vector<float> zeros{};  ///< empty, or one per scale (asymmetric formats)

  [[nodiscard]] float zero(std::size_t k) const { return zeros.empty() ? 0.0f : zeros[k]; }

  [[nodiscard]] float scale_at(Index r, Index c) const {
    return scales[static_cast<std::size_t>(layout.scale_index(r, c))];
  }

  /// Calls f(row, col_begin, col_end, scale) for every contiguous run of elements
  /// that shares a scale, row by row.
  template <class F>
  void for_each_run(F&& f) const {
    for_each_slice([&](Index r, Index c0, Index c1, std::size_t k) { f(r, c0, c1, scales[k]); });
  }

  /// Calls f(row, col_begin, col_end, k) for every run, k its index into scales
  /// (and zeros).
  template <class F>
  void for_each_slice(F&& f) const {
    // Runs come in scale order, so the scale index is a counter (scale_at's integer
    // divisions cost as much as quantizing a short group).
    const Index g = layout.kind == ScaleLayout::Kind::group ? layout.group_size : layout.cols;
    const bool one_scale = layout.kind == ScaleLayout::Kind::tensor;
    std::size_t k = 0;
    for (Index r = 0; r < layout.rows; ++r)
      for (Index c0 = 0; c0 < layout.cols; c0 += g) {
        const Index c1 = std::min(layout.cols, c0 + g);
        f(r, c0, c1, one_scale ? 0 : k++);
      }
  }

  /// Fake-quantizes w into out (same shape; they may alias).
  void apply(ConstMatrixView w, MatrixView out) const {
    check_shape(w, "input");
    detail::check_same_shape(w, out, "QuantParams::apply");
    // Outputs are written in runs of a row at least (a row of groups is one call).
    const kernels::Store store = kernels::store_for(static_cast<std::size_t>(w.size()) * sizeof(float), w.cols);
    if (format.non_uniform()) {  // NF4: a row of groups per call, streamed like the integer grids
      const Index g = layout.kind == ScaleLayout::Kind::group ? layout.group_size : w.cols;
      const Index per_row = layout.kind == ScaleLayout::Kind::tensor ? 1 : layout.groups_per_row();
      std::vector<GridStep> steps(static_cast<std::size_t>(per_row));
      for (Index r = 0; r < w.rows; ++r) {
        for (Index k = 0; k < per_row; ++k)
          steps[static_cast<std::size_t>(k)] = GridStep::make(
              scales[layout.kind == ScaleLayout::Kind::tensor ? 0 : static_cast<std::size_t>(r * per_row + k)],
              Division::reciprocal);
        nf4::fake_quantize_groups(w.row(r), out.row(r), w.cols, g, steps.data(), store);
      }
      if (store == kernels::Store::streaming) kernels::streaming_fence();
      return;
    }
    if (!zeros.empty()) {  // asymmetric: each run has its own code bounds (runs of a group)
      const kernels::Store run_store = layout.kind == ScaleLayout::Kind::group
                                           ? kernels::store_for(static_cast<std::size_t>(w.size()) * sizeof(float),
                                                                std::min(layout.group_size, w.cols))
                                           : store;
      for_each_slice([&](Index r, Index c0, Index c1, std::size_t k) {
        const auto z = static_cast<int>(zeros[k]);
        kernels::fake_quantize(w.row(r) + c0, out.row(r) + c0, c1 - c0, GridStep::make(scales[k], format.division),
                               format.qmin - z, format.qmax - z, run_store);
      });
      if (run_store == kernels::Store::streaming) kernels::streaming_fence();
      return;
    } else if (layout.kind == ScaleLayout::Kind::tensor) {
      const GridStep g = GridStep::make(scales.at(0), format.division);
      kernels::fake_quantize(w.data, out.data, w.size(), g, format.qmin, format.qmax, store);
    } else if (layout.kind == ScaleLayout::Kind::group) {
      const Index per_row = layout.groups_per_row();
      std::vector<GridStep> steps(static_cast<std::size_t>(per_row));
      for (Index r = 0; r < w.rows; ++r) {
        for (Index k = 0; k < per_row; ++k)
          steps[static_cast<std::size_t>(k)] =
              GridStep::make(scales[static_cast<std::size_t>(r * per_row + k)], format.division);
        kernels::fake_quantize_groups(w.row(r), out.row(r), w.cols, layout.group_size, steps.data(), format.qmin,
                                      format.qmax, store);
      }
    } else {
      for_each_run([&](Index r, Index c0, Index c1, float s) {
        kernels::fake_quantize(w.row(r) + c0, out.row(r) + c0, c1 - c0, GridStep::make(s, format.division),
                               format.qmin, format.qmax, store);
      });
    }
    if (store == kernels::Store::streaming) kernels::streaming_fence();
  }

  /// Signed integer codes of w (rows × cols, row-major).
  [[nodiscard]] std::vector<std::int8_t> codes(ConstMatrixView w) const {
    check_shape(w, "input");
    const auto n = static_cast<std::size_t>(w.size());
    std::vector<std::int8_t> q;
    if (n >= kernels::streaming_bytes) {  // fresh pages in one call, not one fault per 4 KiB
      q.reserve(n);
      kernels::prefault(q.data(), n);
    }
    q.resize(n);
    if (format.non_uniform()) {
      for_each_slice([&](Index r, Index c0, Index c1, std::size_t k) {
        nf4::codes(w.row(r) + c0, q.data() + r * w.cols + c0, c1 - c0, scales[k]);
      });
      return q;
    }
    if (!zeros.empty()) {
      for_each_slice([&](Index r, Index c0, Index c1, std::size_t k) {
        asymmetric_codes(w.row(r) + c0, q.data() + r * w.cols + c0, c1 - c0, k);
      });
      return q;
    }
    for_each_run([&](Index r, Index c0, Index c1, float s) {
      kernels::codes(w.row(r) + c0, q.data() + r * w.cols + c0, c1 - c0,
                     GridStep::make(s, format.division), format.qmin, format.qmax);
    });
    return q;
  }

  void check_shape(ConstMatrixView w, const char* what) const {
    detail::check(w.rows == layout.rows && w.cols == layout.cols, "QuantParams: ", what, " is ",
                  w.rows, "x", w.cols, " but the scales were made for ", layout.rows, "x",
                  layout.cols);
    detail::check(static_cast<Index>(scales.size()) == layout.num_scales(),
                  "QuantParams: ", scales.size(), " scales for a ", layout.describe(),
                  " layout that needs ", layout.num_scales());
    detail::check(zeros.empty() || zeros.size() == scales.size(), "QuantParams: ", zeros.size(), " zeros for ",
                  scales.size(), " scales");
    detail::check(zeros.empty() == !format.asymmetric(), "QuantParams: an ",
                  format.asymmetric() ? "asymmetric format needs" : "symmetric format takes no", " zeros");
  }

 private:
  /// clamp(round(x/s) + z, qmin, qmax), formed as quant.py does it (the code
  /// before adding z can exceed int8 for 8 bits, so it stays a float until then).
  void asymmetric_codes(const float* x, std::int8_t* q, Index n, std::size_t k) const {
    const GridStep g = GridStep::make(scales[k], format.division);
    const float z = zeros[k], lo = static_cast<float>(format.qmin), hi = static_cast<float>(format.qmax);
    for (Index i = 0; i < n; ++i) {
      const float t = g.division == Division::reciprocal ? x[i] * g.factor : x[i] / g.factor;
      q[i] = static_cast<std::int8_t>(std::clamp(std::nearbyint(t) + z, lo, hi));
    }
  }
};

/// Integer codes + scales: what an inference engine stores.
struct QuantizedTensor {
  QuantParams params;
  std::vector<std::int8_t> codes;  ///< signed codes, row-major

  [[nodiscard]] Index rows() const { return params.layout.rows; }
  [[nodiscard]] Index cols() const { return params.layout.cols; }

  /// codes · scale (a non-uniform format: level · scale) into out (rows × cols).
  void dequantize(MatrixView out) const {
    detail::check(out.rows == rows() && out.cols == cols(), "QuantizedTensor::dequantize: output is ",
                  out.rows, "x", out.cols, " but the tensor is ", rows(), "x", cols());
    detail::check(static_cast<Index>(params.scales.size()) == params.layout.num_scales() &&
                      static_cast<Index>(codes.size()) == rows() * cols(),
                  "QuantizedTensor::dequantize: ", params.scales.size(), " scales and ", codes.size(),
                  " codes for a ", rows(), "x", cols(), " ", params.layout.describe(), " tensor (a block format keeps "
                  "its scales in its encoded rows)");
    params.for_each_slice([&](Index r, Index c0, Index c1, std::size_t k) {
      const float s = params.scales[k];
      if (params.format.non_uniform()) {
        nf4::dequantize_simd(codes.data() + r * cols() + c0, out.row(r) + c0, c1 - c0, s);
        return;
      }
      if (params.zeros.empty()) {
        kernels::dequantize(codes.data() + r * cols() + c0, out.row(r) + c0, c1 - c0, s);
        return;
      }
      const float z = params.zeros[k];
      for (Index c = c0; c < c1; ++c) out.row(r)[c] = (static_cast<float>(codes[r * cols() + c]) - z) * s;
    });
  }
};

}  // namespace lowbit
