// HessianAccumulator against H = (2/n)·XᵀX computed directly in double.
#include <doctest/doctest.h>

#include <string>

#include "gptq_test_util.hpp"

using namespace lowbit;
using lowbit::test::RowMatrix;

namespace {

Eigen::MatrixXd direct(const RowMatrix& x, double n) {
  const Eigen::MatrixXd xd = x.cast<double>();
  return (2.0 / n) * xd.transpose() * xd;
}

template <class Scalar>
Hessian accumulate(const RowMatrix& x, std::initializer_list<Index> batch_tokens, SampleCount count) {
  HessianAccumulator<Scalar> acc(x.cols(), count);
  Index t0 = 0;
  for (Index k : batch_tokens) {
    acc.add(ConstMatrixView(x.row(0).data() + t0 * x.cols(), k, x.cols()), /*sequences=*/2);
    t0 += k;
  }
  REQUIRE(t0 == x.rows());
  return acc.hessian();
}

}  // namespace

TEST_CASE("hessian: running rescale over batches equals (2/n)·XᵀX, float and double") {
  const RowMatrix x = test::correlated_activations(300, 40, 81);
  const Eigen::MatrixXd ref = direct(x, 300.0);
  const double scale = ref.cwiseAbs().maxCoeff();
  const Hessian hd = accumulate<double>(x, {100, 37, 163}, SampleCount::tokens);
  const Hessian hf = accumulate<float>(x, {100, 37, 163}, SampleCount::tokens);
  CHECK((hd.matrix.cast<double>() - ref).cwiseAbs().maxCoeff() < 1e-6 * scale);
  CHECK((hf.matrix.cast<double>() - ref).cwiseAbs().maxCoeff() < 1e-4 * scale);
  CHECK(hd.matrix == hd.matrix.transpose());
  CHECK(hd.samples == 300.0);
  CHECK(hd.tokens == 300);
}

TEST_CASE("hessian: counting sequences scales H by tokens/sequences and output MSE stays right") {
  const RowMatrix x = test::correlated_activations(120, 16, 82);
  // Three batches of two sequences each: n = 6 sequences.
  const Hessian hs = accumulate<double>(x, {40, 40, 40}, SampleCount::sequences);
  CHECK(hs.samples == 6.0);
  const Eigen::MatrixXd ref = direct(x, 6.0);
  CHECK((hs.matrix.cast<double>() - ref).cwiseAbs().maxCoeff() < 1e-5 * ref.cwiseAbs().maxCoeff());

  const RowMatrix w = test::gaussian_matrix(10, 16, 0.3f, 83);
  const SolveResult r = Gptq<Int<3>, PerChannel>().quantize(ConstMatrixView(w), hs);
  const double measured = output_mse(ConstMatrixView(w), ConstMatrixView(r.weights), ConstMatrixView(x));
  CHECK(r.after->output_mse == doctest::Approx(measured).epsilon(1e-4));
  // GPTQ's solution does not depend on the normalisation.
  const Hessian ht = accumulate<double>(x, {40, 40, 40}, SampleCount::tokens);
  const SolveResult rt = Gptq<Int<3>, PerChannel>().quantize(ConstMatrixView(w), ht);
  CHECK(rt.codes == r.codes);
  CHECK(rt.after->output_mse == doctest::Approx(measured).epsilon(1e-4));
}

TEST_CASE("hessian: bad activations are a lowbit::Error") {
  HessianAccumulator<float> acc(8);
  const RowMatrix x = test::gaussian_matrix(4, 6, 1.0f, 84);
  CHECK_THROWS_WITH_AS(acc.add(ConstMatrixView(x), 1, "blk.0.in"),
                       doctest::Contains("'blk.0.in' have 6 features but the Hessian is for 8"), Error);
  RowMatrix bad = test::gaussian_matrix(4, 8, 1.0f, 85);
  bad(1, 2) = NAN;
  CHECK_THROWS_WITH_AS(acc.add(ConstMatrixView(bad)), doctest::Contains("[1, 2]"), Error);
  CHECK_THROWS_WITH_AS((void)acc.hessian(), doctest::Contains("no activations"), Error);
  CHECK_THROWS_AS(HessianAccumulator<double>(0), Error);
}
