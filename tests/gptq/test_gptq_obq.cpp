// GPTQ against a brute-force Optimal Brain Quantization reference on tiny layers.
//
// OBQ (Frantar & Alistarh 2022), greedy over a fixed column order, in double: for
// each column q in turn, with F the columns not yet quantized, invert H_F afresh,
// quantize w_q, and move the remaining weights by the optimal-brain-surgeon update
// δ_F = -(w_q − quant(w_q)) / [H_F⁻¹]_qq · (H_F⁻¹)_{:,q}. Its step loss is
// (w_q − quant(w_q))² / [H_F⁻¹]_qq / 2. GPTQ computes the same thing with one
// Cholesky factor and lazy blocks, so with the same order the codes must match.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <Eigen/Dense>

#include "gptq_test_util.hpp"

using namespace lowbit;
using lowbit::test::RowMatrix;

namespace {

struct ObqResult {
  Eigen::MatrixXd q;
  std::vector<double> losses;  // per original column
};

/// scale(r): the fixed scale of row r. order: processing order of the columns.
template <class Format, class ScaleOf>
ObqResult obq(const RowMatrix& w, const Eigen::MatrixXd& h_damped, ScaleOf scale_of,
              const std::vector<Index>& order) {
  const Index rows = w.rows(), cols = w.cols();
  ObqResult out{Eigen::MatrixXd::Zero(rows, cols), std::vector<double>(static_cast<std::size_t>(cols), 0.0)};
  for (Index r = 0; r < rows; ++r) {
    Eigen::VectorXd cur = w.row(r).transpose().cast<double>();
    const double s = scale_of(r);
    for (Index step = 0; step < cols; ++step) {
      // F = order[step..]: the columns still free, the one to quantize first.
      const Index nf = cols - step;
      Eigen::MatrixXd hf(nf, nf);
      for (Index a = 0; a < nf; ++a)
        for (Index b = 0; b < nf; ++b) hf(a, b) = h_damped(order[step + a], order[step + b]);
      const Eigen::MatrixXd hinv = hf.inverse();
      const Index q = order[step];
      const double x = cur[q];
      // The format's rounding rule, with the division GptqGrid uses.
      const double t = Format::division == Division::exact ? x / s : x * (1.0 / s);
      const double code = std::clamp(std::nearbyint(t), double(Format::qmin), double(Format::qmax));
      const double qv = code * s;
      const double e = (x - qv) / hinv(0, 0);
      for (Index a = 0; a < nf; ++a) cur[order[step + a]] -= e * hinv(a, 0);
      cur[q] = qv;
      out.q(r, q) = qv;
      out.losses[static_cast<std::size_t>(q)] += (x - qv) * (x - qv) / hinv(0, 0) / 2.0;
    }
  }
  return out;
}

template <class Format, class Granularity>
void compare_with_obq(Index rows, Index cols, std::uint32_t seed, bool act_order) {
  const RowMatrix w = test::gaussian_matrix(rows, cols, 0.5f, seed);
  const RowMatrix x = test::correlated_activations(3 * cols, cols, seed + 10);
  const Hessian h = test::hessian_of(x);
  const double percdamp = 0.01;

  Eigen::MatrixXd hd = h.matrix.cast<double>();
  const double damp = percdamp * hd.diagonal().mean();
  hd.diagonal().array() += damp;
  std::vector<Index> order(static_cast<std::size_t>(cols));
  std::iota(order.begin(), order.end(), Index{0});
  if (act_order)
    std::stable_sort(order.begin(), order.end(),
                     [&](Index a, Index b) { return h.matrix(a, a) > h.matrix(b, b); });

  const QuantParams p = Quantizer<Format, Granularity>().params(ConstMatrixView(w));
  const ObqResult ref = obq<Format>(w, hd, [&](Index r) { return double(p.scale_at(r, 0)); }, order);

  for (Index block : {Index{1}, Index{2}, Index{128}}) {
    CAPTURE(block);
    GptqOptions o;
    o.percdamp = percdamp;
    o.block_size = block;
    o.act_order = act_order;
    const SolveResult r = Gptq<Format, Granularity>(o).quantize(ConstMatrixView(w), h);
    REQUIRE(r.info() == Eigen::Success);
    for (Index i = 0; i < rows; ++i)
      for (Index j = 0; j < cols; ++j) CHECK(r.weights(i, j) == doctest::Approx(ref.q(i, j)).epsilon(1e-5));
    for (Index j = 0; j < cols; ++j)
      CHECK(r.column_losses[static_cast<std::size_t>(j)] ==
            doctest::Approx(ref.losses[static_cast<std::size_t>(j)]).epsilon(1e-3).scale(1e-7));
  }
}

}  // namespace

TEST_CASE("gptq equals greedy OBQ in fixed column order (1-3 rows, 4-6 columns)") {
  for (std::uint32_t seed = 1; seed <= 4; ++seed) {
    CAPTURE(seed);
    compare_with_obq<GptqGrid<3>, PerChannel>(1 + seed % 3, 4 + seed % 3, seed, false);
    compare_with_obq<Int<2>, PerTensor>(2, 5, seed + 100, false);
    compare_with_obq<Int<4>, PerChannel>(3, 6, seed + 200, false);
  }
}

TEST_CASE("gptq with act-order equals OBQ in descending-diag(H) order") {
  for (std::uint32_t seed = 1; seed <= 4; ++seed) {
    CAPTURE(seed);
    compare_with_obq<GptqGrid<3>, PerChannel>(3, 6, seed + 300, true);
    compare_with_obq<Int<3>, PerTensor>(2, 5, seed + 400, true);
  }
}
