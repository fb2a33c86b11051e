// Finite but extreme weights (issue #17): values at ±FLT_MAX and denormals must give
// finite, positive scales and finite outputs from every format and search — never
// NaN, inf or undefined behaviour (a NaN cast to an integer bin) — and GPTQ's
// round-to-nearest fallback must be finite with an honest diagnosis.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/gptq.hpp"
#include "lowbit/io/quantized_export.hpp"
#include "lowbit/quant.hpp"

using namespace lowbit;

namespace {

constexpr float kMax = std::numeric_limits<float>::max();

// 4 rows × 8 columns: row 0 spans ±FLT_MAX, row 1 is ordinary, row 2 holds
// FLT_MAX next to tiny values, row 3 is denormal.
std::vector<float> extreme_weights() {
  const float d = std::numeric_limits<float>::denorm_min();
  return {kMax, -kMax, 1.0f, -0.5f, 0.25f, kMax / 2, -kMax / 3, 0.0f,  //
          0.1f, -0.2f, 0.3f, -0.4f, 0.5f, -0.6f, 0.7f, -0.8f,         //
          kMax, 1e-3f, -1e-3f, 2e-3f, 0.0f, 0.0f, 1.0f, -1.0f,          //
          d, -d, 3 * d, 0.0f, 7 * d, -5 * d, d, 0.0f};
}

bool all_finite(const std::vector<float>& v) {
  for (const float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

template <class Q>
void check_finite(const Q& q, const ScaleLayout& expect, const char* label) {
  INFO(label);
  const auto w = extreme_weights();
  const ConstMatrixView view(w.data(), 4, 8);
  std::vector<float> out(w.size());
  const QuantParams p = q.fake_quantize(view, MatrixView(out.data(), 4, 8), "extreme.weight");
  CHECK(p.layout.kind == expect.kind);
  for (const float s : p.scales) {
    CHECK(std::isfinite(s));
    CHECK(s > 0.0f);
  }
  CHECK(all_finite(out));
  // The packed file of these codes and scales reads back (no zero scale).
  io::SafetensorsWriter sw;
  io::add_quantized(sw, "w", pack(q.quantize(view, "extreme.weight")), "rtn");
  const auto f = io::SafetensorsFile::from_bytes(
      [&] {
        const std::string s = sw.serialize();
        return std::vector<std::uint8_t>(s.begin(), s.end());
      }(),
      "extreme.safetensors");
  CHECK_NOTHROW((void)io::read_quantized(f, "w"));
}

template <class F>
void every_search(const char* format) {
  const ScaleLayout tensor = PerTensor{}.layout(4, 8), channel = PerChannel{}.layout(4, 8);
  const std::string f = format;
  check_finite(Quantizer<F, PerTensor, AbsMax>(), tensor, (f + " tensor absmax").c_str());
  check_finite(Quantizer<F, PerChannel, AbsMax>(), channel, (f + " channel absmax").c_str());
  check_finite(Quantizer<F, PerChannel, HistogramMse<>>(), channel, (f + " channel hist").c_str());
  check_finite(Quantizer<F, PerTensor, HistogramMse<>>(), tensor, (f + " tensor hist").c_str());
  check_finite(Quantizer<F, PerChannel, HistogramMse<HistogramMode::TrueGrid>>(), channel,
               (f + " channel hist-true").c_str());
  check_finite(Quantizer<F, PerChannel, MseShrink>(), channel, (f + " channel mse").c_str());
  check_finite(Quantizer<F, PerGroup<4>, HistogramMse<>>(), PerGroup<4>{}.layout(4, 8), (f + " group hist").c_str());
}

}  // namespace

TEST_CASE("extreme values: every format and search gives finite scales and outputs at ±FLT_MAX and denormals") {
  every_search<Int<4>>("int4");
  every_search<Int<8>>("int8");
  every_search<IntFull<4>>("int_full4");
  every_search<GptqGrid<4>>("gptq4");
  every_search<GptqGrid<2>>("gptq2");
}

TEST_CASE("extreme values: scales of ordinary ranges are untouched by the guards") {
  // The guards only act off the reference's path: ordinary ranges give the
  // reference's own float32 formulas bit for bit.
  CHECK(GptqGrid<4>::scale_for(-0.7f, 0.3f) == (0.7f - -0.7f) / 15.0f);
  CHECK(Int<4>::scale_for(-0.7f, 0.3f) == std::max(0.7f / 7.0f, std::numeric_limits<float>::epsilon()));
  CHECK(IntFull<8>::scale_for(-2.0f, 5.0f) == 5.0f / 127.5f);
  // Denormal-only ranges: GptqGrid's scale is FLT_MIN, not 0 (which readers refuse).
  const float d = std::numeric_limits<float>::denorm_min();
  CHECK(GptqGrid<4>::scale_for(-d, d) == std::numeric_limits<float>::min());
  // IntFull's most negative code times the largest scale stays finite.
  CHECK(std::isfinite(-8.0f * IntFull<4>::scale_for(-kMax, kMax)));
}

TEST_CASE("extreme values: the histogram of a ±FLT_MAX range bins every value") {
  const std::vector<float> x = {-kMax, -1.0f, 0.0f, 1.0f, kMax};
  const Histogram h = make_histogram(x.data(), 5, -kMax, kMax, 2048);
  CHECK(h.total() == 5.0);
  CHECK(h.counts.front() == 1.0);
  CHECK(h.counts.back() == 1.0);
  // PyTorch's search on it returns a finite range.
  const SliceStats s{-kMax, kMax, true};
  const auto [lo, hi] = HistogramMse<>{}.torch_range(x.data(), 5, s);
  CHECK(std::isfinite(lo));
  CHECK(std::isfinite(hi));
  CHECK(lo < hi);
}

TEST_CASE("extreme values: GPTQ's fallback when the error feedback overflows is finite and says so") {
  // ±FLT_MAX weights and a Hessian of nearly collinear inputs: H factors at every
  // damping, but the feedback leaves float32, so GPTQ falls back to RTN. It used to
  // return NaN weights and blame "H is not positive definite".
  const Index n = 16, tokens = 64;
  std::mt19937 gen(1);
  std::normal_distribution<float> nd;
  std::vector<float> w(static_cast<std::size_t>(4 * n));
  for (auto& x : w) x = nd(gen) > 0 ? kMax : -kMax;
  std::vector<float> x(static_cast<std::size_t>(tokens * n));
  for (Index t = 0; t < tokens; ++t) {
    const float base = nd(gen);
    for (Index c = 0; c < n; ++c) x[static_cast<std::size_t>(t * n + c)] = base + 1e-3f * nd(gen);
  }
  std::vector<float> h(static_cast<std::size_t>(n * n));
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) {
      double s = 0;
      for (Index t = 0; t < tokens; ++t) s += double(x[static_cast<std::size_t>(t * n + i)]) * x[static_cast<std::size_t>(t * n + j)];
      h[static_cast<std::size_t>(i * n + j)] = static_cast<float>(s / tokens);
    }
  GptqOptions o;
  o.percdamp = 1e-6;
  const Gptq<GptqGrid<4>, PerChannel, AbsMax> solver(o);
  const SolveResult r = solver.quantize(ConstMatrixView(w.data(), 4, n), Hessian::from_matrix(ConstMatrixView(h.data(), n, n)),
                                        "collinear.weight");
  REQUIRE(r.info() == ::Eigen::NumericalIssue);
  CHECK(r.message.find("error feedback overflowed float32") != std::string::npos);
  CHECK(r.message.find("not positive definite") == std::string::npos);
  for (Index i = 0; i < r.weights.size(); ++i) REQUIRE(std::isfinite(r.weights.data()[i]));
}

TEST_CASE("extreme values: GPTQ on ±FLT_MAX weights with H = I is finite and says why if it falls back") {
  const auto w = extreme_weights();
  const ConstMatrixView view(w.data(), 4, 8);
  std::vector<float> eye(64, 0.0f);
  for (int i = 0; i < 8; ++i) eye[static_cast<std::size_t>(i * 9)] = 1.0f;
  const Hessian h = Hessian::from_matrix(ConstMatrixView(eye.data(), 8, 8));
  const Gptq<GptqGrid<4>, PerChannel, AbsMax> solver;
  const SolveResult r = solver.quantize(view, h, "extreme.weight");
  for (Index i = 0; i < r.weights.size(); ++i) REQUIRE(std::isfinite(r.weights.data()[i]));
  for (const float s : r.params.scales) CHECK((std::isfinite(s) && s > 0.0f));
  if (r.info() != ::Eigen::Success) CHECK(r.message.find("not positive definite") == std::string::npos);
}
