// The layer Hessian H = (2/n)·Σ XᵀX of GPTQ, streamed from calibration activations.
#pragma once

#include <cmath>
#include <string>
#include <string_view>
#include <utility>

#include <Eigen/Core>

#include "lowbit/backend/eigen.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/kernels.hpp"

namespace lowbit {

/// What n in H = (2/n)·Σ XᵀX counts.
///  * `sequences`: the reference gptq.py's add_batch: n grows by the batch size
///    (inp.shape[0]), so H is a sum over tokens divided by the number of sequences.
///  * `tokens`: n grows by the number of rows of X, so H is the mean of 2·xxᵀ over
///    tokens and tr(ΔHΔᵀ)/2 is the layer's output squared error per token.
/// GPTQ's solution is the same either way (H only changes by a constant factor and
/// the damping is relative); only the printed objective scales.
enum class SampleCount { sequences, tokens };

/// A Hessian ready for the solvers: the full symmetric matrix (cols × cols, float)
/// plus the counts that relate tr(ΔHΔᵀ) to the output error ‖ΔXᵀ‖².
struct Hessian {
  ::Eigen::MatrixXf matrix;  ///< symmetric; column-major = row-major
  double samples = 0.0;      ///< n of the normalisation 2/n (0: the matrix came from elsewhere)
  Index tokens = 0;          ///< rows of X seen (0: unknown)
  SampleCount count = SampleCount::tokens;

  /// A Hessian computed elsewhere (e.g. by PyTorch), assumed normalised per token:
  /// output MSE is then tr(ΔHΔᵀ) / (2·rows).
  static Hessian from_matrix(ConstMatrixView h, std::string_view name = "hessian") {
    detail::check(h.rows == h.cols, "Hessian '", name, "' must be square, got ", h.rows, "x", h.cols);
    detail::check(h.rows > 0, "Hessian '", name, "' is empty");
    Hessian out;
    out.matrix = ::Eigen::Map<const ::Eigen::MatrixXf>(h.data, h.rows, h.cols).transpose();
    return out;
  }

  [[nodiscard]] Index size() const { return matrix.rows(); }
  [[nodiscard]] ConstMatrixView view() const { return {matrix.data(), matrix.rows(), matrix.cols()}; }

  /// Mean squared output error ‖ΔXᵀ‖² / (tokens·rows) of a weight error Δ (rows × cols)
  /// whose layer objective tr(ΔHΔᵀ) is `objective`: XᵀX = (n/2)·H.
  [[nodiscard]] double output_mse(double objective, Index rows) const {
    if (samples <= 0.0 || tokens <= 0) return objective / (2.0 * static_cast<double>(rows));
    return objective * samples / (2.0 * static_cast<double>(tokens) * static_cast<double>(rows));
  }
};

/// Streams activations X (tokens × in_features, row-major, any number of batches)
/// into H = (2/n)·Σ XᵀX with the reference's running rescale: before each batch of
/// k samples, H ← H·n/(n+k), n ← n+k, then H += (2/n)·XᵀX. Only the lower
/// triangle is accumulated (a symmetric rank-k update, SYRK). Scalar (float or
/// double) is the accumulation precision; the reference accumulates in float.
template <class Scalar = float, class Backend = backend::Eigen>
class HessianAccumulator {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "HessianAccumulator accumulates in float or double");

 public:
  explicit HessianAccumulator(Index in_features, SampleCount count = SampleCount::tokens)
      : acc_(checked_size(in_features)), count_(count) {}

  /// Adds one batch. `sequences` is how many sequences the batch holds (used when
  /// counting sequences; the reference's inp.shape[0]).
  void add(ConstMatrixView x, Index sequences = 1, std::string_view name = "activations") {
    detail::check(x.cols == acc_.size(), "activations '", name, "' have ", x.cols,
                  " features but the Hessian is for ", acc_.size());
    detail::check(x.rows > 0, "activations '", name, "' are empty (0 tokens)");
    detail::check(sequences > 0, "activations '", name, "': sequence count must be positive, got ",
                  sequences);
    const SliceStats st = kernels::stats(x.data, x.size());
    if (!st.finite) {
      const Index i = kernels::first_non_finite(x.data, x.size());
      detail::fail("activations '", name, "' have a non-finite value (", x.data[i], ") at [", i / x.cols,
                   ", ", i % x.cols, "]");
    }
    const double k = count_ == SampleCount::tokens ? static_cast<double>(x.rows) : static_cast<double>(sequences);
    const double beta = samples_ / (samples_ + k);
    samples_ += k;
    tokens_ += x.rows;
    acc_.update(x, 2.0 / samples_, beta);
  }

  [[nodiscard]] Index size() const { return acc_.size(); }
  [[nodiscard]] double samples() const { return samples_; }
  [[nodiscard]] Index tokens() const { return tokens_; }

  /// The accumulated Hessian (full symmetric, float). Throws if nothing was added.
  [[nodiscard]] Hessian hessian() const {
    detail::check(tokens_ > 0, "HessianAccumulator: no activations were added");
    Hessian h;
    h.matrix = acc_.full();
    h.samples = samples_;
    h.tokens = tokens_;
    h.count = count_;
    return h;
  }

 private:
  static Index checked_size(Index n) {
    detail::check(n > 0, "HessianAccumulator: in_features must be positive, got ", n);
    return n;
  }

  typename Backend::template SymmetricAccumulator<Scalar> acc_;
  SampleCount count_;
  double samples_ = 0.0;
  Index tokens_ = 0;
};

}  // namespace lowbit
