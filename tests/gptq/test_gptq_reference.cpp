// GPTQ against the PyTorch re-implementation of the reference gptq.py / quant.py
// (tests/fixtures/gptq/gptq_reference.txt, scripts/fixtures/gen_gptq_fixtures.py).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "gptq_test_util.hpp"
#include "reference_checks.hpp"
#include "../support/fixture.hpp"

using namespace lowbit;
using lowbit::test::RowMatrix;

namespace {

const test::Fixture& fixture() {
  static const test::Fixture f("gptq/gptq_reference.txt");
  return f;
}

RowMatrix matrix_of(const test::FixtureTensor& t) {
  RowMatrix m(t.rows(), t.cols());
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = t.values[static_cast<std::size_t>(i)];
  return m;
}

struct Case {
  std::string layer, name;
  int bits;
  bool perchannel, actorder, stat, mse;
  Index groupsize, blocksize;
};

template <class Format, class Granularity, class Search>
SolveResult run(const Case& c, const RowMatrix& w, const Hessian& h, Granularity g) {
  GptqOptions o;
  o.percdamp = 0.01;
  o.block_size = c.blocksize;
  o.act_order = c.actorder;
  o.static_groups = c.stat;
  o.evaluate = false;
  return Gptq<Format, Granularity, Search>(o, g).quantize(ConstMatrixView(w), h, c.name);
}

template <int B>
SolveResult run_bits(const Case& c, const RowMatrix& w, const Hessian& h) {
  if (c.groupsize > 0) {
    if (c.mse) return run<GptqGrid<B>, PerGroup<>, MseShrink>(c, w, h, PerGroup<>{c.groupsize});
    return run<GptqGrid<B>, PerGroup<>, AbsMax>(c, w, h, PerGroup<>{c.groupsize});
  }
  if (c.perchannel) {
    if (c.mse) return run<GptqGrid<B>, PerChannel, MseShrink>(c, w, h, PerChannel{});
    return run<GptqGrid<B>, PerChannel, AbsMax>(c, w, h, PerChannel{});
  }
  if (c.mse) return run<GptqGrid<B>, PerTensor, MseShrink>(c, w, h, PerTensor{});
  return run<GptqGrid<B>, PerTensor, AbsMax>(c, w, h, PerTensor{});
}

SolveResult run_case(const Case& c, const RowMatrix& w, const Hessian& h) {
  switch (c.bits) {
    case 2: return run_bits<2>(c, w, h);
    case 3: return run_bits<3>(c, w, h);
    case 4: return run_bits<4>(c, w, h);
    case 8: return run_bits<8>(c, w, h);
    default: FAIL("fixture has an unexpected bit width ", c.bits);
  }
  return {};
}

void check_case(const std::string& layer, const std::string& name) {
  const auto& f = fixture();
  const std::string p = layer + "." + name + ".";
  Case c{layer,
         name,
         static_cast<int>(f[p + "bits"].scalar()),
         f[p + "perchannel"].scalar() != 0.0f,
         f[p + "actorder"].scalar() != 0.0f,
         f[p + "static"].scalar() != 0.0f,
         f[p + "mse"].scalar() != 0.0f,
         static_cast<Index>(f[p + "groupsize"].scalar()),
         static_cast<Index>(f[p + "blocksize"].scalar())};
  const RowMatrix w = matrix_of(f[layer + ".W"]);
  const Hessian h = Hessian::from_matrix(ConstMatrixView(matrix_of(f[layer + ".H"])));
  const SolveResult r = run_case(c, w, h);
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
