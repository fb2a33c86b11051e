// GptqGrid + AbsMax / MseShrink against the reference quant.py semantics
// (fixtures: scripts/fixtures/gen_quant_fixtures.py), and MseShrink against brute force.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "lowbit/lowbit.hpp"
#include "../support/fixture.hpp"
#include "../support/random.hpp"

using namespace lowbit;

namespace {

template <class Q>
void check_case(const test::Fixture& f, const std::string& c, const std::string& key) {
  const auto& x = f[c + ".x"];
  const ConstMatrixView w(x.values.data(), x.rows(), x.cols());
  std::vector<float> y(x.values.size());
  const QuantParams p = Q{}.fake_quantize(w, MatrixView(y.data(), w.rows, w.cols));
  const auto& expect = f[key + ".scale"].values;
  INFO(key);
  REQUIRE((expect.size() == p.scales.size() || (expect.size() == 1 && p.scales.size() == 1)));
  bool scales_equal = true;
  for (std::size_t i = 0; i < expect.size(); ++i)
    scales_equal = scales_equal && std::fabs(p.scales[i] - expect[i]) <= 1e-6f * expect[i];
  CHECK(scales_equal);
  if (scales_equal) CHECK(std::memcmp(y.data(), f[key + ".fq"].values.data(), y.size() * sizeof(float)) == 0);
}

template <int B>
void check_bits(const test::Fixture& f, const std::string& c) {
  const std::string k = c + ".b" + std::to_string(B);
  check_case<Quantizer<GptqGrid<B>, PerChannel, AbsMax>>(f, c, k + ".pc.minmax");
  check_case<Quantizer<GptqGrid<B>, PerTensor, AbsMax>>(f, c, k + ".pt.minmax");
  check_case<Quantizer<GptqGrid<B>, PerChannel, MseShrink>>(f, c, k + ".pc.mse");
  check_case<Quantizer<GptqGrid<B>, PerTensor, MseShrink>>(f, c, k + ".pt.mse");
}

}  // namespace

TEST_CASE("GptqGrid scales and fake-quant equal GPTQ quant.py (min/max and MSE-shrink search)") {
  const test::Fixture f("quant/gptq_quantizer.txt");
  for (const std::string c : {"gauss_24x64", "rowscaled_16x128", "zeropos_8x32"}) {
    check_bits<2>(f, c);
    check_bits<3>(f, c);
    check_bits<4>(f, c);
    check_bits<8>(f, c);
  }
}

TEST_CASE("MseShrink picks the candidate with the smallest |q(x) - x|^2.4 (brute force)") {
  const auto x = test::gaussian(300, 1.0f, 99);
  const SliceStats st = kernels::stats(x.data(), 300);
  const float chosen = MseShrink{}.scale<Int<3>>(x.data(), 300, st);
  const auto err_of = [&](float s) {
    double e = 0;
    for (float v : x) {
      const float q = std::clamp(std::nearbyint(v * (1.0f / s)), -3.0f, 3.0f) * s;
      e += std::pow(std::fabs(static_cast<double>(q) - v), 2.4);
    }
    return e;
  };
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 80; ++i) {
    const auto p = static_cast<float>(1.0 - i / 100.0);
    best = std::min(best, err_of(Int<3>::scale_for(p * st.min, p * st.max)));
  }
  CHECK(err_of(chosen) == doctest::Approx(best).epsilon(1e-6));
  CHECK(err_of(chosen) < err_of(AbsMax{}.scale<Int<3>>(x.data(), 300, st)));
}
