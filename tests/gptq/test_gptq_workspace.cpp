// The solver's reused workspace: results must not depend on what an earlier call
// left in it (other shapes, act-order, failed factorizations), on whether the
// caller passes its own, or on a second thread using the same solver.
#include <doctest/doctest.h>

#include <cstring>
#include <thread>
#include <vector>

#include <Eigen/Eigenvalues>

#include "gptq_test_util.hpp"

using namespace lowbit;
using lowbit::test::RowMatrix;

namespace {

bool identical(const SolveResult& a, const SolveResult& b) {
  return a.weights.rows() == b.weights.rows() && a.weights.cols() == b.weights.cols() &&
         std::memcmp(a.weights.data(), b.weights.data(), static_cast<std::size_t>(a.weights.size()) * sizeof(float)) ==
             0 &&
         a.codes == b.codes && a.params.scales == b.params.scales && a.column_losses == b.column_losses &&
         a.permutation == b.permutation && a.group_index == b.group_index && a.percdamp == b.percdamp &&
         a.retries.size() == b.retries.size() && a.info() == b.info();
}

struct Problem {
  RowMatrix w;
  Hessian h;
};

Problem problem(Index rows, Index cols, std::uint32_t seed) {
  return {test::gaussian_matrix(rows, cols, 0.05f, seed),
          test::hessian_of(test::correlated_activations(2 * cols, cols, seed + 1))};
}

}  // namespace

TEST_CASE("gptq workspace: a reused solver gives the bits of a fresh one, whatever came before") {
  const std::vector<Problem> layers = {problem(48, 160, 1), problem(96, 40, 2), problem(20, 300, 3), problem(48, 160, 4)};
  for (const bool act_order : {false, true}) {
    CAPTURE(act_order);
    GptqOptions o;
    o.act_order = act_order;
    o.block_size = 32;
    const Gptq<Int<3>, PerGroup<>> reused(o, PerGroup<>{20});
    Gptq<Int<3>, PerGroup<>>::workspace_type own;
    for (std::size_t k = 0; k < layers.size(); ++k) {
      CAPTURE(k);
      const ConstMatrixView w(layers[k].w);
      const SolveResult fresh = Gptq<Int<3>, PerGroup<>>(o, PerGroup<>{20}).quantize(w, layers[k].h);
      CHECK(identical(reused.quantize(w, layers[k].h), fresh));
      CHECK(identical(reused.quantize(w, layers[k].h, own), fresh));
    }
    reused.release_workspace();
    CHECK(identical(reused.quantize(ConstMatrixView(layers[0].w), layers[0].h),
                    Gptq<Int<3>, PerGroup<>>(o, PerGroup<>{20}).quantize(ConstMatrixView(layers[0].w), layers[0].h)));
  }
}

TEST_CASE("gptq workspace: a damping retry in a reused workspace matches a fresh solve") {
  // An indefinite H (smallest eigenvalue -5% of mean(diag H)): percdamp 0.01 fails.
  const Index cols = 32;
  const RowMatrix w = test::gaussian_matrix(6, cols, 0.3f, 41);
  Hessian h = test::hessian_of(test::gaussian_matrix(300, cols, 1.0f, 42));
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(h.matrix.cast<double>());
  const Eigen::VectorXd v = es.eigenvectors().col(0);
  const double shift = es.eigenvalues()[0] + 0.05 * h.matrix.diagonal().cast<double>().mean();
  h.matrix -= (shift * v * v.transpose()).cast<float>();
  h.matrix = ((h.matrix + h.matrix.transpose()) * 0.5f).eval();

  const Gptq<Int<4>, PerChannel> reused;
  const Problem other = problem(30, cols, 9);
  (void)reused.quantize(ConstMatrixView(other.w), other.h);  // leaves a valid U behind
  const SolveResult a = reused.quantize(ConstMatrixView(w), h);
  const SolveResult b = Gptq<Int<4>, PerChannel>().quantize(ConstMatrixView(w), h);
  CHECK(a.retries.size() == 1);
  CHECK(identical(a, b));
}

TEST_CASE("gptq workspace: two threads on one solver get the serial results") {
  const Problem a = problem(64, 128, 11), b = problem(40, 96, 12);
  const Gptq<Int<4>, PerChannel> solver;
  const SolveResult ref_a = Gptq<Int<4>, PerChannel>().quantize(ConstMatrixView(a.w), a.h);
  const SolveResult ref_b = Gptq<Int<4>, PerChannel>().quantize(ConstMatrixView(b.w), b.h);
  std::vector<SolveResult> out_a(6), out_b(6);
  std::thread t([&] {
    for (auto& r : out_a) r = solver.quantize(ConstMatrixView(a.w), a.h);
  });
  for (auto& r : out_b) r = solver.quantize(ConstMatrixView(b.w), b.h);
  t.join();
  for (const auto& r : out_a) CHECK(identical(r, ref_a));
  for (const auto& r : out_b) CHECK(identical(r, ref_b));
}

TEST_CASE("gptq workspace: results do not depend on the thread count (row chunks, blocked factorizations)") {
  // 300 rows: three 128-row chunks (the last 44); 768 columns: a blocked Cholesky and
  // the split inverse. Dynamic groups, act-order, a block format and NF4 cover every
  // per-row path of the column loop.
  const Problem p = problem(300, 768, 41);
  const int saved = autograd::num_threads();
  for (const char* scheme : {"int4", "int4:g128:gptq", "int3:g64:asym", "q4_k", "nf4:g64"})
    for (const bool act_order : {false, true}) {
      CAPTURE(scheme);
      CAPTURE(act_order);
      GptqOptions o;
      o.act_order = act_order;
      const SpecGptq<> solver(QuantSpec::parse(scheme), o);
      autograd::set_num_threads(1);
      const SolveResult one = solver.quantize(ConstMatrixView(p.w), p.h);
      for (const int threads : {2, 3}) {
        CAPTURE(threads);
        autograd::set_num_threads(threads);
        const SolveResult many = solver.quantize(ConstMatrixView(p.w), p.h);
        CHECK(identical(one, many));
        CHECK(one.block_data == many.block_data);
      }
    }
  autograd::set_num_threads(saved);
}
