// HistogramMse<TrueGrid> against a brute-force search on the data itself, and
// against PyTorch's 256-level search at low bit widths.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "lowbit/lowbit.hpp"
#include "../support/random.hpp"

using namespace lowbit;

namespace {

template <class F>
double data_mse(const std::vector<float>& x, float s) {
  double e = 0;
  for (float v : x) {
    const float q = std::clamp(std::nearbyint(v * (1.0f / s)), float(F::qmin), float(F::qmax)) * s;
    e += (double(q) - v) * (double(q) - v);
  }
  return e / static_cast<double>(x.size());
}

template <class F>
void check_true_grid() {
  const auto x = test::gaussian(20000, 1.0f, 42);
  const SliceStats st = kernels::stats(x.data(), 20000);
  const HistogramMse<HistogramMode::TrueGrid> search{};
  const float s = search.scale<F>(x.data(), 20000, st);
  // brute force over the same candidate set, on the data
  const auto [lo, hi] = F::effective_range(st.min, st.max);
  double best = std::numeric_limits<double>::infinity();
  for (Index k = 1; k <= search.candidates; ++k) {
    const float p = static_cast<float>(k) / static_cast<float>(search.candidates);
    best = std::min(best, data_mse<F>(x, F::scale_for(p * lo, p * hi)));
  }
  const double got = data_mse<F>(x, s);
  INFO("bits ", F::bits, " true-grid mse ", got, " brute-force best ", best);
  CHECK(got <= best * 1.01);
  const float torch_s = HistogramMse<>{}.scale<F>(x.data(), 20000, st);
  CHECK(got <= data_mse<F>(x, torch_s) * 1.0001);
}

}  // namespace

TEST_CASE("TrueGrid's histogram error finds the data-MSE optimum of its candidates") {
  check_true_grid<Int<2>>();
  check_true_grid<Int<3>>();
  check_true_grid<Int<4>>();
  check_true_grid<Int<8>>();
  check_true_grid<IntFull<4>>();
}

TEST_CASE("grid_error integrates the squared error exactly for a single bin") {
  // one bin [0, 1] holding 1 element (density 1), grid step s = 1: levels 0 and 1,
  // boundary at 0.5 → ∫_0^0.5 x² + ∫_0.5^1 (x-1)² = 1/12
  Histogram h{0.0f, 1.0f, {1.0}};
  CHECK(detail::grid_error(h, 1.0, -1, 1) == doctest::Approx(1.0 / 12.0));
  // clipped: only level 0 (qmin = qmax = 0) → ∫_0^1 x² = 1/3
  CHECK(detail::grid_error(h, 1.0, 0, 0) == doctest::Approx(1.0 / 3.0));
}
