// Rtn<Format, Granularity, ScaleSearch>: round-to-nearest behind the solver interface,
// so that callers swap RTN and GPTQ by type.
#pragma once

#include <chrono>
#include <string_view>
#include <vector>

#include "lowbit/core/matrix_view.hpp"
#include "lowbit/gptq/gptq.hpp"
#include "lowbit/gptq/hessian.hpp"
#include "lowbit/gptq/result.hpp"
#include "lowbit/quant/abs_max.hpp"
#include "lowbit/quant/quantizer.hpp"

namespace lowbit {

/// Options of Rtn: only whether to evaluate the layer error when H is given.
struct RtnOptions {
  bool evaluate = true;
};

/// Round-to-nearest with the Quantizer's scales. H, when given, is only used to
/// report the layer objective (before = after: there is no error feedback);
/// column_losses stay zero, since RTN has no inverse Hessian to weigh them by.
template <QuantFormat Format, class Granularity = PerTensor, class ScaleSearch = AbsMax>
  requires ScaleSearchFor<ScaleSearch, Format>
class Rtn {
 public:
  using format_type = Format;
  using granularity_type = Granularity;
  using search_type = ScaleSearch;

  Rtn() = default;
  explicit Rtn(RtnOptions options, Granularity granularity = {}, ScaleSearch search = {})
      : options_(options), quantizer_(granularity, search) {}

  [[nodiscard]] RtnOptions& options() { return options_; }
  [[nodiscard]] const RtnOptions& options() const { return options_; }

  [[nodiscard]] SolveResult quantize(ConstMatrixView w, const Hessian& h, std::string_view name = "weight") const {
    detail::check_weight(w, name);
    detail::check_hessian(h, w.cols, name);
    SolveResult res = quantize(w, name);
    if (options_.evaluate) {
      res.after = detail::layer_error(w, ConstMatrixView(res.weights), h);
      res.before = res.after;
    }
    return res;
  }

  [[nodiscard]] SolveResult quantize(ConstMatrixView w, std::string_view name = "weight") const {
    detail::check_weight(w, name);
    const auto start = std::chrono::steady_clock::now();
    SolveResult res;
    res.weights = SolveResult::RowMajorMatrix(w.rows, w.cols);
    res.params = quantizer_.fake_quantize(w, MatrixView(res.weights), name);
    res.codes = res.params.codes(w);
    const Index g = res.params.layout.kind == ScaleLayout::Kind::group ? res.params.layout.group_size : 0;
    res.group_index.assign(static_cast<std::size_t>(w.cols), 0);
    if (g > 0)
      for (Index c = 0; c < w.cols; ++c) res.group_index[static_cast<std::size_t>(c)] = c / g;
    res.column_losses.assign(static_cast<std::size_t>(w.cols), 0.0);
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return res;
  }

 private:
  RtnOptions options_{};
  Quantizer<Format, Granularity, ScaleSearch> quantizer_{};
};

}  // namespace lowbit
