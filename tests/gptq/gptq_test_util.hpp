// Helpers shared by the GPTQ tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "lowbit/gptq.hpp"
#include "lowbit/lowbit.hpp"
#include "../support/random.hpp"

namespace lowbit::test {

using RowMatrix = SolveResult::RowMajorMatrix;

/// Gaussian matrix (row-major).
inline RowMatrix gaussian_matrix(Index rows, Index cols, float stddev, std::uint32_t seed) {
  RowMatrix m(rows, cols);
  const auto v = gaussian(static_cast<std::size_t>(rows * cols), stddev, seed);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = v[static_cast<std::size_t>(i)];
  return m;
}

/// Activations that look like a transformer's: correlated features with uneven
/// scales (log-normal) and a few outlier features, tokens × cols.
inline RowMatrix correlated_activations(Index tokens, Index cols, std::uint32_t seed) {
  const RowMatrix z = gaussian_matrix(tokens, cols, 1.0f, seed);
  RowMatrix mix = gaussian_matrix(cols, cols, 0.4f / std::sqrt(static_cast<float>(cols)), seed + 1);
  mix.diagonal().array() += 1.0f;
  const auto logs = gaussian(static_cast<std::size_t>(cols), 0.6f, seed + 2);
  RowMatrix x = z * mix;
  for (Index c = 0; c < cols; ++c) {
    float s = std::exp(logs[static_cast<std::size_t>(c)]);
    if (c % 17 == 3) s *= 8.0f;  // outlier features
    x.col(c) *= s;
  }
  return x;
}

inline Hessian hessian_of(const RowMatrix& x) {
  HessianAccumulator<double> acc(x.cols());
  acc.add(ConstMatrixView(x));
  return acc.hessian();
}

/// Q must equal codes · scale exactly, through group_index and the QuantParams layout.
inline bool codes_reproduce_weights(const SolveResult& r) {
  const Index groups = r.params.layout.groups_per_row();
  for (Index row = 0; row < r.rows(); ++row)
    for (Index c = 0; c < r.cols(); ++c) {
      const std::size_t k = r.params.layout.kind == ScaleLayout::Kind::tensor
                                ? 0
                                : static_cast<std::size_t>(row * groups + r.group_index[static_cast<std::size_t>(c)]);
      const float q = static_cast<float>(r.codes[static_cast<std::size_t>(row * r.cols() + c)]) * r.params.scales[k];
      if (q != r.weights(row, c)) return false;
    }
  return true;
}

}  // namespace lowbit::test
