// Landscape probes on functions whose basin is known, and on a tiny softmax model.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "lowbit/analysis/landscape.hpp"

using namespace lowbit;
using namespace lowbit::analysis;

TEST_CASE("radial profile of a quadratic is quadratic and the set is restored") {
  std::vector<float> a = {1.0f, -2.0f, 0.5f}, b = {3.0f};
  ParameterSet set({a, b});
  const auto base = set.snapshot();
  // L(w) = Σ (w - w0)², so along a unit direction L(r) = r²
  const auto loss = [&] {
    double s = 0;
    const auto now = set.snapshot();
    for (std::size_t i = 0; i < now.size(); ++i) s += (double(now[i]) - base[i]) * (double(now[i]) - base[i]);
    return s;
  };
  const auto dir = random_unit_direction(set.size(), 3);
  const std::vector<double> radii = {0, 0.1, 0.2, 0.4, 0.8, 1.6};
  const auto prof = profile(set, base, dir, radii, loss);
  for (std::size_t i = 0; i < radii.size(); ++i) CHECK(prof[i] == doctest::Approx(radii[i] * radii[i]).epsilon(1e-5));
  CHECK(set.snapshot() == base);
  const auto e = basin_radius(radii, prof);
  CHECK(e.b == doctest::Approx(1.0).epsilon(1e-4));
  CHECK(std::isinf(e.radius));
}

TEST_CASE("basin radius finds where a profile leaves its quadratic") {
  // quadratic up to r = 1, then it rises much faster
  std::vector<double> radii, losses;
  for (int i = 0; i <= 20; ++i) {
    const double r = 0.1 * i;
    radii.push_back(r);
    losses.push_back(2.0 + 0.5 * r * r + (r > 1.0 ? 3.0 * (r - 1.0) * (r - 1.0) * (r - 1.0) : 0.0));
  }
  const auto e = basin_radius(radii, losses);
  CHECK(e.l0 == 2.0);
  CHECK(e.radius > 1.0);
  CHECK(e.radius < 1.5);
  CHECK_THROWS_AS(basin_radius({0.1, 0.2, 0.3, 0.4}, {1, 2, 3, 4}), Error);
  CHECK_THROWS_AS(basin_radius({0, 0.2, 0.1, 0.4}, {1, 2, 3, 4}), Error);
}

TEST_CASE("segment between two weight sets interpolates exactly at its ends") {
  std::vector<float> w = {0.5f, -0.25f};
  ParameterSet set({w});
  const std::vector<float> a = {0.5f, -0.25f}, b = {1.5f, 0.75f};
  // a tiny logistic model: loss = softplus(-(w0·1 + w1·2))
  const auto loss = [&] { return std::log1p(std::exp(-(double(w[0]) + 2.0 * w[1]))); };
  const auto prof = profile(set, a, difference(a, b), {0.0, 0.5, 1.0}, loss);
  CHECK(prof[0] == doctest::Approx(std::log1p(std::exp(-(0.5 - 0.5)))));
  CHECK(prof[2] == doctest::Approx(std::log1p(std::exp(-(1.5 + 1.5)))));
  CHECK(prof[1] < prof[0]);
  CHECK(distance(a, b) == doctest::Approx(std::sqrt(2.0)));
  CHECK(w == a);  // restored
}
