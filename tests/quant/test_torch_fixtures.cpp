// lowbit against PyTorch 1.13 (fixtures from scripts/fixtures/gen_quant_fixtures.py):
// HistogramObserver's histogram, range and scale, and fake_quantize bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "lowbit/lowbit.hpp"
#include "../support/fixture.hpp"

using namespace lowbit;

namespace {

const test::Fixture& observer_fixture() {
  static const test::Fixture f("quant/histogram_observer.txt");
  return f;
}

std::vector<std::string> cases_of(const test::Fixture& f) {
  std::vector<std::string> cases;
  for (const auto& n : f.names())
    if (n.size() > 2 && n.compare(n.size() - 2, 2, ".x") == 0) cases.push_back(n.substr(0, n.size() - 2));
  return cases;
}

template <template <int> class Fmt, int B>
void check_observer_scale(const test::Fixture& f, const std::string& c, const std::string& range) {
  const auto& x = f[c + ".x"];
  const ConstMatrixView w(x.values.data(), x.rows(), x.cols());
  Quantizer<Fmt<B>, PerTensor, HistogramMse<>> q;
  const std::string key = c + ".b" + std::to_string(B) + "." + range;
  const float expect = f[key + ".scale"].scalar();
  const float got = q.params(w).scales[0];
  INFO(key, ": lowbit ", got, " torch ", expect);
  CHECK(std::fabs(got - expect) <= 1e-6f * expect);
  if (f.has(key + ".fq")) {
    std::vector<float> y(x.values.size());
    q.fake_quantize(w, MatrixView(y.data(), w.rows, w.cols));
    CHECK(std::memcmp(y.data(), f[key + ".fq"].values.data(), y.size() * sizeof(float)) == 0);
  }
}

template <int... B>
void check_all_bits(const test::Fixture& f, const std::string& c, std::integer_sequence<int, B...>) {
  (check_observer_scale<Int, B>(f, c, "narrow"), ...);
  (check_observer_scale<IntFull, B>(f, c, "full"), ...);
}

}  // namespace

TEST_CASE("HistogramMse<TorchCompatible>: histogram and searched range equal PyTorch's") {
  const auto& f = observer_fixture();
  const auto cases = cases_of(f);
  REQUIRE(cases.size() >= 8);
  for (const auto& c : cases) {
    INFO("case ", c);
    const auto& x = f[c + ".x"];
    const auto st = kernels::stats(x.values.data(), static_cast<Index>(x.values.size()));
    CHECK(st.min == f[c + ".min"].scalar());
    CHECK(st.max == f[c + ".max"].scalar());
    const auto [lo, hi] = detail::torch_histc_range(st.min, st.max);
    const Histogram h = make_histogram(x.values.data(), static_cast<Index>(x.values.size()), lo, hi, 2048);
    const auto& th = f[c + ".hist"].values;
    REQUIRE(th.size() == h.counts.size());
    bool same = true;
    for (std::size_t i = 0; i < th.size(); ++i) same = same && (th[i] == static_cast<float>(h.counts[i]));
    CHECK(same);
    const auto [new_min, new_max] =
        HistogramMse<>{}.torch_range(x.values.data(), static_cast<Index>(x.values.size()), st);
    CHECK(new_min == f[c + ".new_min"].scalar());
    CHECK(new_max == f[c + ".new_max"].scalar());
  }
}

TEST_CASE("HistogramMse<TorchCompatible>: scales for int2..int8, narrow and full range, match PyTorch") {
  const auto& f = observer_fixture();
  for (const auto& c : cases_of(f)) check_all_bits(f, c, std::integer_sequence<int, 2, 3, 4, 5, 6, 7, 8>{});
}

TEST_CASE("fake_quantize equals torch.fake_quantize_per_tensor_affine / per_channel bit for bit") {
  const test::Fixture f("quant/fake_quant.txt");
  int checked = 0;
  for (const auto& name : f.names()) {
    const auto dot = name.rfind(".fq");
    if (dot == std::string::npos || dot + 3 != name.size()) continue;
    const std::string key = name.substr(0, dot);
    const std::string c = key.substr(0, key.find('.'));
    const auto& x = f.has(key + ".x") ? f[key + ".x"] : f[c + ".x"];
    const bool full = key.find(".full") != std::string::npos;
    const int bits = std::stoi(key.substr(key.find(".b") + 2));
    const int qmax = (1 << (bits - 1)) - 1, qmin = full ? -qmax - 1 : -qmax;
    const bool per_channel = f.has(key + ".scales");
    QuantParams p{FormatInfo{bits, qmin, qmax, 1 << (bits - 1), Division::reciprocal, "torch"},
                  ScaleLayout{per_channel ? ScaleLayout::Kind::channel : ScaleLayout::Kind::tensor, x.rows(),
                              x.cols(), x.cols()},
                  per_channel ? f[key + ".scales"].values : std::vector<float>{f[key + ".scale"].scalar()}};
    std::vector<float> y(x.values.size());
    p.apply(ConstMatrixView(x.values.data(), x.rows(), x.cols()), MatrixView(y.data(), x.rows(), x.cols()));
    INFO(key);
    CHECK(std::memcmp(y.data(), f[name].values.data(), y.size() * sizeof(float)) == 0);
    if (f.has(key + ".codes")) {
      const auto codes = p.codes(ConstMatrixView(x.values.data(), x.rows(), x.cols()));
      const auto& tc = f[key + ".codes"].values;
      bool same = true;
      for (std::size_t i = 0; i < codes.size(); ++i) same = same && (static_cast<float>(codes[i]) == tc[i]);
      CHECK(same);
    }
    ++checked;
  }
  CHECK(checked >= 10);
  // torch.round: ties to even
  const auto& in = f["round_in"].values;
  const auto& out = f["round_out"].values;
  for (std::size_t i = 0; i < in.size(); ++i) CHECK(round_half_even(in[i]) == out[i]);
}
