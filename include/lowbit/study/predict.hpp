// lowbit-study --predict: can the loss landscape around w, measured before any
// fine-tuning, tell how much round-to-nearest and GPTQ will cost and whether QAFT
// will beat GPTQ? (issue #15, after Xu et al. 2024, "Scaling laws for post training
// quantized LLMs", which fits such predictors from local landscape features.)
//
// One point per finished run and bit width that has RTN, GPTQ and QAFT units and a
// landscape. Its first three features need no fine-tuning and no GPTQ — the model,
// its RTN weights, the validation windows the landscape probes and the layers' inputs:
//   * log10 ‖w_RTN − w‖ / R(w) — the perturbation against the basin radius (the
//     radii are the model's own probe grid, the same in every run of it);
//   * the fraction of layers whose ‖ΔW_RTN‖ leaves that layer's own basin;
//   * log10 of RTN's mean layer output MSE (‖ΔW·X‖² per output). Its X are the
//     test split's activations (the study measures every unit's layer MSE there), the
//     split the targets are measured on: a feature that shares data with its target.
// A fourth needs GPTQ's weights but still no fine-tuning, and enters only the "does
// QAFT win" question: the valley — log10 of how much the NLL rises along the straight
// segment w → w_GPTQ against the random directions at the same distance. pd-1m's
// exceptions (GPTQ beating QAFT outside the basin) have GPTQ's segment rising a
// tenth of the random directions' rise (docs/results/README.md).
// Targets: the test-NLL increase over full precision after RTN and after GPTQ
// (log10, floored at 1e-3 nats), and whether QAFT's test NLL is below GPTQ's by more
// than PredictorPoint::win_margin. Each
// model is predicted by fits on the other models only (leave one model out), and the
// report says how often that works — whichever way it goes.
#pragma once

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/analysis/predictor.hpp"
#include "lowbit/analysis/svg_plot.hpp"
#include "lowbit/core/atomic_file.hpp"
#include "lowbit/study/compare.hpp"
#include "lowbit/study/report.hpp"

namespace lowbit::study {

/// One run × bit width, as the predictor sees it.
struct PredictorPoint {
  std::string model, run, width;  ///< width: "int4", "q4_0"
  std::string group;              ///< what leave-one-model-out leaves out: the weights' fingerprint
  std::string protocol;
  double log_ratio = nan_value;   ///< log10 ‖Δw_RTN‖ / R(w)
  bool radius_beyond = false;     ///< R(w) beyond the probes: log_ratio is an upper bound
  double exits = nan_value;       ///< fraction of layers outside their own basin
  double log_mse = nan_value;     ///< log10 mean RTN layer output MSE
  double log_valley = nan_value;  ///< log10 GPTQ segment's NLL rise / random directions' (detail::log_valley)
  double rtn_increase = nan_value, gptq_increase = nan_value;  ///< test NLL − fp test NLL
  double qaft_minus_gptq = nan_value;

  /// QAFT counts as beating GPTQ when its test NLL is lower by more than this (closer
  /// is a tie: method_tie_margin).
  static constexpr double win_margin = method_tie_margin;
  [[nodiscard]] bool qaft_wins() const { return qaft_minus_gptq < -win_margin; }
};

/// The model a run studied, for tables: the first word of results.json's "model"
/// without a model file's extension ("stories260K.bin (5 layers, d=64)" →
/// "stories260K"; a Hugging Face folder "Qwen2.5-0.5B" stays whole).
inline std::string model_name(const StudyResults& r) {
  std::string name = std::filesystem::path(r.model.substr(0, r.model.find(' '))).filename().string();
  for (const std::string ext : {".bin", ".gguf", ".safetensors"})
    if (name.size() > ext.size() && name.ends_with(ext)) return name.substr(0, name.size() - ext.size());
  return name;
}

namespace detail {
inline double log_mean_mse(const UnitResult& rtn) {
  double s = 0;
  for (const auto& l : rtn.layers) s += l.output_mse;
  return rtn.layers.empty() || !(s > 0) ? nan_value : std::log10(s / static_cast<double>(rtn.layers.size()));
}

/// NLL rises below this (nats) are within the probes' noise: the valley floors both
/// rises here, so where both are that small (q8_0, most int8) it reads 0 — no signal.
inline constexpr double valley_floor = 1e-3;

/// log10 of (the NLL rise along w → w_GPTQ at distance D) / (the random directions'
/// mean rise at D), D = ‖w_GPTQ − w‖ or the end of the shortest random profile if
/// that is nearer. Below 0: GPTQ moved along a valley, flatter than a random
/// direction. NaN without the run's GPTQ segment at `width` or random profiles.
inline double log_valley(const StudyResults& r, const std::string& width) {
  const Profile* g = r.find_profile(segment_label("gptq", width));
  if (!g || g->t.empty()) return nan_value;
  double d = g->t.back(), random = 0;
  int n = 0;
  for (const auto& p : r.profiles)
    if (is_random(p) && !p.t.empty()) d = std::min(d, p.t.back()), ++n;
  if (n == 0) return nan_value;
  for (const auto& p : r.profiles)
    if (is_random(p) && !p.t.empty()) random += p.rise_at(d) / n;
  return std::log10(std::max(g->rise_at(d), valley_floor) / std::max(random, valley_floor));
}
}  // namespace detail

/// The points of finished runs; `skipped` says which widths could not be used and why.
inline std::vector<PredictorPoint> predictor_points(const std::vector<ComparedRun>& runs, std::vector<std::string>& skipped) {
  std::vector<PredictorPoint> pts;
  for (const auto& run : runs) {
    const StudyResults& r = run.results;
    const double probe = largest_probe_radius(r);
    for (const int b : detail::bit_widths(r)) {
      const auto *rt = r.find("rtn", b), *g = r.find("gptq", b), *q = r.find("qaft", b);
      const std::string what = run.name + " " + r.label(b);
      if (!rt || !g || !q) { skipped.push_back(what + ": lacks an RTN, GPTQ or QAFT unit"); continue; }
      if (std::isnan(probe)) { skipped.push_back(what + ": the run has no landscape (--landscape)"); continue; }
      PredictorPoint p;
      p.model = model_name(r), p.run = run.name, p.width = r.label(b);
      p.group = run.model_fingerprint.empty() ? p.model : run.model_fingerprint;
      p.protocol = run.protocol;
      p.radius_beyond = !std::isfinite(r.basin_radius);
      p.log_ratio = std::log10(rt->weight_distance / (p.radius_beyond ? probe : r.basin_radius));
      const LayersOutside n = layers_outside_basin(r, *rt);
      p.exits = n.total > 0 ? static_cast<double>(n.outside) / n.total : nan_value;
      p.log_mse = detail::log_mean_mse(*rt);
      p.log_valley = detail::log_valley(r, p.width);
      p.rtn_increase = rt->test_nll - r.fp_test_nll;
      p.gptq_increase = g->test_nll - r.fp_test_nll;
      p.qaft_minus_gptq = q->test_nll - g->test_nll;
      if (!std::isfinite(p.exits)) { skipped.push_back(what + ": no per-layer landscape (a --quick run?)"); continue; }
      if (!std::isfinite(p.log_mse) || !std::isfinite(p.log_ratio)) {
        skipped.push_back(what + ": ‖w_RTN − w‖ or RTN's layer output MSE is zero or not a number");
        continue;
      }
      if (!std::isfinite(p.rtn_increase) || !std::isfinite(p.gptq_increase) || !std::isfinite(p.qaft_minus_gptq)) {
        skipped.push_back(what + ": a test NLL is not a number (a diverged unit?)");
        continue;
      }
      pts.push_back(std::move(p));
    }
  }
  return pts;
}

/// Which features a model reads: r alone; the three that need no GPTQ; r and the valley.
enum class FeatureSet { ratio, all, valley };

inline Eigen::MatrixXd feature_matrix(const std::vector<PredictorPoint>& pts, const std::vector<int>& rows, FeatureSet f) {
  const auto features = [f](const PredictorPoint& p) -> std::vector<double> {
    switch (f) {
      case FeatureSet::ratio: return {p.log_ratio};
      case FeatureSet::all: return {p.log_ratio, p.exits, p.log_mse};
      case FeatureSet::valley: return {p.log_ratio, p.log_valley};
    }
    return {};
  };
  Eigen::MatrixXd x(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(features(PredictorPoint{}).size()));
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto v = features(pts[static_cast<std::size_t>(rows[i])]);
    for (std::size_t j = 0; j < v.size(); ++j) x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = v[j];
  }
  return x;
}

/// The regression target: log10 of an NLL increase, floored at 1e-3 nats (an 8-bit
/// model can come out a hair better than full precision).
inline double log_increase(double d) { return std::log10(std::max(d, 1e-3)); }

/// Whether QAFT wins at the points `test`, by a logistic regression on `f` fitted at
/// the points `train`: 1 or 0 per test point, NaN where a feature is not a number
/// (the valley of a run without GPTQ's segment); such points are left out of the fit.
inline std::vector<double> predict_wins_logistic(const std::vector<PredictorPoint>& pts, const std::vector<int>& train,
                                                 const std::vector<int>& test, FeatureSet f) {
  const auto usable = [&](const std::vector<int>& rows) {
    std::vector<int> out;
    for (const int i : rows)
      if (feature_matrix(pts, {i}, f).allFinite()) out.push_back(i);
    return out;
  };
  const std::vector<int> fit_rows = usable(train), known = usable(test);
  std::vector<double> out(test.size(), nan_value);
  if (fit_rows.empty() || known.empty()) return out;
  Eigen::VectorXd y(static_cast<Eigen::Index>(fit_rows.size()));
  for (std::size_t i = 0; i < fit_rows.size(); ++i) y(static_cast<Eigen::Index>(i)) = pts[static_cast<std::size_t>(fit_rows[i])].qaft_wins();
  const Eigen::VectorXd p =
      analysis::LogisticRegression::fit(feature_matrix(pts, fit_rows, f), y).probability(feature_matrix(pts, known, f));
  for (std::size_t k = 0, j = 0; k < test.size() && j < known.size(); ++k)
    if (test[k] == known[j]) out[k] = p(static_cast<Eigen::Index>(j++)) > 0.5 ? 1 : 0;
  return out;
}

/// What leaving each model out gave.
struct PredictorEvaluation {
  std::vector<double> rtn_all, rtn_ratio, gptq_all, gptq_ratio;  ///< predicted log10 increases
  std::vector<double> wins_threshold, wins_logistic, wins_valley, wins_majority;  ///< predicted labels (NaN: no other model)
};

inline PredictorEvaluation evaluate_predictor(const std::vector<PredictorPoint>& pts) {
  std::vector<std::string> groups;
  for (const auto& p : pts) groups.push_back(p.group);
  const auto regress = [&](auto target, FeatureSet f) {
    return analysis::leave_one_group_out(groups, [&](const std::vector<int>& train, const std::vector<int>& test) {
      Eigen::VectorXd y(static_cast<Eigen::Index>(train.size()));
      for (std::size_t i = 0; i < train.size(); ++i) y(static_cast<Eigen::Index>(i)) = target(pts[static_cast<std::size_t>(train[i])]);
      const auto m = analysis::RidgeRegression::fit(feature_matrix(pts, train, f), y);
      const Eigen::VectorXd p = m.predict(feature_matrix(pts, test, f));
      return std::vector<double>(p.data(), p.data() + p.size());
    });
  };
  const auto rtn = [](const PredictorPoint& p) { return log_increase(p.rtn_increase); };
  const auto gptq = [](const PredictorPoint& p) { return log_increase(p.gptq_increase); };
  PredictorEvaluation e;
  e.rtn_all = regress(rtn, FeatureSet::all);
  e.rtn_ratio = regress(rtn, FeatureSet::ratio);
  e.gptq_all = regress(gptq, FeatureSet::all);
  e.gptq_ratio = regress(gptq, FeatureSet::ratio);
  e.wins_threshold = analysis::leave_one_group_out(groups, [&](const std::vector<int>& train, const std::vector<int>& test) {
    std::vector<double> x;
    std::vector<int> y;
    for (const int i : train) x.push_back(pts[static_cast<std::size_t>(i)].log_ratio), y.push_back(pts[static_cast<std::size_t>(i)].qaft_wins());
    const auto rule = analysis::ThresholdRule::fit(x, y);
    std::vector<double> out;
    for (const int i : test) out.push_back(rule.predict(pts[static_cast<std::size_t>(i)].log_ratio));
    return out;
  });
  const auto classify = [&](FeatureSet f) {
    return analysis::leave_one_group_out(groups, [&](const std::vector<int>& train, const std::vector<int>& test) {
      return predict_wins_logistic(pts, train, test, f);
    });
  };
  e.wins_logistic = classify(FeatureSet::all);
  e.wins_valley = classify(FeatureSet::valley);
  // The baseline: the other models' majority (a tie counts as QAFT winning).
  e.wins_majority = analysis::leave_one_group_out(groups, [&](const std::vector<int>& train, const std::vector<int>& test) {
    double wins = 0;
    for (const int i : train) wins += pts[static_cast<std::size_t>(i)].qaft_wins();
    return std::vector<double>(test.size(), 2 * wins >= static_cast<double>(train.size()) ? 1 : 0);
  });
  return e;
}

namespace detail {
/// "7/9 (78 %)" of the points that have a prediction.
inline std::string accuracy(const std::vector<PredictorPoint>& pts, const std::vector<double>& predicted) {
  int right = 0, total = 0;
  for (std::size_t i = 0; i < pts.size(); ++i)
    if (std::isfinite(predicted[i])) ++total, right += (predicted[i] == 1.0) == pts[i].qaft_wins() ? 1 : 0;
  if (total == 0) return pts.empty() ? "— (no usable points)" : "— (needs two models)";
  return std::to_string(right) + "/" + std::to_string(total) + " (" + num(100.0 * right / total, 3) + " %)";
}

/// Mean |predicted − actual| in log10 units and Spearman's ρ over predicted points.
inline std::string regression_score(const std::vector<PredictorPoint>& pts, const std::vector<double>& predicted,
                                    bool gptq) {
  std::vector<double> a, p;
  double err = 0;
  for (std::size_t i = 0; i < pts.size(); ++i)
    if (std::isfinite(predicted[i])) {
      a.push_back(log_increase(gptq ? pts[i].gptq_increase : pts[i].rtn_increase));
      p.push_back(predicted[i]);
      err += std::fabs(p.back() - a.back());
    }
  if (a.empty()) return pts.empty() ? "— (no usable points)" : "— (needs two models)";
  return "mean |error| " + num(err / static_cast<double>(a.size()), 3) + " decades (×" +
         num(std::pow(10.0, err / static_cast<double>(a.size())), 3) + "), Spearman ρ " + num(analysis::spearman(a, p), 3) +
         " over " + std::to_string(a.size()) + " points";
}
}  // namespace detail

namespace detail {
/// The rules fitted on every point (no point held out) and how many of those points
/// they get right: the threshold on r as a sentence, and the logistic regression on r
/// and v — the gap to the held-out accuracies is what the held-out models add.
inline std::string fitted_on_every_point(const std::vector<PredictorPoint>& pts) {
  std::vector<double> x, fitted;
  std::vector<int> y, every;
  for (const auto& p : pts) x.push_back(p.log_ratio), y.push_back(p.qaft_wins()), every.push_back(static_cast<int>(every.size()));
  const auto rule = analysis::ThresholdRule::fit(x, y);
  for (const double v : x) fitted.push_back(rule.predict(v));
  std::ostringstream o;
  o << "Fitted on every point: QAFT beats GPTQ when r " << (rule.above ? ">" : "<") << " " << num(rule.threshold, 3)
    << " (‖Δw_RTN‖ " << (rule.above ? "above" : "below") << " " << num(std::pow(10.0, rule.threshold), 3)
    << " × R(w)); right for " << accuracy(pts, fitted) << " of the points it was fitted on; the logistic regression "
    << "on r and v, fitted on every point, is right for "
    << accuracy(pts, predict_wins_logistic(pts, every, every, FeatureSet::valley)) << ".\n";
  return o.str();
}
}  // namespace detail

/// predictor.md: the points, leave-one-model-out accuracy of each model against a
/// baseline, and the rule fitted on every point.
inline std::string predictor_markdown(const std::vector<PredictorPoint>& pts, const PredictorEvaluation& e,
                                      const std::vector<std::string>& skipped, const std::string& command) {
  using detail::num;
  std::ostringstream o;
  o << "# When does GPTQ fail? A predictor from the landscape\n\nCommand: `" << command << "`\n\n"
    << "Features (before any fine-tuning): r = log10 ‖w_RTN − w‖ / R(w) (≤: R(w) beyond the probes), the fraction of "
       "layers whose ‖ΔW_RTN‖ leaves that layer's basin, log10 of RTN's mean layer output MSE; and, for whether QAFT "
       "beats GPTQ only, the valley v = log10 (NLL rise along w → w_GPTQ) / (random directions' mean rise), both at "
       "min(‖w_GPTQ − w‖, the random probes' end), interpolated in t², rises floored at "
    << num(detail::valley_floor, 2)
    << " nats (v < 0: GPTQ moved along a valley; it needs GPTQ, no fine-tuning). Every model is predicted by fits on "
       "the other models only (leave one model out).\n\n"
    << "![predicted vs measured](fig_predictor.svg)\n\n"
    << "| model | run | width | protocol | r | layers outside | log10 MSE | v | ΔNLL RTN | ΔNLL GPTQ | QAFT − GPTQ | "
       "predicted ΔNLL RTN | predicted ΔNLL GPTQ | QAFT wins: threshold | logistic | r + v |\n"
    << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  const auto label = [](double v) { return std::isfinite(v) ? std::string(v == 1.0 ? "yes" : "no") : std::string("—"); };
  const auto back = [](double v) { return std::isfinite(v) ? num(std::pow(10.0, v), 3) : std::string("—"); };
  for (std::size_t i = 0; i < pts.size(); ++i) {
    const auto& p = pts[i];
    o << "| " << p.model << " | " << p.run << " | " << p.width << " | " << p.protocol << " | "
      << (p.radius_beyond ? "≤ " : "") << num(p.log_ratio, 3) << " | " << num(p.exits, 3) << " | " << num(p.log_mse, 3)
      << " | " << num(p.log_valley, 3) << " | " << num(p.rtn_increase, 4) << " | " << num(p.gptq_increase, 4) << " | " << num(p.qaft_minus_gptq, 4) << " | "
      << back(e.rtn_all[i]) << " | " << back(e.gptq_all[i]) << " | " << label(e.wins_threshold[i]) << " | "
      << label(e.wins_logistic[i]) << " | " << label(e.wins_valley[i]) << " |\n";
  }
  o << "\n## Held-out accuracy (leave one model out)\n\n"
    << "- ΔNLL after RTN, all three features: " << detail::regression_score(pts, e.rtn_all, false) << "; r alone: "
    << detail::regression_score(pts, e.rtn_ratio, false) << ".\n"
    << "- ΔNLL after GPTQ, all three features: " << detail::regression_score(pts, e.gptq_all, true) << "; r alone: "
    << detail::regression_score(pts, e.gptq_ratio, true) << ".\n"
    << "- QAFT beats GPTQ (by more than " << num(PredictorPoint::win_margin, 2) << " nats; closer is a tie) — threshold on r: " << detail::accuracy(pts, e.wins_threshold)
    << "; logistic regression on all three: " << detail::accuracy(pts, e.wins_logistic)
    << "; logistic regression on r and v: " << detail::accuracy(pts, e.wins_valley)
    << "; baseline (the other models' majority): " << detail::accuracy(pts, e.wins_majority) << ".\n";
  if (!pts.empty()) o << "\n" << detail::fitted_on_every_point(pts);
  if (!skipped.empty()) {
    o << "\nNot used:\n";
    for (const auto& s : skipped) o << "- " << s << "\n";
  }
  return o.str();
}

/// Measured against leave-one-model-out predicted NLL increases (log axes), y = x drawn.
inline analysis::SvgPlot figure_predictor(const std::vector<PredictorPoint>& pts, const PredictorEvaluation& e) {
  analysis::SvgPlot p("NLL increase: predicted (other models only) vs measured", "measured test NLL increase (nats)",
                      "predicted (nats)");
  p.log_x = p.log_y = true;
  p.identity_line = true;
  for (const bool gptq : {false, true}) {
    analysis::Series s{gptq ? "GPTQ" : "RTN", {}, {}, false, true, analysis::SvgPlot::palette_color(gptq ? 1 : 0)};
    for (std::size_t i = 0; i < pts.size(); ++i) {
      const double pred = gptq ? e.gptq_all[i] : e.rtn_all[i];
      if (!std::isfinite(pred)) continue;
      s.x.push_back(std::pow(10.0, log_increase(gptq ? pts[i].gptq_increase : pts[i].rtn_increase)));
      s.y.push_back(std::pow(10.0, pred));
    }
    if (!s.x.empty()) p.add(std::move(s));
  }
  return p;
}

/// Reads the runs of `dirs`, writes predictor.md, predictor.csv and fig_predictor.svg into `out`.
inline std::vector<PredictorPoint> write_predictor(const std::vector<std::filesystem::path>& dirs,
                                                   const std::filesystem::path& out, const std::string& command) {
  std::vector<ComparedRun> runs;
  for (const auto& d : dirs) runs.push_back(read_compared_run(d, "--predict"));
  std::vector<std::string> skipped;
  const auto pts = predictor_points(runs, skipped);
  const auto e = evaluate_predictor(pts);
  std::ostringstream csv;
  csv << "model,run,width,protocol,log_ratio,radius_beyond,layers_outside,log_mse,rtn_increase,gptq_increase,"
         "qaft_minus_gptq,log_valley,pred_log_rtn,pred_log_gptq,pred_wins_threshold,pred_wins_logistic,pred_wins_valley\n";
  for (std::size_t i = 0; i < pts.size(); ++i) {
    const auto& p = pts[i];
    using detail::csv_field, detail::num;
    csv << csv_field(p.model) << "," << csv_field(p.run) << "," << p.width << "," << csv_field(p.protocol) << ","
        << num(p.log_ratio) << "," << p.radius_beyond << "," << num(p.exits) << "," << num(p.log_mse) << ","
        << num(p.rtn_increase) << "," << num(p.gptq_increase) << "," << num(p.qaft_minus_gptq) << "," << num(p.log_valley)
        << "," << num(e.rtn_all[i]) << "," << num(e.gptq_all[i]) << "," << num(e.wins_threshold[i]) << ","
        << num(e.wins_logistic[i]) << "," << num(e.wins_valley[i]) << "\n";
  }
  std::filesystem::create_directories(out);
  write_file_atomic(out / "predictor.csv", csv.str());
  write_file_atomic(out / "fig_predictor.svg", figure_predictor(pts, e).svg());
  write_file_atomic(out / "predictor.md", predictor_markdown(pts, e, skipped, command));
  return pts;
}

}  // namespace lowbit::study
