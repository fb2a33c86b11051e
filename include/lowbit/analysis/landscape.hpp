// Loss-landscape probes (the study's Figure 3 and beyond): radial profiles along
// random unit directions, straight segments between weight sets, and the basin
// radius R(w) at which a radial profile stops being quadratic.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include <Eigen/Dense>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit::analysis {

/// The tensors being probed (e.g. every quantizable linear weight of the stack),
/// viewed together as one flat vector w. The probes write into them and restore them.
class ParameterSet {
 public:
  ParameterSet() = default;
  explicit ParameterSet(std::vector<std::span<float>> parts) : parts_(std::move(parts)) {}
  void add(std::span<float> p) { parts_.push_back(p); }

  [[nodiscard]] const std::vector<std::span<float>>& parts() const { return parts_; }
  [[nodiscard]] Index size() const {
    Index n = 0;
    for (const auto& p : parts_) n += static_cast<Index>(p.size());
    return n;
  }
  /// A copy of the current values, flattened in part order.
  [[nodiscard]] std::vector<float> snapshot() const {
    std::vector<float> v;
    v.reserve(static_cast<std::size_t>(size()));
    for (const auto& p : parts_) v.insert(v.end(), p.begin(), p.end());
    return v;
  }
  /// Sets the parts to base + t·dir (flattened vectors of size()).
  void assign(const std::vector<float>& base, const std::vector<float>& dir, double t) {
    check_size(base, "base");
    check_size(dir, "direction");
    std::size_t k = 0;
    for (auto& p : parts_)
      for (float& x : p) {
        x = static_cast<float>(static_cast<double>(base[k]) + t * static_cast<double>(dir[k]));
        ++k;
      }
  }
  void assign(const std::vector<float>& values) {
    check_size(values, "values");
    std::size_t k = 0;
    for (auto& p : parts_)
      for (float& x : p) x = values[k++];
  }

 private:
  void check_size(const std::vector<float>& v, const char* what) const {
    lowbit::detail::check(static_cast<Index>(v.size()) == size(), "landscape: ", what, " has ", v.size(),
                  " values but the parameter set has ", size());
  }
  std::vector<std::span<float>> parts_;
};

/// ‖a − b‖₂ over flattened vectors.
inline double distance(const std::vector<float>& a, const std::vector<float>& b) {
  lowbit::detail::check(a.size() == b.size(), "landscape: distance between vectors of ", a.size(), " and ", b.size(),
                " values");
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s);
}

/// b − a, the direction from a to b.
inline std::vector<float> difference(const std::vector<float>& a, const std::vector<float>& b) {
  lowbit::detail::check(a.size() == b.size(), "landscape: difference of vectors of ", a.size(), " and ", b.size());
  std::vector<float> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = b[i] - a[i];
  return d;
}

/// A Gaussian direction of unit L2 norm over the whole set (the study's random
/// directions), seeded so that runs are reproducible.
inline std::vector<float> random_unit_direction(Index n, std::uint64_t seed) {
  lowbit::detail::check(n > 0, "landscape: cannot draw a direction in an empty parameter set");
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<double> v(static_cast<std::size_t>(n));
  double s = 0;
  for (auto& x : v) {
    x = d(gen);
    s += x * x;
  }
  const double inv = 1.0 / std::sqrt(s);
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(v[i] * inv);
  return out;
}

/// Losses at base + t·dir for each t, with `loss()` evaluated on the set as
/// assigned; the set is restored to `base` afterwards (also when loss() throws).
template <class LossFn>
std::vector<double> profile(ParameterSet& set, const std::vector<float>& base, const std::vector<float>& dir,
                            const std::vector<double>& ts, LossFn&& loss) {
  struct Restore {
    ParameterSet& s;
    const std::vector<float>& b;
    ~Restore() { s.assign(b); }
  } restore{set, base};
  std::vector<double> out;
  out.reserve(ts.size());
  for (const double t : ts) {
    set.assign(base, dir, t);
    out.push_back(static_cast<double>(loss()));
  }
  return out;
}

/// The quadratic model L(r) ≈ L(0) + a·r + b·r² fitted to the first `fit_points`
/// non-zero radii of a radial profile, and the basin radius: the smallest radius at
/// which the measured loss departs from the model by more than `rel_tol` of the
/// model's rise (|L(r) − q(r)| > rel_tol·|q(r) − L(0)|). `radius` is +inf when the
/// profile stays quadratic over every radius tried.
struct BasinEstimate {
  double l0 = 0, a = 0, b = 0;
  double radius = std::numeric_limits<double>::infinity();
  [[nodiscard]] double model(double r) const { return l0 + a * r + b * r * r; }
};

inline BasinEstimate basin_radius(const std::vector<double>& radii, const std::vector<double>& losses,
                                  int fit_points = 3, double rel_tol = 0.1) {
  lowbit::detail::check(radii.size() == losses.size(), "basin_radius: ", radii.size(), " radii but ", losses.size(),
                " losses");
  lowbit::detail::check(!radii.empty() && radii[0] == 0.0, "basin_radius: the first radius must be 0 (the loss at w)");
  lowbit::detail::check(static_cast<int>(radii.size()) > fit_points, "basin_radius: need more than ", fit_points,
                " radii, got ", radii.size());
  for (std::size_t i = 1; i < radii.size(); ++i)
    lowbit::detail::check(radii[i] > radii[i - 1], "basin_radius: radii must increase (index ", i, ")");
  BasinEstimate e;
  e.l0 = losses[0];
  Eigen::MatrixXd A(fit_points, 2);
  Eigen::VectorXd y(fit_points);
  for (int i = 0; i < fit_points; ++i) {
    const double r = radii[static_cast<std::size_t>(i + 1)];
    A(i, 0) = r;
    A(i, 1) = r * r;
    y(i) = losses[static_cast<std::size_t>(i + 1)] - e.l0;
  }
  const Eigen::Vector2d c = A.colPivHouseholderQr().solve(y);
  e.a = c(0);
  e.b = c(1);
  for (std::size_t i = static_cast<std::size_t>(fit_points) + 1; i < radii.size(); ++i) {
    const double q = e.model(radii[i]);
    if (!std::isfinite(losses[i]) || std::fabs(losses[i] - q) > rel_tol * std::fabs(q - e.l0)) {
      e.radius = radii[i];
      break;
    }
  }
  return e;
}

}  // namespace lowbit::analysis
