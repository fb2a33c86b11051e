// What one study run measures: the full-precision model and every method × bit width.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lowbit::study {

inline constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();

/// What a run's bit width is called, from its grid: "int4" and "nf4" for the integer
/// and NF grids; a llama.cpp block format has one bit width and is called by its
/// name ("q4_k"). Unit keys, logs and the report all use it.
inline std::string unit_label(const std::string& grid, int bits) {
  return grid == "int" || grid == "nf" ? grid + std::to_string(bits) : grid;
}

/// One quantizable linear layer's figures for one quantized model.
struct LayerResult {
  std::string name;
  double output_mse = nan_value;  ///< ‖Q(W)X − WX‖² / (tokens · out_features) on test inputs
  double weight_sq_error = nan_value;  ///< ‖Q(W) − W‖²_F
  double damp = nan_value;        ///< GPTQ's chosen dampening (relative to mean diag H)
};

/// One unit: the resumable piece of a run — a (method, bits) model, or the run's
/// full-precision reference or landscape.
struct UnitResult {
  std::string method;  ///< "rtn", "gptq", "qaft"; "fp", "landscape", "landscape-layers"
  int bits = 0;        ///< 2..8; 0 for the units without a bit width (has_bits())
  double test_nll = nan_value;
  double val_nll = nan_value;
  double ood_nll = nan_value;          ///< out-of-domain text (e.g. WikiText-2 for stories260K)
  double weight_distance = nan_value;  ///< ‖w_q − w‖₂ over the whole quantized stack
  double weight_bytes = nan_value;     ///< packed codes + scales of the quantized layers + the rest in fp32
  double learning_rate = nan_value;    ///< QAFT: the rate chosen on validation
  double basin_radius = nan_value;     ///< landscape: mean R(w) over the random directions
  std::vector<double> epoch_test_nll;  ///< QAFT: test NLL after each epoch
  std::vector<double> epoch_val_nll;   ///< QAFT: validation NLL after each epoch
  std::vector<std::pair<double, double>> lr_curve;  ///< QAFT: (rate, validation NLL)
  std::vector<LayerResult> layers;
  std::map<std::string, double> seconds;  ///< wall time per phase
  std::vector<std::string> notes;         ///< e.g. damping retries of a non-positive-definite Hessian
  [[nodiscard]] double test_ppl() const { return std::exp(test_nll); }
  /// Whether the method quantizes (and so the unit has a bit width).
  [[nodiscard]] static bool has_bits(const std::string& method) {
    return method != "fp" && method != "landscape" && method != "landscape-layers";
  }
};

/// A radial or segment profile of the global NLL.
struct Profile {
  std::string label;  ///< random_label(): "random 0"; segment_label(): "w -> w_gptq (int4)", …
  std::vector<double> t;  ///< distance from the start, ascending
  std::vector<double> nll;
  double basin_radius = nan_value;

  /// How much the NLL has risen at distance x from the start: interpolated linearly
  /// in t², exact for a quadratic bowl around the start — near a minimum the rise
  /// grows with t², and a line through coarse radial probes would overstate it below
  /// the first probe many times over. Held at the last probe beyond it; NaN for a
  /// malformed profile or x.
  [[nodiscard]] double rise_at(double x) const {
    if (t.empty() || nll.size() != t.size() || !(x >= 0)) return nan_value;
    const auto hi = std::lower_bound(t.begin(), t.end(), x);
    if (hi == t.begin()) return 0.0;
    if (hi == t.end()) return nll.back() - nll.front();
    const auto k = static_cast<std::size_t>(hi - t.begin());
    const double a = (x * x - t[k - 1] * t[k - 1]) / (t[k] * t[k] - t[k - 1] * t[k - 1]);
    return nll[k - 1] + a * (nll[k] - nll[k - 1]) - nll.front();
  }
};

/// The label of the k-th random radial direction ("random 3"), and whether a
/// profile is one: the landscape names them so, the report and predictor find them so.
inline std::string random_label(long k) { return "random " + std::to_string(k); }
inline bool is_random(const Profile& p) { return p.label.starts_with("random "); }

/// The label of the straight segment from w to a method's weights at one width
/// ("w -> w_gptq (int4)"), and of the one between GPTQ's and QAFT's solutions.
inline std::string segment_label(const std::string& method, const std::string& width) {
  return "w -> w_" + method + " (" + width + ")";
}
inline constexpr const char* solutions_segment = "w_gptq -> w_qaft";
inline std::string solutions_segment_label(const std::string& width) {
  return std::string(solutions_segment) + " (" + width + ")";
}

struct StudyResults {
  std::string model;
  std::string data;
  long parameters = 0;           ///< all parameters
  long quantized_parameters = 0; ///< those in the quantized linear layers
  double fp_test_nll = nan_value;
  double fp_val_nll = nan_value;
  double fp_ood_nll = nan_value;
  std::string ood_data;  ///< what fp_ood_nll / ood_nll were measured on
  std::string grid = "int";  ///< "int" (int4, int2), "nf" (nf4), or a block format's name ("q4_k"): unit_label
  double fp_weight_bytes = nan_value;
  std::vector<UnitResult> units;
  std::vector<Profile> profiles;        ///< random directions and segments (Figure 3)
  std::vector<Profile> layer_profiles;  ///< one random direction inside each layer ("layer <name>")
  double basin_radius = nan_value;  ///< mean R(w) over the random radial directions
  std::vector<std::string> notes;   ///< about the run as a whole (a block format's type per layer)

  /// "int4", "nf4": a unit's bit width as the logs and the report name it.
  [[nodiscard]] std::string label(int bits) const { return unit_label(grid, bits); }

  [[nodiscard]] const UnitResult* find(const std::string& method, int bits) const {
    for (const auto& u : units)
      if (u.method == method && u.bits == bits) return &u;
    return nullptr;
  }
  [[nodiscard]] const Profile* find_profile(const std::string& label) const {
    for (const auto& p : profiles)
      if (p.label == label) return &p;
    return nullptr;
  }
};

/// Two methods whose test NLLs are closer than this (nats) are tied: on stories260K the
/// order of methods that close flips between the test split and held-out stories
/// (int8/int6, docs/results/README.md), so a smaller difference is no verdict on either
/// objective. The report and the predictor both use it.
inline constexpr double method_tie_margin = 0.02;

/// Which method is ahead by more than method_tie_margin: "QAFT", "GPTQ" or "tie".
inline const char* method_winner(double qaft_minus_gptq) {
  return std::fabs(qaft_minus_gptq) <= method_tie_margin ? "tie" : qaft_minus_gptq < 0 ? "QAFT" : "GPTQ";
}

/// How many layers of unit `u` have an output MSE at or below RTN's for the same
/// layer, of the layers both units measured (the study's Figure 1, right).
struct LayersBelow {
  int below = 0, total = 0;
};
inline LayersBelow layers_below_rtn(const UnitResult& rtn, const UnitResult& u) {
  LayersBelow n;
  for (const auto& lr : rtn.layers)
    for (const auto& l : u.layers)
      if (l.name == lr.name) ++n.total, n.below += l.output_mse <= lr.output_mse ? 1 : 0;
  return n;
}

/// How many layers of unit `u` have ‖ΔW‖ outside that layer's own basin (the run's
/// per-layer landscape), of the layers probed; a layer whose basin is beyond its
/// largest probe (NaN radius) counts as inside.
struct LayersOutside {
  int outside = 0, total = 0;
};
inline LayersOutside layers_outside_basin(const StudyResults& r, const UnitResult& u) {
  LayersOutside n;
  for (const auto& p : r.layer_profiles)
    for (const auto& l : u.layers)
      if (p.label == "layer " + l.name) {
        ++n.total;
        n.outside += std::isfinite(p.basin_radius) && std::sqrt(l.weight_sq_error) > p.basin_radius ? 1 : 0;
      }
  return n;
}

/// The largest radius the run's random radial profiles probed; NaN without a landscape.
inline double largest_probe_radius(const StudyResults& r) {
  double m = nan_value;
  for (const auto& p : r.profiles)
    if (is_random(p) && !p.t.empty()) m = std::isnan(m) ? p.t.back() : std::max(m, p.t.back());
  return m;
}

}  // namespace lowbit::study
