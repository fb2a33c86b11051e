// backend::Eigen's U (reversed Cholesky + blocked triangular inverse) against the
// reference's route chol(H) → H⁻¹ → chol(H⁻¹, upper), computed plainly in double.
#include <doctest/doctest.h>

#include <Eigen/Dense>

#include "gptq_test_util.hpp"

using namespace lowbit;
using lowbit::test::RowMatrix;

TEST_CASE("eigen backend: U equals the upper Cholesky factor of the damped H⁻¹, in any order") {
  for (Index n : {Index{5}, Index{48}, Index{50}, Index{130}}) {
    CAPTURE(n);
    const Hessian h = test::hessian_of(test::correlated_activations(3 * n, n, static_cast<std::uint32_t>(n)));
    std::vector<Index> perm(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) perm[static_cast<std::size_t>(i)] = (i * 11 + 3) % n;  // a permutation: gcd(11, n) = 1
    for (bool permuted : {false, true}) {
      CAPTURE(permuted);
      const float damp = 0.01f * h.matrix.diagonal().mean();
      backend::Eigen::GptqWorkspace ws;
      std::string why;
      const std::vector<Index> order = permuted ? perm : std::vector<Index>{};
      REQUIRE(ws.factor_inverse(h.matrix, order, damp, why));

      Eigen::MatrixXd hp(n, n);
      for (Index i = 0; i < n; ++i)
        for (Index j = 0; j < n; ++j)
          hp(i, j) = h.matrix(permuted ? perm[static_cast<std::size_t>(i)] : i,
                              permuted ? perm[static_cast<std::size_t>(j)] : j);
      hp.diagonal().array() += damp;
      const Eigen::MatrixXd hinv = hp.llt().solve(Eigen::MatrixXd::Identity(n, n));
      const Eigen::MatrixXd u_ref = hinv.llt().matrixU();

      const Eigen::MatrixXd u = ws.u().cast<double>();
      const double scale = u_ref.cwiseAbs().maxCoeff();
      CHECK((u - u_ref).cwiseAbs().maxCoeff() < 1e-4 * scale);
      CHECK(u.triangularView<Eigen::StrictlyLower>().toDenseMatrix().isZero());
    }
  }
}

TEST_CASE("eigen backend: blocked triangular inverse equals back substitution") {
  const Index n = 200;
  Eigen::MatrixXd t = Eigen::MatrixXd::Random(n, n).triangularView<Eigen::Upper>();
  t.diagonal().array() = t.diagonal().array().abs() + 2.0;
  Eigen::MatrixXd inv = t;
  lowbit::blas::eigen::invert_upper_blocked<double>(inv);
  const Eigen::MatrixXd ref = t.triangularView<Eigen::Upper>().solve(Eigen::MatrixXd::Identity(n, n));
  CHECK((inv - ref).cwiseAbs().maxCoeff() < 1e-12);
}
