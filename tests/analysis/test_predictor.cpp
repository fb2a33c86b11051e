// The predictor's small models (analysis/predictor.hpp) on data whose answer is known.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lowbit/analysis/predictor.hpp"

using namespace lowbit::analysis;

TEST_CASE("RidgeRegression recovers an exact linear law and predicts off the fitting set") {
  Eigen::MatrixXd x(6, 2);
  x << 0, 1, 1, 0, 2, 3, 3, 1, 4, 5, 5, 2;
  Eigen::VectorXd y(6);
  for (int i = 0; i < 6; ++i) y(i) = 2 + 3 * x(i, 0) - x(i, 1);
  const auto m = RidgeRegression::fit(x, y, 1e-12);
  Eigen::MatrixXd q(2, 2);
  q << 10, -1, -2, 7;
  const Eigen::VectorXd p = m.predict(q);
  CHECK(p(0) == doctest::Approx(2 + 30 + 1).epsilon(1e-8));
  CHECK(p(1) == doctest::Approx(2 - 6 - 7).epsilon(1e-8));
  // A penalty shrinks the slopes towards zero, never the intercept: the mean stays.
  const auto shrunk = RidgeRegression::fit(x, y, 1e6);
  CHECK(shrunk.predict(x).mean() == doctest::Approx(y.mean()));
  CHECK(std::fabs(shrunk.predict(q)(0) - y.mean()) < 1e-3);
}

TEST_CASE("LogisticRegression: probabilities follow the labels; one class gives its frequency") {
  Eigen::MatrixXd x(8, 1);
  x << -3, -2, -1, -0.5, 0.5, 1, 2, 3;
  Eigen::VectorXd y(8);
  y << 0, 0, 0, 1, 0, 1, 1, 1;  // overlapping around 0
  const auto m = LogisticRegression::fit(x, y);
  const Eigen::VectorXd p = m.probability(x);
  for (int i = 1; i < 8; ++i) CHECK(p(i) > p(i - 1));
  CHECK(p(0) < 0.5);
  CHECK(p(7) > 0.5);
  // Perfectly separable: the penalty keeps the fit finite.
  Eigen::VectorXd sep(8);
  sep << 0, 0, 0, 0, 1, 1, 1, 1;
  const Eigen::VectorXd ps = LogisticRegression::fit(x, sep).probability(x);
  for (int i = 0; i < 8; ++i) {
    CHECK(std::isfinite(ps(i)));
    CHECK((ps(i) > 0.5) == (sep(i) == 1));
  }
  const Eigen::VectorXd ones = Eigen::VectorXd::Ones(8);
  CHECK(LogisticRegression::fit(x, ones).probability(x)(3) == 1.0);
}

TEST_CASE("ThresholdRule: the best cut and direction, halfway between values") {
  const auto up = ThresholdRule::fit({1, 2, 3, 4}, {0, 0, 1, 1});
  CHECK(up.above);
  CHECK(up.threshold == 2.5);
  CHECK(up.predict(2.6) == 1);
  const auto down = ThresholdRule::fit({1, 2, 3, 4}, {1, 1, 0, 0});
  CHECK_FALSE(down.above);
  CHECK(down.threshold == 2.5);
  // All one class: a cut outside the values classifies all of them.
  const auto all = ThresholdRule::fit({1, 2}, {1, 1});
  CHECK(all.predict(1) == 1);
  CHECK(all.predict(2) == 1);
  CHECK_THROWS_AS(ThresholdRule::fit({1}, {1, 0}), lowbit::Error);
}

TEST_CASE("leave_one_group_out never fits on the rows it predicts") {
  const std::vector<std::string> g = {"a", "b", "a", "c", "b"};
  const auto out = leave_one_group_out(g, [&](const std::vector<int>& train, const std::vector<int>& test) {
    for (const int i : train)
      for (const int j : test) CHECK(g[static_cast<std::size_t>(i)] != g[static_cast<std::size_t>(j)]);
    CHECK(train.size() + test.size() == g.size());
    std::vector<double> p;
    for (const int j : test) p.push_back(j * 10.0);
    return p;
  });
  CHECK(out == std::vector<double>{0, 10, 20, 30, 40});
  const auto alone = leave_one_group_out({"a", "a"}, [](const auto&, const auto&) { return std::vector<double>{}; });
  CHECK(std::isnan(alone[0]));
}

TEST_CASE("spearman: ranks, ties averaged") {
  CHECK(spearman({1, 2, 3, 4}, {10, 20, 30, 400}) == doctest::Approx(1));
  CHECK(spearman({1, 2, 3, 4}, {4, 3, 2, 1}) == doctest::Approx(-1));
  CHECK(spearman({1, 2, 2, 3}, {1, 2, 2, 3}) == doctest::Approx(1));
  CHECK(std::isnan(spearman({1, 2}, {2, 1})));
}
