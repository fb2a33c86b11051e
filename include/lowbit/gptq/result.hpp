// What a layer solver (Gptq, Rtn) returns: weights, codes, scales, losses, objectives.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "lowbit/backend/blas.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/gptq/hessian.hpp"
#include "lowbit/quant/quant_params.hpp"

namespace lowbit {

/// One failed factorization and the damping tried next.
struct DampRetry {
  double percdamp = 0.0;  ///< relative damping that failed (λ = percdamp · mean diag H)
  double damp = 0.0;      ///< absolute λ that failed
  std::string reason;
};

/// tr(ΔHΔᵀ) and the output MSE ‖ΔXᵀ‖²/(tokens·rows) of one quantized weight, Δ = W − Q,
/// with the undamped Hessian the caller passed.
struct LayerError {
  double objective = 0.0;
  double output_mse = 0.0;
};

/// Result of quantizing one layer. Check info() first, as with Eigen's solvers:
/// `Eigen::Success`, or `Eigen::NumericalIssue` when H could not be factorized even
/// after every damping retry — then `weights` hold round-to-nearest with the
/// solver's initial scales (finite, never NaN) and `message` says why.
struct SolveResult {
  using RowMajorMatrix = ::Eigen::Matrix<float, ::Eigen::Dynamic, ::Eigen::Dynamic, ::Eigen::RowMajor>;

  RowMajorMatrix weights;            ///< fake-quantized Q (rows × cols), original column order
  std::vector<std::int8_t> codes;    ///< signed codes, row-major: Q[r,c] = (codes[r,c] − zero)·scale(r, group_index[c])
  QuantParams params;                ///< scales in the QuantParams layout (groups: rows × groups)
  std::vector<std::uint8_t> block_data; ///< a block format's encoded rows (llama.cpp's bytes); codes stay empty
  std::vector<Index> group_index;    ///< per original column: the group whose scale it uses (g_idx)
  std::vector<Index> permutation;    ///< act-order: processing position → original column (empty: identity)
  std::vector<double> column_losses; ///< per original column: Σ_rows (w−q)²/d² / 2 (the reference's Losses)
  double percdamp = 0.0;             ///< relative damping finally used
  double damp = 0.0;                 ///< absolute λ finally used
  std::vector<DampRetry> retries;    ///< failed factorizations, in order
  std::optional<LayerError> before;  ///< round-to-nearest with the initial scales (needs H)
  std::optional<LayerError> after;   ///< this result (needs H)
  double seconds = 0.0;              ///< wall time of the solve (evaluation excluded)
  ::Eigen::ComputationInfo status = ::Eigen::Success;
  std::string message;

  [[nodiscard]] ::Eigen::ComputationInfo info() const { return status; }
  [[nodiscard]] double total_loss() const {
    double s = 0.0;
    for (double l : column_losses) s += l;
    return s;
  }
  [[nodiscard]] Index rows() const { return weights.rows(); }
  [[nodiscard]] Index cols() const { return weights.cols(); }

  /// Whether every column uses the scale the QuantParams layout gives it
  /// (group_index[c] = c / group_size): true except for dynamic groups with act-order.
  [[nodiscard]] bool natural_groups() const {
    const Index g = params.layout.kind == ScaleLayout::Kind::group ? params.layout.group_size : 0;
    for (std::size_t c = 0; c < group_index.size(); ++c)
      if (group_index[c] != (g > 0 ? static_cast<Index>(c) / g : 0)) return false;
    return true;
  }

  /// Codes and scales as a QuantizedTensor (packable, exportable). Throws when the
  /// groups are not natural: those need group_index (g_idx) beside the scales.
  [[nodiscard]] QuantizedTensor quantized_tensor() const {
    lowbit::detail::check(block_data.empty(), "SolveResult: a block format's result is its encoded rows (block_data)");
    lowbit::detail::check(natural_groups(), "SolveResult: dynamic groups with act-order use group_index (g_idx); "
                                            "a QuantizedTensor cannot express them");
    return QuantizedTensor{params, codes};
  }
};

namespace detail {

/// tr(ΔHΔᵀ) for Δ = W − Q (row-major rows × cols), H symmetric cols × cols.
/// One GEMM (rows·cols² multiply-adds, through lowbit::blas: as big as a solve's own
/// updates, so it runs at the BLAS's rate on every thread); row sums in double.
inline double layer_objective(ConstMatrixView w, ConstMatrixView q, const ::Eigen::MatrixXf& h) {
  using RM = ::Eigen::Matrix<float, ::Eigen::Dynamic, ::Eigen::Dynamic, ::Eigen::RowMajor>;
  const ::Eigen::Map<const RM> wm(w.data, w.rows, w.cols), qm(q.data, q.rows, q.cols);
  const RM delta = wm - qm;
  RM dh(delta.rows(), delta.cols());
  const Index n = delta.cols();  // H is symmetric: its column-major storage is also row-major
  blas::gemm<float>(delta.rows(), n, n, 1.0f, delta.data(), n, blas::Trans::no, h.data(), n, blas::Trans::no, 0.0f,
                    dh.data(), n);
  double s = 0.0;
  for (Index r = 0; r < delta.rows(); ++r)
    s += static_cast<double>(delta.row(r).dot(dh.row(r)));
  return s;
}

inline LayerError layer_error(ConstMatrixView w, ConstMatrixView q, const Hessian& h) {
  LayerError e;
  e.objective = layer_objective(w, q, h.matrix);
  e.output_mse = h.output_mse(e.objective, w.rows);
  return e;
}

}  // namespace detail

/// tr((W−Q)H(W−Q)ᵀ) — the layer objective GPTQ minimises.
inline double layer_objective(ConstMatrixView w, ConstMatrixView q, const Hessian& h) {
  lowbit::detail::check(w.rows == q.rows && w.cols == q.cols, "layer_objective: W is ", w.rows, "x", w.cols,
                        " but Q is ", q.rows, "x", q.cols);
  lowbit::detail::check(h.size() == w.cols, "layer_objective: H is ", h.size(), "x", h.size(), " but W has ",
                        w.cols, " columns");
  return detail::layer_objective(w, q, h.matrix);
}

/// ‖QXᵀ − WXᵀ‖² / (tokens·rows) measured directly on activations X (tokens × cols).
inline double output_mse(ConstMatrixView w, ConstMatrixView q, ConstMatrixView x) {
  lowbit::detail::check(w.rows == q.rows && w.cols == q.cols, "output_mse: W is ", w.rows, "x", w.cols,
                        " but Q is ", q.rows, "x", q.cols);
  lowbit::detail::check(x.cols == w.cols, "output_mse: activations have ", x.cols, " features but W has ",
                        w.cols, " columns");
  using RM = ::Eigen::Matrix<float, ::Eigen::Dynamic, ::Eigen::Dynamic, ::Eigen::RowMajor>;
  const ::Eigen::Map<const RM> wm(w.data, w.rows, w.cols), qm(q.data, q.rows, q.cols), xm(x.data, x.rows, x.cols);
  const RM delta = wm - qm;
  const RM out = xm * delta.transpose();
  return out.cast<double>().squaredNorm() / static_cast<double>(out.size());
}

}  // namespace lowbit
