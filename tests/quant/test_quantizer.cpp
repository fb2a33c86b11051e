// Quantizer policies against brute-force references.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "lowbit/lowbit.hpp"
#include "../support/random.hpp"

using namespace lowbit;

namespace {

// The representable value nearest to x on {q·s : qmin ≤ q ≤ qmax}, ties to the even code.
float nearest_on_grid(float x, float s, int qmin, int qmax) {
  float best = 0.0f, best_err = std::numeric_limits<float>::infinity();
  int best_q = 0;
  for (int q = qmin; q <= qmax; ++q) {
    const float v = static_cast<float>(q) * s;
    const float err = std::fabs(v - x);
    if (err < best_err || (err == best_err && q % 2 == 0 && best_q % 2 != 0)) {
      best = v;
      best_err = err;
      best_q = q;
    }
  }
  return best;
}

template <class F>
void check_format_brute_force() {
  const auto x = test::gaussian(512, 0.7f, 11);
  Quantizer<F, PerTensor, AbsMax> q;
  std::vector<float> y(x.size());
  const QuantParams p = q.fake_quantize(as_row(std::span<const float>(x)), as_row(std::span<float>(y)));
  float absmax = 0.0f;
  for (float v : x) absmax = std::max(absmax, std::fabs(v));
  const float s = p.scales[0];
  CHECK(s > 0.0f);
  for (std::size_t i = 0; i < x.size(); ++i) {
    // The kernel divides (or multiplies by 1/s) exactly once; brute force measures
    // distances, so allow one tie that the one-ulp difference could flip.
    const float ref = nearest_on_grid(x[i], s, F::qmin, F::qmax);
    CHECK(std::fabs(y[i] - ref) <= (std::fabs(y[i] - x[i]) == std::fabs(ref - x[i]) ? s : 0.0f));
  }
}

}  // namespace

TEST_CASE("formats: code ranges and scale rules of the three conventions") {
  static_assert(Int<4>::qmin == -7 && Int<4>::qmax == 7);
  static_assert(Int<2>::qmin == -1 && Int<2>::qmax == 1);  // ternary
  static_assert(IntFull<4>::qmin == -8 && IntFull<4>::qmax == 7);
  static_assert(GptqGrid<4>::qmin == -8 && GptqGrid<4>::qmax == 7 && GptqGrid<4>::code_offset == 8);
  CHECK(Int<4>::scale_for(-0.7f, 0.35f) == doctest::Approx(0.7 / 7).epsilon(1e-7));
  CHECK(Int<8>::scale_for(-1.0f, 2.54f) == doctest::Approx(2.54 / 127).epsilon(1e-7));
  CHECK(IntFull<8>::scale_for(-1.0f, 2.55f) == doctest::Approx(2.55 / 127.5).epsilon(1e-7));
  CHECK(GptqGrid<4>::scale_for(-1.5f, 0.5f) == doctest::Approx(3.0 / 15).epsilon(1e-7));
  // GPTQ quirks kept from quant.py: no negative value keeps xmin = 0, all-zero → [-1, 1].
  CHECK(GptqGrid<4>::scale_for(0.2f, 1.5f) == doctest::Approx(1.5 / 15).epsilon(1e-7));
  CHECK(GptqGrid<3>::scale_for(0.0f, 0.0f) == doctest::Approx(2.0 / 7).epsilon(1e-7));
  // PyTorch's eps floor for an all-zero range.
  CHECK(Int<4>::scale_for(0.0f, 0.0f) == std::numeric_limits<float>::epsilon());
}

TEST_CASE_TEMPLATE("abs-max fake quantization lands on the nearest grid point", F, Int<2>, Int<3>, Int<4>,
                   Int<6>, Int<8>, IntFull<4>, IntFull<8>, GptqGrid<3>, GptqGrid<4>) {
  check_format_brute_force<F>();
}

TEST_CASE("granularity: per-channel and per-group scales are each slice's own abs-max scale") {
  const Index rows = 6, cols = 50;
  auto w = test::gaussian(static_cast<std::size_t>(rows * cols), 1.0f, 21);
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < cols; ++c) w[static_cast<std::size_t>(r * cols + c)] *= static_cast<float>(r + 1);
  const ConstMatrixView view(w.data(), rows, cols);

  const auto slice_scale = [&](Index r, Index c0, Index c1) {
    float lo = 0, hi = 0;
    for (Index c = c0; c < c1; ++c) {
      lo = std::min(lo, w[static_cast<std::size_t>(r * cols + c)]);
      hi = std::max(hi, w[static_cast<std::size_t>(r * cols + c)]);
    }
    return Int<4>::scale_for(lo, hi);
  };

  const auto pc = Quantizer<Int<4>, PerChannel>{}.params(view);
  REQUIRE(pc.scales.size() == static_cast<std::size_t>(rows));
  for (Index r = 0; r < rows; ++r) CHECK(pc.scales[static_cast<std::size_t>(r)] == slice_scale(r, 0, cols));

  // 50 = 3·16 + 2: each row ends in a tail group of 2 columns with its own scale.
  const auto pg = Quantizer<Int<4>, PerGroup<16>>{}.params(view);
  REQUIRE(pg.layout.groups_per_row() == 4);
  REQUIRE(pg.scales.size() == static_cast<std::size_t>(rows * 4));
  for (Index r = 0; r < rows; ++r)
    for (Index g = 0; g < 4; ++g)
      CHECK(pg.scales[static_cast<std::size_t>(r * 4 + g)] == slice_scale(r, g * 16, std::min(cols, g * 16 + 16)));

  // run-time group size gives the same result
  const auto pd = Quantizer<Int<4>, PerGroup<>>{PerGroup<>{16}}.params(view);
  CHECK(pd.scales == pg.scales);
}

TEST_CASE("quantize: codes · scales reproduce the fake-quantized weight exactly") {
  const Index rows = 8, cols = 96;
  const auto w = test::gaussian(static_cast<std::size_t>(rows * cols), 0.05f, 4);
  const ConstMatrixView view(w.data(), rows, cols);
  const auto check_round_trip = [&](const auto& q) {
    std::vector<float> fq(w.size()), dq(w.size());
    q.fake_quantize(view, MatrixView(fq.data(), rows, cols));
    const QuantizedTensor t = q.quantize(view);
    t.dequantize(MatrixView(dq.data(), rows, cols));
    CHECK(fq == dq);
    for (auto c : t.codes) {
      CHECK(c >= t.params.format.qmin);
      CHECK(c <= t.params.format.qmax);
    }
    // in place = out of place
    auto inplace = w;
    q.fake_quantize_in_place(MatrixView(inplace.data(), rows, cols));
    CHECK(inplace == fq);
  };
  check_round_trip(Quantizer<Int<4>, PerTensor>{});
  check_round_trip(Quantizer<Int<3>, PerChannel, HistogramMse<>>{});
  check_round_trip(Quantizer<IntFull<6>, PerGroup<32>, MseShrink>{});
  check_round_trip(Quantizer<GptqGrid<2>, PerGroup<>, AbsMax>{PerGroup<>{40}});
  check_round_trip(Quantizer<Int<8>, PerChannel, HistogramMse<HistogramMode::TrueGrid>>{});
}

TEST_CASE("bad input: a lowbit::Error that names the tensor and the element") {
  std::vector<float> w(12, 0.5f);
  w[7] = NAN;
  Quantizer<Int<4>, PerChannel> q;
  std::string msg;
  try {
    (void)q.params(ConstMatrixView(w.data(), 3, 4), "blk.0.attn.q");
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("blk.0.attn.q") != std::string::npos);
  CHECK(msg.find("non-finite") != std::string::npos);
  CHECK(msg.find("[1, 3]") != std::string::npos);

  w[7] = INFINITY;
  CHECK_THROWS_AS((void)Quantizer<Int<4>>{}.params(ConstMatrixView(w.data(), 3, 4)), Error);
  CHECK_THROWS_WITH_AS((void)Quantizer<Int<4>>{}.params(ConstMatrixView(w.data(), 0, 4), "empty_w"),
                       doctest::Contains("empty_w"), Error);
  std::vector<float> ok(12, 0.5f);
  using Group8 = Quantizer<Int<4>, PerGroup<8>>;
  using GroupDyn = Quantizer<Int<4>, PerGroup<>>;
  CHECK_THROWS_WITH_AS((void)Group8{}.params(ConstMatrixView(ok.data(), 3, 4)),
                       doctest::Contains("does not fit"), Error);
  CHECK_THROWS_AS((void)GroupDyn{PerGroup<>{0}}.params(ConstMatrixView(ok.data(), 3, 4)),
                  Error);
  std::vector<float> out(10);
  CHECK_THROWS_WITH_AS((void)Quantizer<Int<4>>{}.fake_quantize(ConstMatrixView(ok.data(), 3, 4),
                                                               MatrixView(out.data(), 2, 5)),
                       doctest::Contains("output buffer"), Error);
  const auto p = Quantizer<Int<4>, PerChannel>{}.params(ConstMatrixView(ok.data(), 3, 4));
  CHECK_THROWS_AS(p.apply(ConstMatrixView(ok.data(), 4, 3), MatrixView(out.data(), 4, 3)), Error);
}

TEST_CASE("all-zero tensors: no division by zero, the scale falls back as PyTorch / GPTQ do") {
  std::vector<float> w(64, 0.0f), y(64, 1.0f);
  const ConstMatrixView view(w.data(), 4, 16);
  const auto check_zero = [&](const auto& q, float expect_scale) {
    const auto p = q.fake_quantize(view, MatrixView(y.data(), 4, 16));
    for (float s : p.scales) CHECK(s == expect_scale);
    for (float v : y) CHECK(v == 0.0f);
  };
  const float eps = std::numeric_limits<float>::epsilon();
  check_zero(Quantizer<Int<4>, PerTensor, AbsMax>{}, eps);
  check_zero(Quantizer<Int<4>, PerChannel, HistogramMse<>>{}, eps);
  check_zero(Quantizer<Int<2>, PerGroup<8>, HistogramMse<HistogramMode::TrueGrid>>{}, eps);
  check_zero(Quantizer<GptqGrid<4>, PerChannel, AbsMax>{}, 2.0f / 15.0f);
  check_zero(Quantizer<GptqGrid<4>, PerChannel, MseShrink>{}, 2.0f / 15.0f);
}

TEST_CASE("large weights (streamed output): fake_quantize and apply equal the per-slice scalar reference") {
  // 1536 × 1600 floats = 9.4 MiB, above kernels::streaming_bytes, so whole rows are
  // written with streaming stores; 1600 = 12·128 + 64 leaves a tail group per row.
  const Index rows = 1536, cols = 1600;
  REQUIRE(static_cast<std::size_t>(rows * cols) * sizeof(float) >= kernels::streaming_bytes);
  const auto w = test::gaussian(static_cast<std::size_t>(rows * cols), 0.05f, 8);
  const ConstMatrixView view(w.data(), rows, cols);
  const auto check_against_reference = [&](const auto& q) {
    std::vector<float> y(w.size()), applied(w.size()), ref(w.size());
    const QuantParams p = q.fake_quantize(view, MatrixView(y.data(), rows, cols));
    CHECK(p.scales == q.params(view).scales);
    p.apply(view, MatrixView(applied.data(), rows, cols));
    p.for_each_run([&](Index r, Index c0, Index c1, float s) {
      kernels::fake_quantize_scalar(w.data() + r * cols + c0, ref.data() + r * cols + c0, c1 - c0,
                                    GridStep::make(s, p.format.division), p.format.qmin, p.format.qmax);
    });
    CHECK(y == ref);
    CHECK(applied == ref);
  };
  check_against_reference(Quantizer<Int<4>, PerGroup<128>>{});
  check_against_reference(Quantizer<GptqGrid<3>, PerGroup<>, AbsMax>{PerGroup<>{100}});
  check_against_reference(Quantizer<Int<4>, PerChannel>{});
}
