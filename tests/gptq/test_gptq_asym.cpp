// GPTQ and round-to-nearest with the asymmetric grid (IntAsym<B>, quant.py's
// sym=False) against the PyTorch re-implementation of the reference gptq.py /
// quant.py (tests/fixtures/gptq/gptq_asym_reference.txt,
// scripts/fixtures/gen_gptq_fixtures.py). The fixture stores lowbit's signed
// values: codes = q - 2^(B-1) and zeros = zero point - 2^(B-1), so that
// Q = scale · (code - zero).
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <string>

#include "reference_checks.hpp"
#include "../support/fixture.hpp"
#include "../support/compare.hpp"

using namespace lowbit;
using lowbit::test::same_bits;
using lowbit::test::RowMatrix;
using lowbit::test::matrix_of;

namespace {

const test::Fixture& asym_fixture() {
  static const test::Fixture f("gptq/gptq_asym_reference.txt");
  return f;
}


// ---- GPTQ ---------------------------------------------------------------------

/// Scale index of (row, original column) through group_index and the layout.
std::size_t scale_index(const SolveResult& r, Index row, Index col) {
  if (r.params.layout.kind == ScaleLayout::Kind::tensor) return 0;
  return static_cast<std::size_t>(row * r.params.layout.groups_per_row() +
                                  r.group_index[static_cast<std::size_t>(col)]);
}

void check_asym_case(const std::string& layer, const std::string& name) {
  const auto& f = asym_fixture();
  const std::string p = layer + "." + name + ".";
  const test::ReferenceCase c = test::ReferenceCase::read(f, layer, name);
  const RowMatrix w = matrix_of(f[layer + ".W"]);
  const Hessian h = Hessian::from_matrix(ConstMatrixView(matrix_of(f[layer + ".H"])));
  const SolveResult r = test::run_reference_case<IntAsym>(c, w, h);
  CAPTURE(layer);
  CAPTURE(name);
  REQUIRE(r.info() == ::Eigen::Success);
  CHECK(r.retries.empty());
  REQUIRE(r.params.format.asymmetric());
  REQUIRE(r.params.zeros.size() == r.params.scales.size());

  // The solver's own Q is (code - z) · s exactly, through group_index and the layout.
  Index inconsistent = 0;
  for (Index row = 0; row < w.rows(); ++row)
    for (Index col = 0; col < w.cols(); ++col) {
      const std::size_t k = scale_index(r, row, col);
      const float q = (static_cast<float>(r.codes[static_cast<std::size_t>(row * w.cols() + col)]) -
                       r.params.zeros[k]) * r.params.scales[k];
      inconsistent += !same_bits(q, r.weights(row, col));
    }
  CHECK(inconsistent == 0);

  // Integer codes: identical (the fixture's cases are decision-stable in fp32 and fp64).
  const auto& codes = f[p + "codes"].values;
  REQUIRE(codes.size() == r.codes.size());
  Index mismatched = 0;
  for (std::size_t i = 0; i < codes.size(); ++i) mismatched += static_cast<float>(r.codes[i]) != codes[i];
  CHECK(mismatched == 0);

  // Scales and zeros, in the reference's group order (processing order for dynamic
  // groups). Scales found from the original (dead-zeroed) W are the reference's
  // bit for bit; dynamic groups' come from the solver's updated W, to float32
  // round-off (as in the symmetric test). Zeros are integers: identical.
  const bool dynamic = c.groupsize > 0 && !c.stat;
  const auto& scales = f[p + "scales"].values;
  const auto& zeros = f[p + "zeros"].values;
  REQUIRE(scales.size() == r.params.scales.size());
  REQUIRE(zeros.size() == r.params.zeros.size());
  Index scale_diff = 0, zero_diff = 0;
  for (std::size_t i = 0; i < scales.size(); ++i) {
    CHECK(r.params.scales[i] == doctest::Approx(scales[i]).epsilon(1e-5));
    if (!dynamic) scale_diff += !same_bits(r.params.scales[i], scales[i]);
    zero_diff += r.params.zeros[i] != zeros[i];
  }
  CHECK(scale_diff == 0);
  CHECK(zero_diff == 0);

  // Q = scale · (code - zero) of its group (the reference's Q is exactly that).
  double max_rel = 0.0;
  for (Index row = 0; row < w.rows(); ++row)
    for (Index col = 0; col < w.cols(); ++col) {
      const std::size_t g = scale_index(r, row, col);
      const double ref = static_cast<double>(scales[g]) *
                         (static_cast<double>(codes[static_cast<std::size_t>(row * w.cols() + col)]) - zeros[g]);
      max_rel = std::max(max_rel, std::fabs(ref - r.weights(row, col)) / scales[g]);
    }
  CHECK(max_rel < 1e-4);  // in units of the scale

  test::check_losses_and_order(f, p, r, h, c.actorder);

  // The packable form decodes to the solver's weights bit for bit; dynamic groups
  // with act-order need g_idx, which a QuantizedTensor cannot hold.
  if (r.natural_groups()) {
    const QuantizedTensor t = r.quantized_tensor();
    RowMatrix deq(w.rows(), w.cols());
    t.dequantize(MatrixView(deq));
    Index differ = 0;
    for (Index i = 0; i < deq.size(); ++i) differ += !same_bits(deq.data()[i], r.weights.data()[i]);
    CHECK(differ == 0);
  } else {
    CHECK(dynamic);
    CHECK(c.actorder);
    CHECK_THROWS_AS(static_cast<void>(r.quantized_tensor()), lowbit::Error);
  }
}

// ---- round-to-nearest: the quantizer alone ------------------------------------

template <class Format, class Granularity, class Search>
void check_rtn_with(const std::string& name, Granularity g) {
  const auto& f = asym_fixture();
  const std::string p = "rtn." + name + ".";
  const RowMatrix w = matrix_of(f["rtn.W"]);
  const Quantizer<Format, Granularity, Search> q(g);
  CAPTURE(name);

  const QuantizedTensor t = q.quantize(ConstMatrixView(w));
  const auto& scales = f[p + "scales"].values;
  const auto& zeros = f[p + "zeros"].values;
  const auto& codes = f[p + "codes"].values;
  const auto& ref_q = f[p + "Q"].values;
  REQUIRE(t.params.scales.size() == scales.size());
  REQUIRE(t.params.zeros.size() == zeros.size());
  REQUIRE(t.codes.size() == codes.size());
  REQUIRE(static_cast<Index>(ref_q.size()) == w.size());

  // Scales and zeros exactly: the same float32 operations as quant.py.
  Index scale_diff = 0, zero_diff = 0, code_diff = 0;
  for (std::size_t i = 0; i < scales.size(); ++i) {
    if (!same_bits(t.params.scales[i], scales[i])) {
      ++scale_diff;
      MESSAGE("scale ", i, ": ", t.params.scales[i], " vs reference ", scales[i]);
    }
    if (t.params.zeros[i] != zeros[i]) {
      ++zero_diff;
      MESSAGE("zero ", i, ": ", t.params.zeros[i], " vs reference ", zeros[i]);
    }
  }
  for (std::size_t i = 0; i < codes.size(); ++i) code_diff += static_cast<float>(t.codes[i]) != codes[i];
  CHECK(scale_diff == 0);
  CHECK(zero_diff == 0);
  CHECK(code_diff == 0);

  // Fake-quantized values bit for bit, through every path that produces them.
  RowMatrix fq(w.rows(), w.cols()), applied(w.rows(), w.cols()), deq(w.rows(), w.cols());
  const QuantParams fp = q.fake_quantize(ConstMatrixView(w), MatrixView(fq));
  t.params.apply(ConstMatrixView(w), MatrixView(applied));
  t.dequantize(MatrixView(deq));
  CHECK(fp.scales == t.params.scales);
  CHECK(fp.zeros == t.params.zeros);
  Index fq_diff = 0, apply_diff = 0, deq_diff = 0;
  for (Index i = 0; i < w.size(); ++i) {
    const float ref = ref_q[static_cast<std::size_t>(i)];
    fq_diff += !same_bits(fq.data()[i], ref);
    apply_diff += !same_bits(applied.data()[i], ref);
    deq_diff += !same_bits(deq.data()[i], ref);
  }
  CHECK(fq_diff == 0);
  CHECK(apply_diff == 0);
  CHECK(deq_diff == 0);

  RowMatrix in_place = w;
  q.fake_quantize_in_place(MatrixView(in_place));
  Index in_place_diff = 0;
  for (Index i = 0; i < w.size(); ++i) in_place_diff += !same_bits(in_place.data()[i], ref_q[static_cast<std::size_t>(i)]);
  CHECK(in_place_diff == 0);
}

template <int B>
void check_rtn_bits(const std::string& name, bool perchannel, Index groupsize, bool mse) {
  using F = IntAsym<B>;
  if (groupsize > 0) {
    if (mse) return check_rtn_with<F, PerGroup<>, MseShrink>(name, PerGroup<>{groupsize});
    return check_rtn_with<F, PerGroup<>, AbsMax>(name, PerGroup<>{groupsize});
  }
  if (perchannel) {
    if (mse) return check_rtn_with<F, PerChannel, MseShrink>(name, PerChannel{});
    return check_rtn_with<F, PerChannel, AbsMax>(name, PerChannel{});
  }
  if (mse) return check_rtn_with<F, PerTensor, MseShrink>(name, PerTensor{});
  return check_rtn_with<F, PerTensor, AbsMax>(name, PerTensor{});
}

void check_rtn(const std::string& name) {
  const auto& f = asym_fixture();
  const std::string p = "rtn." + name + ".";
  const int bits = static_cast<int>(f[p + "bits"].scalar());
  const bool perchannel = f[p + "perchannel"].scalar() != 0.0f;
  const auto groupsize = static_cast<Index>(f[p + "groupsize"].scalar());
  const bool mse = f[p + "mse"].scalar() != 0.0f;
  switch (bits) {
    case 2: return check_rtn_bits<2>(name, perchannel, groupsize, mse);
    case 3: return check_rtn_bits<3>(name, perchannel, groupsize, mse);
    case 4: return check_rtn_bits<4>(name, perchannel, groupsize, mse);
    case 8: return check_rtn_bits<8>(name, perchannel, groupsize, mse);
    default: FAIL("fixture has an unexpected bit width ", bits);
  }
}

}  // namespace

TEST_CASE("gptq asym reference: per-tensor, plain and MSE with lazy blocks of 16") {
  check_asym_case("a", "tensor_b4");
  check_asym_case("a", "tensor_b3_mse_blk16");
}

TEST_CASE("gptq asym reference: per-channel 3-bit with act-order, 8-bit") {
  check_asym_case("a", "channel_b3_act_blk16");
  check_asym_case("a", "channel_b8");
}

TEST_CASE("gptq asym reference: dead columns, per-channel, MSE zero search with and without act-order") {
  check_asym_case("dead", "channel_b4_blk32");
  check_asym_case("dead", "channel_b2_mse_act");
  check_asym_case("dead", "channel_b4_mse");
}

TEST_CASE("gptq asym reference: dynamic groups re-derive scale and zero at each boundary") {
  check_asym_case("g", "group16_b4_blk32");
  check_asym_case("g", "group24_b4_blk32");
  check_asym_case("g", "group32_b4");
  check_asym_case("g", "group16_b2_mse_blk32");
}

TEST_CASE("gptq asym reference: dynamic groups with act-order") { check_asym_case("g", "group32_b3_act"); }

TEST_CASE("gptq asym reference: static groups, with act-order, a dead column and MSE") {
  check_asym_case("g", "group16_b3_static_act_blk32");
  check_asym_case("g", "group16_b8_static");
  check_asym_case("g", "group32_b4_static_mse");
}

TEST_CASE("gptq asym reference: zero, one-signed and shifted rows") {
  check_asym_case("edge", "channel_b4");
  check_asym_case("edge", "channel_b2_mse");
  check_asym_case("edge", "group16_b3_blk32");
  check_asym_case("edge", "group16_b4_static_act");
}

TEST_CASE("asym quantizer reference: per-channel AbsMax, 2 to 8 bits") {
  check_rtn("channel_b2");
  check_rtn("channel_b3");
  check_rtn("channel_b4");
  check_rtn("channel_b8");
}

TEST_CASE("asym quantizer reference: per-channel MseShrink, 2 to 8 bits") {
  check_rtn("channel_b2_mse");
  check_rtn("channel_b3_mse");
  check_rtn("channel_b4_mse");
  check_rtn("channel_b8_mse");
}

TEST_CASE("asym quantizer reference: per-tensor and groups of 32, AbsMax and MseShrink") {
  check_rtn("tensor_b4");
  check_rtn("tensor_b3_mse");
  check_rtn("group32_b4");
  check_rtn("group32_b3_mse");
}

TEST_CASE("asym quantizer reference: an all-zero slice keeps float32's zero point") {
  // Row 0 of rtn.W is zero: range [-1, 1], scale 2/15 and round(1 / scale) = 7 for
  // 4 bits in float32 (1/scale = 7.4999995; float64 would give 8).
  const auto& f = asym_fixture();
  CHECK(f["rtn.channel_b4.zeros"].values.at(0) == 7.0f - 8.0f);
  CHECK(f["rtn.channel_b4.scales"].values.at(0) == 2.0f / 15.0f);
  const Quantizer<IntAsym<4>, PerChannel, AbsMax> q;
  const QuantizedTensor t = q.quantize(ConstMatrixView(matrix_of(f["rtn.W"])));
  CHECK(t.params.zeros.at(0) == -1.0f);
  CHECK(t.params.scales.at(0) == 2.0f / 15.0f);
}
