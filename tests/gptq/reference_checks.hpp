// Checks shared by the fixture tests against the GPTQ reference (symmetric and
// asymmetric grids): per-column losses and the act-order permutation.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "lowbit/gptq.hpp"
#include "../support/fixture.hpp"

namespace lowbit::test {

/// r's losses equal the reference's `<p>losses` (per column and in total), and with
/// act-order its permutation equals `<p>perm` up to ties between dead columns.
inline void check_losses_and_order(const Fixture& f, const std::string& p, const SolveResult& r, const Hessian& h,
                                   bool actorder) {
  const auto& losses = f[p + "losses"].values;
  REQUIRE(losses.size() == r.column_losses.size());
  double total_ref = 0.0;
  for (std::size_t i = 0; i < losses.size(); ++i) {
    CHECK(r.column_losses[i] == doctest::Approx(losses[i]).epsilon(2e-3).scale(1e-6));
    total_ref += losses[i];
  }
  CHECK(r.total_loss() == doctest::Approx(total_ref).epsilon(1e-4));

  if (!actorder) {
    CHECK(r.permutation.empty());
    return;
  }
  const auto& perm = f[p + "perm"].values;
  REQUIRE(r.permutation.size() == perm.size());
  // Dead columns tie at H_dd = 1; their relative order changes nothing.
  const auto& hm = h.matrix;
  for (std::size_t i = 0; i < perm.size(); ++i) {
    const auto ref = static_cast<Index>(perm[i]);
    if (hm(ref, ref) != 0.0f) CHECK(r.permutation[i] == ref);
  }
}

}  // namespace lowbit::test
