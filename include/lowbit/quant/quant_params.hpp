// QuantParams: the scales of one weight plus everything needed to apply them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/format.hpp"
#include "lowbit/quant/granularity.hpp"
#include "lowbit/quant/kernels.hpp"

namespace lowbit {

/// Scales in layout order (row-major over rows × groups_per_row) and the format.
/// Applying them needs no template: export code and solvers use this directly.
struct QuantParams {
  FormatInfo format;
  ScaleLayout layout;
  std::vector<float> scales;

  [[nodiscard]] float scale_at(Index r, Index c) const {
    return scales[static_cast<std::size_t>(layout.scale_index(r, c))];
  }

  /// Calls f(row, col_begin, col_end, scale) for every contiguous run of elements
  /// that shares a scale, row by row.
  template <class F>
  void for_each_run(F&& f) const {
    // Runs come in scale order, so the scale index is a counter (scale_at's integer
    // divisions cost as much as quantizing a short group).
    const Index g = layout.kind == ScaleLayout::Kind::group ? layout.group_size : layout.cols;
    const bool one_scale = layout.kind == ScaleLayout::Kind::tensor;
    std::size_t k = 0;
    for (Index r = 0; r < layout.rows; ++r)
      for (Index c0 = 0; c0 < layout.cols; c0 += g) {
        const Index c1 = std::min(layout.cols, c0 + g);
        f(r, c0, c1, scales[one_scale ? 0 : k++]);
      }
  }

  /// Fake-quantizes w into out (same shape; they may alias).
  void apply(ConstMatrixView w, MatrixView out) const {
    check_shape(w, "input");
    detail::check_same_shape(w, out, "QuantParams::apply");
    // Outputs are written in runs of a row at least (a row of groups is one call).
    const kernels::Store store = kernels::store_for(static_cast<std::size_t>(w.size()) * sizeof(float), w.cols);
    if (layout.kind == ScaleLayout::Kind::tensor) {
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
  }
};

/// Integer codes + scales: what an inference engine stores.
struct QuantizedTensor {
  QuantParams params;
  std::vector<std::int8_t> codes;  ///< signed codes, row-major

  [[nodiscard]] Index rows() const { return params.layout.rows; }
  [[nodiscard]] Index cols() const { return params.layout.cols; }

  /// codes · scale into out (rows × cols).
  void dequantize(MatrixView out) const {
    detail::check(out.rows == rows() && out.cols == cols(), "QuantizedTensor::dequantize: output is ",
                  out.rows, "x", out.cols, " but the tensor is ", rows(), "x", cols());
    params.for_each_run([&](Index r, Index c0, Index c1, float s) {
      kernels::dequantize(codes.data() + r * cols() + c0, out.row(r) + c0, c1 - c0, s);
    });
  }
};

}  // namespace lowbit
