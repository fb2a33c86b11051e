// The study's outputs: tidy CSV files, SVG figures and report.md with findings.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/core/atomic_file.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/analysis/svg_plot.hpp"

namespace lowbit::study {

namespace detail {

inline std::string num(double v, int digits = 6) {
  if (!std::isfinite(v)) return std::isnan(v) ? "" : (v > 0 ? "inf" : "-inf");
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string r = "\"";
  for (char c : s) r += c == '"' ? std::string("\"\"") : std::string(1, c);
  return r + "\"";
}

inline std::vector<int> bit_widths(const StudyResults& r) {
  std::set<int> b;
  for (const auto& u : r.units) b.insert(u.bits);
  return {b.rbegin(), b.rend()};  // int8 first
}

}  // namespace detail

/// units.csv: one row per (method, bits), plus the full-precision model.
inline std::string units_csv(const StudyResults& r) {
  using detail::num;
  std::ostringstream o;
  o << "method,bits,test_nll,test_ppl,val_nll,ood_nll,weight_distance,weight_bytes,learning_rate\n";
  o << "fp32,32," << num(r.fp_test_nll) << "," << num(std::exp(r.fp_test_nll)) << "," << num(r.fp_val_nll) << ","
    << num(r.fp_ood_nll) << ",0," << num(r.fp_weight_bytes) << ",\n";
  for (const auto& u : r.units)
    o << u.method << "," << u.bits << "," << num(u.test_nll) << "," << num(u.test_ppl()) << "," << num(u.val_nll)
      << "," << num(u.ood_nll) << "," << num(u.weight_distance) << "," << num(u.weight_bytes) << ","
      << num(u.learning_rate) << "\n";
  return o.str();
}

/// layers.csv: per-layer output MSE, weight error and chosen damping.
inline std::string layers_csv(const StudyResults& r) {
  using detail::num;
  std::ostringstream o;
  o << "method,bits,layer,output_mse,weight_sq_error,damp\n";
  for (const auto& u : r.units)
    for (const auto& l : u.layers)
      o << u.method << "," << u.bits << "," << detail::csv_field(l.name) << "," << num(l.output_mse) << ","
        << num(l.weight_sq_error) << "," << num(l.damp) << "\n";
  return o.str();
}

/// profiles.csv: every landscape profile point.
inline std::string profiles_csv(const StudyResults& r) {
  using detail::num;
  std::ostringstream o;
  o << "profile,t,nll\n";
  for (const auto* ps : {&r.profiles, &r.layer_profiles})
    for (const auto& p : *ps)
      for (std::size_t i = 0; i < p.t.size() && i < p.nll.size(); ++i)
        o << detail::csv_field(p.label) << "," << num(p.t[i]) << "," << num(p.nll[i]) << "\n";
  return o.str();
}

/// qaft.csv: QAFT's learning-rate curve and per-epoch test NLL.
inline std::string qaft_csv(const StudyResults& r) {
  using detail::num;
  std::ostringstream o;
  o << "bits,kind,x,nll\n";
  for (const auto& u : r.units) {
    if (u.method != "qaft") continue;
    for (const auto& [lr, nll] : u.lr_curve) o << u.bits << ",val_nll_vs_lr," << num(lr) << "," << num(nll) << "\n";
    for (std::size_t e = 0; e < u.epoch_test_nll.size(); ++e)
      o << u.bits << ",test_nll_vs_epoch," << e + 1 << "," << num(u.epoch_test_nll[e]) << "\n";
  }
  return o.str();
}

/// Figure 1 (left): global test NLL, QAFT against GPTQ, one point per bit width.
inline analysis::SvgPlot figure_nll_qaft_vs_gptq(const StudyResults& r) {
  analysis::SvgPlot p("Test NLL: QAFT vs GPTQ (" + r.model + ")", "GPTQ test NLL (nats/token)", "QAFT test NLL (nats/token)");
  p.identity_line = true;
  for (const int b : detail::bit_widths(r)) {
    const auto *g = r.find("gptq", b), *q = r.find("qaft", b);
    if (g && q) p.add({r.label(b), {g->test_nll}, {q->test_nll}, false, true, "", false});
  }
  return p;
}

/// Figure 1 (right): per-layer output MSE, QAFT against GPTQ, log-log.
inline analysis::SvgPlot figure_layer_mse(const StudyResults& r) {
  analysis::SvgPlot p("Per-layer output MSE: QAFT vs GPTQ", "GPTQ layer MSE", "QAFT layer MSE");
  p.log_x = p.log_y = true;
  p.identity_line = true;
  for (const int b : detail::bit_widths(r)) {
    const auto *g = r.find("gptq", b), *q = r.find("qaft", b);
    if (!g || !q) continue;
    analysis::Series s{r.label(b), {}, {}, false, true, "", false};
    for (const auto& lg : g->layers)
      for (const auto& lq : q->layers)
        if (lg.name == lq.name) {
          s.x.push_back(lg.output_mse);
          s.y.push_back(lq.output_mse);
        }
    p.add(s);
  }
  return p;
}

namespace detail {
/// One line per method through its bit widths: (u.*x, test NLL) — Figures 2 and 4.
inline void add_method_lines(analysis::SvgPlot& p, const StudyResults& r, double UnitResult::*x) {
  for (const std::string m : {"rtn", "gptq", "qaft"}) {
    analysis::Series s{m, {}, {}, true, true, "", false};
    for (const int b : bit_widths(r))
      if (const auto* u = r.find(m, b)) s.x.push_back(u->*x), s.y.push_back(u->test_nll);
    if (!s.x.empty()) p.add(std::move(s));
  }
}
}  // namespace detail

/// Figure 2: test NLL against weight size in bytes, one line per method.
inline analysis::SvgPlot figure_nll_vs_size(const StudyResults& r) {
  analysis::SvgPlot p("Test NLL vs weight size (" + r.model + ")", "weight bytes", "test NLL (nats/token)");
  p.log_x = true;
  detail::add_method_lines(p, r, &UnitResult::weight_bytes);
  if (std::isfinite(r.fp_test_nll))
    p.add({"fp32", {r.fp_weight_bytes}, {r.fp_test_nll}, false, true, "#000000", false});
  return p;
}

/// Figure 4 (left): test NLL against how far each method moved the weights,
/// ‖w_q − w‖₂, one line per method through its bit widths, fp32 at the origin and
/// R(w) marked — where the perturbation leaves the basin, and whether QAFT reaches a
/// lower NLL further from w than GPTQ (the study's reading of its landscape).
inline analysis::SvgPlot figure_nll_vs_distance(const StudyResults& r) {
  analysis::SvgPlot p("Test NLL vs distance from w (" + r.model + ")", "‖w_q − w‖₂ over the quantized weights",
                      "test NLL (nats/token)");
  detail::add_method_lines(p, r, &UnitResult::weight_distance);
  if (p.empty()) return p;
  if (std::isfinite(r.fp_test_nll)) p.add({"fp32", {0.0}, {r.fp_test_nll}, false, true, "#000000", false});
  if (std::isfinite(r.basin_radius)) p.markers.push_back({r.basin_radius, "R(w) = " + detail::num(r.basin_radius, 3)});
  return p;
}

/// Figure 5: every method's NLL against bit width on each evaluation set the run
/// measured — the study's test split and, where measured, the out-of-domain text —
/// one panel per set, fp32 dashed: whether the methods keep their order off the
/// distribution the calibration and the choices saw.
inline std::vector<analysis::SvgPlot> figure_nll_by_dataset(const StudyResults& r) {
  struct Set { std::string id, title; double UnitResult::*nll; double fp; };
  const std::string ood = r.ood_data.substr(0, std::min(r.ood_data.find(" ("), r.ood_data.find(',')));
  const std::vector<Set> sets = {{"test", "Test split", &UnitResult::test_nll, r.fp_test_nll},
                                 {"ood", ood.empty() ? "Out-of-domain text" : "Out of domain, " + ood, &UnitResult::ood_nll,
                                  r.fp_ood_nll}};
  std::vector<analysis::SvgPlot> panels;
  for (const auto& set : sets) {
    analysis::SvgPlot p(set.title + ": NLL by bit width (" + r.model + ")", "bit width", "NLL (nats/token)");
    p.id = "dataset_" + set.id;
    double lo = INFINITY, hi = -INFINITY;
    for (const std::string m : {"rtn", "gptq", "qaft"}) {
      analysis::Series s{m, {}, {}, true, true, "", false};
      for (const int b : detail::bit_widths(r))
        if (const auto* u = r.find(m, b); u && std::isfinite(u->*set.nll))
          s.x.push_back(b), s.y.push_back(u->*set.nll), lo = std::min(lo, double(b)), hi = std::max(hi, double(b));
      if (!s.x.empty()) p.add(std::move(s));
    }
    if (p.empty()) continue;
    if (lo == hi) lo -= 0.5, hi += 0.5;  // one bit width: a short line around it, as the axis pads
    if (std::isfinite(set.fp)) p.add({"fp32", {lo, hi}, {set.fp, set.fp}, true, false, "#000000", true});
    panels.push_back(std::move(p));
  }
  return panels;
}

namespace detail {
/// Whether some QAFT unit has what Appendix B / Appendix A draw: the figures and the
/// report's links to them ask the same question here.
inline bool has_qaft_epochs(const StudyResults& r) {
  return std::any_of(r.units.begin(), r.units.end(),
                     [](const UnitResult& u) { return u.method == "qaft" && !u.epoch_test_nll.empty(); });
}
inline bool has_qaft_rates(const StudyResults& r) {
  return std::any_of(r.units.begin(), r.units.end(),
                     [](const UnitResult& u) { return u.method == "qaft" && !u.lr_curve.empty(); });
}
}  // namespace detail

/// Appendix B: QAFT's test NLL after each epoch (the chosen rate), one panel per bit
/// width — its own NLL scale — with GPTQ's test NLL as a dashed line: where the curve
/// first drops below it, fine-tuning has beaten the layer-wise solver.
inline std::vector<analysis::SvgPlot> figure_qaft_epochs(const StudyResults& r) {
  std::vector<analysis::SvgPlot> panels;
  for (const int b : detail::bit_widths(r)) {
    const auto *q = r.find("qaft", b), *g = r.find("gptq", b);
    if (!q || q->epoch_test_nll.empty()) continue;
    analysis::SvgPlot p("QAFT " + r.label(b) + ": test NLL after each epoch", "epoch", "test NLL (nats/token)");
    p.id = "epochs_" + r.label(b);
    p.width = 420;
    p.height = 300;
    const auto n = static_cast<double>(q->epoch_test_nll.size());
    analysis::Series s{"QAFT", {}, q->epoch_test_nll, true, true, analysis::SvgPlot::palette_color(2), false};
    for (std::size_t e = 0; e < q->epoch_test_nll.size(); ++e) s.x.push_back(static_cast<double>(e + 1));
    p.add(std::move(s));
    if (g) p.add({"GPTQ", {1.0, std::max(n, 2.0)}, {g->test_nll, g->test_nll}, true, false, analysis::SvgPlot::palette_color(1), true});
    panels.push_back(std::move(p));
  }
  return panels;
}

/// Appendix A: QAFT's final validation NLL at each learning rate of the grid, one line
/// per bit width (log axes: the widths' NLLs differ by orders); the lowest point of
/// each line is the rate chosen.
inline analysis::SvgPlot figure_qaft_rates(const StudyResults& r) {
  analysis::SvgPlot p("QAFT: validation NLL by learning rate (lowest = chosen)", "learning rate",
                      "validation NLL (nats/token)");
  p.log_x = p.log_y = true;
  for (const int b : detail::bit_widths(r)) {
    const auto* q = r.find("qaft", b);
    if (!q || q->lr_curve.empty()) continue;
    analysis::Series s{r.label(b), {}, {}, true, true, "", false};
    for (const auto& [lr, nll] : q->lr_curve) s.x.push_back(lr), s.y.push_back(nll);
    p.add(std::move(s));
  }
  return p;
}

namespace detail {
/// The bit width a segment profile belongs to: the text in its label's last
/// parentheses ("w -> w_gptq (int4)" → "int4"); empty for a random direction.
inline std::string profile_panel(const std::string& label) {
  const auto open = label.rfind('('), close = label.rfind(')');
  return open != std::string::npos && close != std::string::npos && close > open
             ? label.substr(open + 1, close - open - 1)
             : std::string();
}
}  // namespace detail

/// Figure 3: the global NLL along directions from w, one panel per bit width: the
/// random directions in grey (the same in every panel), the straight segments to
/// w_RTN, w_GPTQ and w_QAFT in three fixed colours (w_GPTQ → w_QAFT dashed), and the
/// mean basin radius R(w) marked.
inline std::vector<analysis::SvgPlot> figure_landscape(const StudyResults& r) {
  std::vector<std::string> panels;
  for (const auto& pr : r.profiles)
    if (const std::string k = detail::profile_panel(pr.label);
        !k.empty() && std::find(panels.begin(), panels.end(), k) == panels.end())
      panels.push_back(k);
  if (panels.empty()) panels.push_back("");  // random directions only
  const auto method_color = [](const std::string& label) -> std::pair<std::string, bool> {
    if (label.starts_with(solutions_segment)) return {"#9467bd", true};
    if (label.find("w_rtn") != std::string::npos) return {"#1f77b4", false};
    if (label.find("w_gptq") != std::string::npos) return {"#d62728", false};
    if (label.find("w_qaft") != std::string::npos) return {"#2ca02c", false};
    return {"", false};
  };
  std::vector<analysis::SvgPlot> out;
  for (std::size_t k = 0; k < panels.size(); ++k) {
    analysis::SvgPlot p("Global NLL along directions from w" + (panels[k].empty() ? "" : " (" + panels[k] + ")"),
                        "distance from w (L2 over quantized weights)", "NLL (nats/token)");
    p.id = "landscape" + std::to_string(k);
    bool random_listed = false;
    for (const auto& pr : r.profiles) {
      const std::string panel = detail::profile_panel(pr.label);
      if (panel.empty()) {
        p.add({random_listed ? pr.label : "random directions", pr.t, pr.nll, true, false, "#b0b0b0", false,
               !random_listed});
        random_listed = true;
      } else if (panel == panels[k]) {  // the panel's title names the bit width
        const auto [color, dashed] = method_color(pr.label);
        p.add({pr.label.substr(0, pr.label.rfind(" (")), pr.t, pr.nll, true, false, color, dashed});
      }
    }
    if (std::isfinite(r.basin_radius)) p.markers.push_back({r.basin_radius, "R(w) = " + detail::num(r.basin_radius, 3)});
    out.push_back(std::move(p));
  }
  return out;
}

namespace detail {
inline std::string verdict(bool held) { return held ? "**held**" : "**did not hold**"; }
}  // namespace detail

/// report.md: the numbers and, for each of the study's findings, whether it held here.
inline std::string report_markdown(const StudyResults& r, const std::string& command) {
  using detail::num;
  std::ostringstream o;
  o << "# lowbit study: " << r.model << "\n\n"
    << "Command: `" << command << "`\n\n"
    << "Data: " << r.data << ". Parameters: " << r.parameters << " (" << r.quantized_parameters
    << " in the quantized linear layers of the transformer stack; embeddings and head stay fp32).\n\n"
    << (r.ood_data.empty() ? "" : "Out-of-domain NLL (OOD): " + r.ood_data + ".\n\n")
    << "## Results\n\n| method | bits | test NLL | test PPL | val NLL | OOD NLL | ‖w_q − w‖₂ | weight bytes |\n"
    << "|---|---|---|---|---|---|---|---|\n"
    << "| fp32 | 32 | " << num(r.fp_test_nll, 5) << " | " << num(std::exp(r.fp_test_nll), 5) << " | "
    << num(r.fp_val_nll, 5) << " | " << num(r.fp_ood_nll, 5) << " | 0 | " << num(r.fp_weight_bytes, 4) << " |\n";
  for (const int b : detail::bit_widths(r))
    for (const std::string m : {"rtn", "gptq", "qaft"})
      if (const auto* u = r.find(m, b))
        o << "| " << m << " | " << b << " | " << num(u->test_nll, 5) << " | " << num(u->test_ppl(), 5) << " | "
          << num(u->val_nll, 5) << " | " << num(u->ood_nll, 5) << " | " << num(u->weight_distance, 4) << " | "
          << num(u->weight_bytes, 4) << " |\n";
  o << "\n![NLL QAFT vs GPTQ](fig1_nll_qaft_vs_gptq.svg) ![layer MSE](fig1_layer_mse.svg)\n\n"
    << "![NLL vs size](fig2_nll_vs_size.svg)";
  if (!r.profiles.empty()) o << " ![landscape](fig3_landscape.svg)";
  if (!r.units.empty())
    o << "\n\n![NLL vs distance from w](fig4_nll_vs_distance.svg) ![NLL by bit width per evaluation set](fig5_nll_by_dataset.svg)";
  if (detail::has_qaft_epochs(r)) o << "\n\n![QAFT test NLL per epoch (Appendix B)](figB_qaft_epochs.svg)";
  if (detail::has_qaft_rates(r)) o << " ![QAFT learning rates (Appendix A)](figA_qaft_rates.svg)";
  o << "\n\n## The study's findings, checked on this model\n\n";
  // 1. QAFT beats GPTQ at low precision
  for (const int b : {4, 3, 2}) {
    const auto *g = r.find("gptq", b), *q = r.find("qaft", b);
    if (!g || !q) continue;
    const double gap = q->test_nll - g->test_nll;
    o << "- " << r.label(b) << ": QAFT beats GPTQ on test NLL — "
      << (std::fabs(gap) <= method_tie_margin ? "**a tie** (within " + num(method_tie_margin, 2) + " nats)"
                                              : detail::verdict(gap < 0))
      << " (" << num(q->test_nll, 5) << " vs " << num(g->test_nll, 5) << ").\n";
  }
  // 2. GPTQ lowers every layer's MSE relative to RTN; QAFT does not
  for (const int b : detail::bit_widths(r)) {
    const auto *rt = r.find("rtn", b), *g = r.find("gptq", b), *q = r.find("qaft", b);
    if (!rt || !g) continue;
    const LayersBelow n = layers_below_rtn(*rt, *g);
    o << "- " << r.label(b) << ": GPTQ lowers the output MSE of every layer below RTN's — "
      << detail::verdict(n.total > 0 && n.below == n.total) << " (" << n.below << "/" << n.total << " layers)";
    if (q) o << "; QAFT does so for " << layers_below_rtn(*rt, *q).below << "/" << layers_below_rtn(*rt, *q).total;
    o << ".\n";
  }
  // 3. GPTQ moves the weights further than RTN
  for (const int b : detail::bit_widths(r)) {
    const auto *rt = r.find("rtn", b), *g = r.find("gptq", b);
    if (rt && g)
      o << "- " << r.label(b) << ": ‖w_GPTQ − w‖ > ‖w_RTN − w‖ — " << detail::verdict(g->weight_distance > rt->weight_distance)
        << " (" << num(g->weight_distance, 4) << " vs " << num(rt->weight_distance, 4) << ").\n";
  }
  // 4. basin radius against the RTN perturbation
  if (std::isfinite(r.basin_radius) || !r.profiles.empty()) {
    o << "- Basin radius R(w) (radial profiles leave their quadratic fit): "
      << (std::isfinite(r.basin_radius) ? num(r.basin_radius, 4) : std::string("beyond the largest radius probed"))
      << ". ‖w_RTN − w‖ per bit width:";
    for (const int b : detail::bit_widths(r))
      if (const auto* rt = r.find("rtn", b))
        o << " " << r.label(b) << " " << num(rt->weight_distance, 4)
          << (std::isfinite(r.basin_radius) ? (rt->weight_distance > r.basin_radius ? " (outside)" : " (inside)") : "");
    o << ". The study predicts that local (layer-wise) and global objectives disagree once ‖Δw‖ leaves the basin.";
    if (const double probe = largest_probe_radius(r); std::isfinite(probe))
      o << " Radii probed up to " << num(probe, 4)
        << " (1.5 × ‖Δw‖ of round-to-nearest in the study's default scheme at 2 bits: the same for every run of this "
           "model, whatever its scheme).";
    o << "\n";
  }
  // 4b. the same, layer by layer (beyond the study)
  if (!r.layer_profiles.empty()) {
    o << "- Per layer (one random direction inside each layer, the others fixed): ";
    for (const int b : detail::bit_widths(r)) {
      const auto* rt = r.find("rtn", b);
      if (!rt) continue;
      const LayersOutside n = layers_outside_basin(r, *rt);
      o << r.label(b) << ": " << n.outside << "/" << n.total << " layers have ‖ΔW_RTN‖ outside their basin; ";
    }
    o << "per-layer radii in `layer_basins.csv`.\n";
  }
  // 5. Appendix B: one epoch of QAFT already beats GPTQ
  for (const int b : {4, 3, 2}) {
    const auto *g = r.find("gptq", b), *q = r.find("qaft", b);
    if (g && q && !q->epoch_test_nll.empty())
      o << "- " << r.label(b) << ": one epoch of QAFT already beats GPTQ — "
        << detail::verdict(q->epoch_test_nll.front() < g->test_nll) << " (" << num(q->epoch_test_nll.front(), 5)
        << " vs " << num(g->test_nll, 5) << ").\n";
  }
  if (!r.notes.empty()) o << "\nNotes:\n";
  for (const auto& n : r.notes) o << "- " << n << "\n";
  o << "\nTidy data: `units.csv`, `layers.csv`, `qaft.csv`, `profiles.csv`; everything in `results.json`.\n";
  return o.str();
}

/// layer_basins.csv: each layer's basin radius next to its RTN perturbation per bit width.
inline std::string layer_basins_csv(const StudyResults& r) {
  using detail::num;
  std::ostringstream o;
  o << "layer,basin_radius,bits,rtn_distance\n";
  for (const auto& p : r.layer_profiles)
    for (const int b : detail::bit_widths(r))
      if (const auto* rt = r.find("rtn", b))
        for (const auto& l : rt->layers)
          if (p.label == "layer " + l.name)
            o << detail::csv_field(l.name) << "," << num(p.basin_radius) << "," << b << ","
              << num(std::sqrt(l.weight_sq_error)) << "\n";
  return o.str();
}

/// Writes the CSV files, the figures and report.md into `dir` (which must exist).
inline void write_report(const StudyResults& r, const std::filesystem::path& dir, const std::string& command) {
  write_file_atomic(dir / "units.csv", units_csv(r));
  write_file_atomic(dir / "layers.csv", layers_csv(r));
  write_file_atomic(dir / "qaft.csv", qaft_csv(r));
  write_file_atomic(dir / "profiles.csv", profiles_csv(r));
  if (!r.layer_profiles.empty()) write_file_atomic(dir / "layer_basins.csv", layer_basins_csv(r));
  figure_nll_qaft_vs_gptq(r).write(dir / "fig1_nll_qaft_vs_gptq.svg");
  figure_layer_mse(r).write(dir / "fig1_layer_mse.svg");
  figure_nll_vs_size(r).write(dir / "fig2_nll_vs_size.svg");
  if (!r.profiles.empty()) write_file_atomic(dir / "fig3_landscape.svg", analysis::SvgPlot::panels(figure_landscape(r), 2));
  if (!r.units.empty()) {
    figure_nll_vs_distance(r).write(dir / "fig4_nll_vs_distance.svg");
    write_file_atomic(dir / "fig5_nll_by_dataset.svg", analysis::SvgPlot::panels(figure_nll_by_dataset(r), 2));
  }
  if (detail::has_qaft_epochs(r)) write_file_atomic(dir / "figB_qaft_epochs.svg", analysis::SvgPlot::panels(figure_qaft_epochs(r), 2));
  if (detail::has_qaft_rates(r)) figure_qaft_rates(r).write(dir / "figA_qaft_rates.svg");
  write_file_atomic(dir / "report.md", report_markdown(r, command));
}

}  // namespace lowbit::study
