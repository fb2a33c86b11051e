// GPTQ against the PyTorch re-implementation of the reference gptq.py / quant.py
// (tests/fixtures/gptq/gptq_reference.txt, scripts/fixtures/gen_gptq_fixtures.py).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "reference_checks.hpp"
#include "../support/fixture.hpp"

using namespace lowbit;
using lowbit::test::RowMatrix;
using lowbit::test::matrix_of;

namespace {

const test::Fixture& fixture() {
  static const test::Fixture f("gptq/gptq_reference.txt");
  return f;
}

void check_case(const std::string& layer, const std::string& name) {
  const auto& f = fixture();
  const std::string p = layer + "." + name + ".";
  const test::ReferenceCase c = test::ReferenceCase::read(f, layer, name);
  const RowMatrix w = matrix_of(f[layer + ".W"]);
  const Hessian h = Hessian::from_matrix(ConstMatrixView(matrix_of(f[layer + ".H"])));
  const SolveResult r = test::run_reference_case<GptqGrid>(c, w, h);
  CAPTURE(layer);
  CAPTURE(name);
  REQUIRE(r.info() == ::Eigen::Success);
  CHECK(r.retries.empty());
  CHECK(test::codes_reproduce_weights(r));

  // Integer codes: identical (the fixture's cases are decision-stable in fp32 and fp64).
  const auto& codes = f[p + "codes"].values;
  REQUIRE(codes.size() == r.codes.size());
  Index mismatched = 0;
  for (std::size_t i = 0; i < codes.size(); ++i) mismatched += static_cast<float>(r.codes[i]) != codes[i];
  CHECK(mismatched == 0);

  // Scales, in the reference's group order.
  const auto& scales = f[p + "scales"].values;
  REQUIRE(scales.size() == r.params.scales.size());
  for (std::size_t i = 0; i < scales.size(); ++i)
    CHECK(r.params.scales[i] == doctest::Approx(scales[i]).epsilon(1e-5));

  // Q = code · scale of its group (the reference's Q is exactly that).
  const Index groups = r.params.layout.groups_per_row();
  double max_rel = 0.0;
  for (Index row = 0; row < w.rows(); ++row)
    for (Index col = 0; col < w.cols(); ++col) {
      const std::size_t g = r.params.layout.kind == ScaleLayout::Kind::tensor
                                ? 0
                                : static_cast<std::size_t>(row * groups + r.group_index[static_cast<std::size_t>(col)]);
      const double ref = static_cast<double>(codes[static_cast<std::size_t>(row * w.cols() + col)]) * scales[g];
      const double scale = scales[g];
      max_rel = std::max(max_rel, std::fabs(ref - r.weights(row, col)) / scale);
    }
  CHECK(max_rel < 1e-4);  // in units of the scale

  test::check_losses_and_order(f, p, r, h, c.actorder);
}

}  // namespace

TEST_CASE("gptq reference: per-tensor, one block and lazy blocks of 16") {
  check_case("a", "tensor_b4");
  check_case("a", "tensor_b4_blk16");
}

TEST_CASE("gptq reference: per-channel 3-bit with act-order") { check_case("a", "channel_b3_act_blk16"); }

TEST_CASE("gptq reference: dead columns, per-channel, MSE scale search with act-order") {
  check_case("dead", "channel_b4_blk32");
  check_case("dead", "channel_b2_mse_act");
}

TEST_CASE("gptq reference: dynamic groups inside and across blocks") {
  check_case("g", "group16_b4_blk32");
  check_case("g", "group24_b4_blk32");
}

TEST_CASE("gptq reference: dynamic groups with act-order") { check_case("g", "group16_b4_act"); }

TEST_CASE("gptq reference: static groups, with act-order and a dead column") {
  check_case("g", "group16_b3_static_act_blk32");
  check_case("g", "group16_b8_static");
}

TEST_CASE("hessian accumulator matches the reference add_batch (n counts sequences)") {
  const auto& f = fixture();
  HessianAccumulator<float> acc(8, SampleCount::sequences);
  for (int b = 0; b < 3; ++b) {
    const auto& x = f["hess.X" + std::to_string(b)];
    const auto batch = static_cast<Index>(x.shape[0]);
    const auto tokens = static_cast<Index>(x.shape[0] * x.shape[1]);
    acc.add(ConstMatrixView(x.values.data(), tokens, 8), batch);
  }
  const Hessian h = acc.hessian();
  const RowMatrix ref = matrix_of(f["hess.H"]);
  CHECK(h.samples == 6.0);
  CHECK(h.tokens == 2 * 5 + 7 + 3 * 4);
  for (Index i = 0; i < 8; ++i)
    for (Index j = 0; j < 8; ++j) CHECK(h.matrix(i, j) == doctest::Approx(ref(i, j)).epsilon(1e-5).scale(1e-5));
}
