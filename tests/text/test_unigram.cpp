// Add-one unigram baseline on examples small enough to work out by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "lowbit/text/unigram.hpp"

using lowbit::Error;
namespace text = lowbit::text;

TEST_CASE("unigram: add-one smoothed probabilities and mean NLL by hand") {
  // Train {0, 0, 1} over V = 3: p = (2+1, 1+1, 0+1) / (3+3) = 1/2, 1/3, 1/6.
  const auto m = text::UnigramModel::fit(std::vector<int>{0, 0, 1}, 3);
  CHECK(m.total() == 3);
  CHECK(m.count(0) == 2);
  CHECK(m.log_prob(0) == doctest::Approx(std::log(0.5)).epsilon(1e-15));
  CHECK(m.log_prob(1) == doctest::Approx(std::log(1.0 / 3)).epsilon(1e-15));
  CHECK(m.log_prob(2) == doctest::Approx(std::log(1.0 / 6)).epsilon(1e-15));
  // Test {0, 2}: -(log 1/2 + log 1/6) / 2 = log(12) / 2.
  CHECK(m.mean_nll(std::vector<int>{0, 2}) == doctest::Approx(std::log(12.0) / 2).epsilon(1e-15));
  // Test {1, 1, 1, 0}: (3 log 3 + log 2) / 4.
  CHECK(m.mean_nll(std::vector<int>{1, 1, 1, 0}) ==
        doctest::Approx((3 * std::log(3.0) + std::log(2.0)) / 4).epsilon(1e-15));
  // An unfitted model is uniform: log V.
  const auto uniform = text::UnigramModel::fit({}, 7);
  CHECK(uniform.mean_nll(std::vector<int>{0, 6, 3}) == doctest::Approx(std::log(7.0)).epsilon(1e-15));

  CHECK_THROWS_WITH_AS((void)m.mean_nll({}), doctest::Contains("no tokens"), Error);
  CHECK_THROWS_WITH_AS((void)m.mean_nll(std::vector<int>{0, 3}), doctest::Contains("token 1 has id 3"), Error);
  CHECK_THROWS_WITH_AS((void)text::UnigramModel::fit(std::vector<int>{-1}, 3), doctest::Contains("token 0 has id -1"),
                       Error);
  CHECK_THROWS_AS((void)text::UnigramModel::fit({}, 0), Error);
}
