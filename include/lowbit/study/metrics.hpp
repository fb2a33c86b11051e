// What the study measures of a quantized model's weights besides its NLL: per layer,
// ‖Q(W) − W‖² and the output MSE ‖(Q(W) − W)X‖² on the test windows' inputs (X from
// the full-precision model, through the layer's Hessian XXᵀ, so no second forward
// pass), the whole stack's distance ‖w_q − w‖, and the bytes of the packed model.
#pragma once

#include <cmath>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "lowbit/nn/block_quantize.hpp"
#include "lowbit/nn/calibration.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/quant/packing.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/study/results.hpp"

namespace lowbit::study {

/// The registered layers' weights, in registry order.
inline std::vector<std::vector<float>> linear_weights(const nn::Transformer& m) {
  std::vector<std::vector<float>> out;
  for (const auto& l : m.linear_layers()) out.emplace_back(l.weight->values().begin(), l.weight->values().end());
  return out;
}

/// a − b for two row-major rows × cols weights, as a (column-major) float matrix.
inline Eigen::MatrixXf weight_difference(const float* a, const float* b, Index rows, Index cols) {
  Eigen::MatrixXf d(rows, cols);
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < cols; ++c) d(r, c) = a[r * cols + c] - b[r * cols + c];
  return d;
}

/// ‖d‖² summed in double as a cast expression — how every ‖ΔW‖² of the study has
/// been summed since before 2026-12-07: Eigen orders a reduction over an expression
/// differently from one over a double matrix (the last bits), resumed runs mix old
/// and new units, and the landscape's probe scale must equal the RTN distance it
/// replaced to the bit.
inline double squared_norm(const Eigen::MatrixXf& d) { return static_cast<double>(d.cast<double>().squaredNorm()); }

/// The scheme layer `l` is quantized with under the study's scheme `q`: q itself, or
/// for a llama.cpp block format the type llama.cpp stores the layer in (its fallback
/// where the rows are not whole blocks: q4_k → q5_0, …); nullopt where no block type
/// fits — llama.cpp keeps such a layer in F16, the study at full precision (fp32, and
/// counted so in model_bytes).
inline std::optional<QuantSpec> layer_scheme(const QuantSpec& q, const nn::LinearLayer& l) {
  return q.is_block() ? nn::fitted_block_spec(q, l) : std::optional<QuantSpec>(q);
}

/// Packed codes + one scale per slice (and zero points) for the quantized layers at
/// `bits` of `scheme` — a block format's rows as llama.cpp stores them — fp32 for every
/// other parameter (a layer no block type fits included: the study keeps it so).
inline double model_bytes(const nn::Transformer& model, const QuantSpec& scheme, int bits) {
  double bytes = 4.0 * static_cast<double>(model.parameter_count());
  const QuantSpec q = scheme.with_bits(bits);
  for (const auto& l : model.linear_layers()) {
    const Index rows = l.out_features(), cols = l.in_features();
    if (q.is_block()) {
      const auto fit = layer_scheme(q, l);
      bytes += -4.0 * static_cast<double>(rows * cols) +
               (fit ? static_cast<double>(rows) * static_cast<double>(blocks::row_bytes(fit->block, cols, l.name))
                    : 4.0 * static_cast<double>(rows * cols));
      continue;
    }
    const auto scales = static_cast<double>(q.layout(rows, cols, l.name).num_scales());
    const double scale_bytes = q.storage == ScaleStorage::f32 ? 4.0 : 2.0;
    const double zero_bytes = q.codes == CodeSet::asym ? std::ceil(scales * bits / 8.0) : 0.0;
    bytes += -4.0 * static_cast<double>(rows * cols) + static_cast<double>(rows * packed_bytes(cols, bits)) +
             scale_bytes * scales + zero_bytes;
  }
  return bytes;
}

/// Measures quantized weights against the full-precision ones: made once per run
/// (the test windows' Hessians, computed on first use from the fp model, are kept).
class WeightMetrics {
 public:
  /// `fp_linear`: linear_weights() of the full-precision model; both must outlive this.
  WeightMetrics(const std::vector<std::vector<float>>& fp_linear, const std::vector<std::span<const int>>& test)
      : fp_linear_(fp_linear), test_(test) {}

  /// Fills u.layers (with GPTQ's chosen damping per layer, when given) and
  /// u.weight_distance from the model's current weights. `fp_model` runs the model at
  /// full precision for as long as it takes to compute the test Hessians (once).
  template <class AtFullPrecision>
  void measure(nn::Transformer& model, UnitResult& u, const std::map<std::string, double>& damp,
               AtFullPrecision&& fp_model) {
    if (hessians_.empty()) fp_model([&] { hessians_ = nn::layer_hessians(model, test_); });
    double total = 0;
    u.layers.clear();
    for (std::size_t i = 0; i < model.linear_layers().size(); ++i) {
      const auto& l = model.linear_layers()[i];
      const Index rows = l.out_features(), cols = l.in_features();
      const Eigen::MatrixXf delta = weight_difference(l.weight->data(), fp_linear_[i].data(), rows, cols);
      LayerResult lr;
      lr.name = l.name;
      lr.weight_sq_error = squared_norm(delta);
      const Eigen::MatrixXd dh = delta.cast<double>() * hessians_[i].matrix.cast<double>();
      lr.output_mse = hessians_[i].output_mse((dh.array() * delta.cast<double>().array()).sum(), rows);
      if (const auto it = damp.find(l.name); it != damp.end()) lr.damp = it->second;
      total += lr.weight_sq_error;
      u.layers.push_back(std::move(lr));
    }
    u.weight_distance = std::sqrt(total);
  }

 private:
  const std::vector<std::vector<float>>& fp_linear_;
  const std::vector<std::span<const int>>& test_;
  std::vector<Hessian> hessians_;
};

}  // namespace lowbit::study
