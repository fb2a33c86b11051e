// The study's per-layer dampening search: run GPTQ at each damping of a grid and
// keep the one with the lowest layer output MSE.
#pragma once

#include <cstddef>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/gptq/hessian.hpp"
#include "lowbit/gptq/result.hpp"

namespace lowbit {

/// The study's grid: percdamp ∈ {1e-3, 1e-2, …, 1e4}.
inline std::vector<double> default_damp_grid() { return {1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4}; }

struct DampPoint {
  double percdamp = 0.0;        ///< requested relative damping
  double used_percdamp = 0.0;   ///< after retries (equal unless H needed more)
  double objective = 0.0;       ///< tr(ΔHΔᵀ) with the undamped H
  double output_mse = 0.0;      ///< ‖ΔXᵀ‖²/(tokens·rows)
  std::size_t retries = 0;
  bool ok = false;              ///< factorization succeeded (info() == Success)
};

struct DampSearchResult {
  std::vector<DampPoint> curve;  ///< one point per grid value, in grid order
  std::size_t best = 0;          ///< index of the lowest output MSE among ok points
  SolveResult best_result;       ///< the solver's result at curve[best]
};

/// Runs `solver` (a Gptq; anything with options().percdamp, options().evaluate and
/// quantize(w, h, name)) once per damping. Ties keep the smaller damping.
template <class Solver>
DampSearchResult damp_search(const Solver& solver, ConstMatrixView w, const Hessian& h,
                             std::span<const double> grid, std::string_view name = "weight") {
  detail::check(!grid.empty(), "damp_search on '", name, "': the damping grid is empty");
  for (double d : grid)
    detail::check(std::isfinite(d) && d >= 0.0, "damp_search on '", name, "': damping ", d,
                  " is not a finite non-negative number");
  DampSearchResult out;
  double best_mse = std::numeric_limits<double>::infinity();
  bool have_best = false;
  for (double d : grid) {
    Solver s = solver;
    s.options().percdamp = d;
    s.options().evaluate = true;
    SolveResult r = s.quantize(w, h, name);
    DampPoint pt;
    pt.percdamp = d;
    pt.used_percdamp = r.percdamp;
    pt.retries = r.retries.size();
    pt.ok = r.info() == ::Eigen::Success;
    pt.objective = r.after->objective;
    pt.output_mse = r.after->output_mse;
    out.curve.push_back(pt);
    if (pt.ok && (!have_best || pt.output_mse < best_mse)) {
      best_mse = pt.output_mse;
      have_best = true;
      out.best = out.curve.size() - 1;
      out.best_result = std::move(r);
    }
  }
  detail::check(have_best, "damp_search on '", name, "': H could not be factorized at any damping");
  return out;
}

template <class Solver>
DampSearchResult damp_search(const Solver& solver, ConstMatrixView w, const Hessian& h,
                             std::string_view name = "weight") {
  const std::vector<double> grid = default_damp_grid();
  return damp_search(solver, w, h, std::span<const double>(grid), name);
}

}  // namespace lowbit
