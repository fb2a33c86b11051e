// lowbit-study --compare: finished runs side by side — the paper's Figure 2 across the
// pd family's sizes, or across the schemes of one model (per-tensor int4 against
// int4:g32 and llama.cpp's q4_0, …): every quantized unit's test NLL against its
// weight bytes, a colour per run, the Pareto front over all of them, and QAFT's gap
// to GPTQ at each run and bit width drawn as in the paper. compare.md tabulates the
// same numbers with each run's protocol, so runs of different protocols are never
// mixed up silently.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/analysis/svg_plot.hpp"
#include "lowbit/core/atomic_file.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/quant/blocks/block_type.hpp"
#include "lowbit/study/options.hpp"
#include "lowbit/study/report.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/study/results_json.hpp"

namespace lowbit::study {

/// One finished run: its folder's results.json and the protocol its run.json records.
struct ComparedRun {
  std::string name;      ///< the folder, as given
  std::string protocol;  ///< "paper" or "quick", and the QAFT epochs / rates
  StudyResults results;
  std::string model_fingerprint;  ///< run.json's (the weights' hash); empty in older run.json
};

/// StudyResults::grid of a run from its run.json "quantizer" (runs before results.json
/// recorded its grid): a block format's name, "nf", else "int".
inline std::string grid_of_quantizer(const std::string& quantizer) {
  const std::string prefix = "scheme ";
  if (quantizer.rfind(prefix, 0) != 0) return "int";
  const std::string s = quantizer.substr(prefix.size());
  if (blocks::find_block_type(s)) return s;
  return s.rfind("nf", 0) == 0 ? "nf" : "int";
}

/// A short name for a run folder, for legends and tables: its own name, or for a
/// folder of scripts/study_schemes.sh ("stories260K-schemes/q4_0") the model and scheme.
inline std::string run_name(const std::filesystem::path& dir) {
  const std::filesystem::path d = dir.lexically_normal();
  const std::string last = (d.has_filename() ? d : d.parent_path()).filename().string();
  std::string parent = (d.has_filename() ? d : d.parent_path()).parent_path().filename().string();
  for (const std::string suffix : {"-schemes-quick", "-schemes"})
    if (parent.size() > suffix.size() && parent.ends_with(suffix))
      return parent.substr(0, parent.size() - suffix.size()) + " " + last + (suffix == "-schemes-quick" ? " (quick)" : "");
  return last;
}

/// Reads a finished run folder; UsageError naming the flag and folder when it is not one.
inline ComparedRun read_compared_run(const std::filesystem::path& dir, const std::string& flag = "--compare") {
  const auto results = dir / "results.json", run = dir / "run.json";
  if (!std::filesystem::exists(results) || !std::filesystem::exists(run))
    throw UsageError(flag + " " + dir.string() + ": no results.json and run.json (not a finished lowbit-study run)");
  ComparedRun c;
  c.name = run_name(dir);
  c.results = results_from_json(io::Json::parse(io::read_file(results), results.string()), results.string());
  const io::Json r = io::Json::parse(io::read_file(run), run.string());
  if (!io::Json::parse(io::read_file(results), results.string()).find("grid"))
    c.results.grid = grid_of_quantizer(detail::read_string(r, "quantizer", run.string()));
  // run.json before 2026-12-07 recorded neither --quick nor the rates: say so.
  const io::Json* quick = r.find("quick");
  std::ostringstream p;
  p << (quick && quick->is_bool() ? (quick->as_bool() ? "quick" : "paper") : "older run") << ", QAFT "
    << detail::read_number(r, "qaft_epochs", run.string()) << " epoch(s)";
  if (const io::Json* rates = r.find("lr_grid"); rates && rates->is_array()) p << " at " << rates->size() << " rate(s)";
  c.protocol = p.str();
  if (const io::Json* f = r.find("model_fingerprint"); f && f->is_string()) c.model_fingerprint = f->as_string();
  return c;
}

namespace detail {
/// The points no other point beats on both bytes and NLL, by increasing bytes.
inline std::vector<std::pair<double, double>> pareto_front(std::vector<std::pair<double, double>> points) {
  std::sort(points.begin(), points.end());
  std::vector<std::pair<double, double>> front;
  for (const auto& p : points)
    if (std::isfinite(p.first) && std::isfinite(p.second) && (front.empty() || p.second < front.back().second))
      front.push_back(p);
  return front;
}
}  // namespace detail

/// Figure 2 across runs: test NLL against weight bytes, one colour per run (QAFT solid,
/// GPTQ dashed, RTN markers only, fp32 a black marker), the Pareto front over every
/// quantized unit in grey, and each run's QAFT–GPTQ gap as a vertical line per bit width.
inline analysis::SvgPlot figure_compare(const std::vector<ComparedRun>& runs) {
  analysis::SvgPlot p("Test NLL vs weight size: QAFT solid, GPTQ dashed, RTN points", "weight bytes",
                      "test NLL (nats/token)");
  p.log_x = true;
  std::vector<std::pair<double, double>> all;
  bool gap_listed = false, fp_listed = false;
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const StudyResults& r = runs[k].results;
    const std::string color = analysis::SvgPlot::palette_color(k);
    bool listed = false;  // the run in the legend once, by its first method
    for (const std::string m : {"qaft", "gptq", "rtn"}) {
      analysis::Series s{runs[k].name, {}, {}, m != "rtn", true, color, m == "gptq", false};
      for (const int b : detail::bit_widths(r))
        if (const auto* u = r.find(m, b)) {
          s.x.push_back(u->weight_bytes);
          s.y.push_back(u->test_nll);
          all.emplace_back(u->weight_bytes, u->test_nll);
        }
      if (s.x.empty()) continue;
      s.in_legend = !listed;
      listed = true;
      p.add(s);
    }
    for (const int b : detail::bit_widths(r)) {
      const auto *g = r.find("gptq", b), *q = r.find("qaft", b);
      if (!g || !q) continue;
      p.add({"QAFT - GPTQ gap", {g->weight_bytes, q->weight_bytes}, {g->test_nll, q->test_nll}, true, false, "#7f7f7f",
             true, !gap_listed});
      gap_listed = true;
    }
    if (std::isfinite(r.fp_test_nll)) {
      p.add({"fp32", {r.fp_weight_bytes}, {r.fp_test_nll}, false, true, "#000000", false, !fp_listed});
      fp_listed = true;
    }
  }
  analysis::Series front{"Pareto front", {}, {}, true, false, "#b0b0b0", false};
  for (const auto& [x, y] : detail::pareto_front(all)) front.x.push_back(x), front.y.push_back(y);
  front.markers = front.x.size() == 1;  // a front of one unit is that unit
  if (!front.x.empty()) p.add(front);
  return p;
}

/// compare.md: every run's protocol and units, QAFT's gap to GPTQ, the Pareto front.
inline std::string compare_markdown(const std::vector<ComparedRun>& runs, const std::string& command) {
  using detail::num;
  std::ostringstream o;
  o << "# lowbit-study runs compared\n\nCommand: `" << command << "`\n\n"
    << "![NLL vs size](fig2_compare.svg)\n\n"
    << "| run | protocol | bits | RTN | GPTQ | QAFT | QAFT − GPTQ | weight bytes | fp32 |\n"
    << "|---|---|---|---|---|---|---|---|---|\n";
  std::vector<std::pair<double, double>> all;
  std::vector<std::string> names;
  for (const auto& run : runs) {
    const StudyResults& r = run.results;
    for (const int b : detail::bit_widths(r)) {
      const auto *rt = r.find("rtn", b), *g = r.find("gptq", b), *q = r.find("qaft", b);
      const auto nll = [](const UnitResult* u) { return u ? num(u->test_nll, 5) : std::string("—"); };
      const UnitResult* any = q ? q : g ? g : rt;
      o << "| " << run.name << " | " << run.protocol << " | " << r.label(b) << " | " << nll(rt) << " | " << nll(g) << " | "
        << nll(q) << " | " << (g && q ? num(q->test_nll - g->test_nll, 3) : std::string("—")) << " | "
        << num(any->weight_bytes, 4) << " | " << num(r.fp_test_nll, 5) << " |\n";
      for (const UnitResult* u : {rt, g, q})
        if (u) all.emplace_back(u->weight_bytes, u->test_nll), names.push_back(run.name + " " + u->method + " " + r.label(b));
    }
  }
  o << "\nPareto front over every quantized unit (fewest bytes first):";
  for (const auto& [x, y] : detail::pareto_front(all))
    for (std::size_t i = 0; i < all.size(); ++i)
      if (all[i].first == x && all[i].second == y) {
        o << "\n- " << names[i] << ": " << num(y, 5) << " nats at " << num(x, 4) << " bytes";
        break;
      }
  o << "\n";
  return o.str();
}

/// The study's findings for every run and width in one table — the questions issue #15
/// asks of each model and scheme: where ‖w_RTN − w‖ sits against R(w), which method
/// wins, whether GPTQ lowers every layer's output MSE below RTN's while QAFT does not,
/// and whether GPTQ moves the weights further than RTN.
inline std::string findings_markdown(const std::vector<ComparedRun>& runs) {
  using detail::num;
  std::ostringstream o;
  o << "## The study's findings, run by run\n\n"
    << "QAFT − GPTQ on the test split (closer than " << num(method_tie_margin, 2) << " nats: a tie); layers: of the "
       "layers, how many have an output MSE at or below RTN's.\n\n"
    << "| run | width | ‖w_RTN − w‖ / R(w) | QAFT − GPTQ | ahead | GPTQ's layers ≤ RTN | QAFT's layers ≤ RTN | "
       "‖w_GPTQ − w‖ / ‖w_RTN − w‖ |\n|---|---|---|---|---|---|---|---|\n";
  const auto count = [](const UnitResult* rt, const UnitResult* u) {
    if (!rt || !u) return std::string("—");
    const LayersBelow n = layers_below_rtn(*rt, *u);
    return std::to_string(n.below) + "/" + std::to_string(n.total);
  };
  for (const auto& run : runs) {
    const StudyResults& r = run.results;
    for (const int b : detail::bit_widths(r)) {
      const auto *rt = r.find("rtn", b), *g = r.find("gptq", b), *q = r.find("qaft", b);
      const double gap = g && q ? q->test_nll - g->test_nll : nan_value;
      o << "| " << run.name << " | " << r.label(b) << " | "
        << (rt && std::isfinite(r.basin_radius) ? num(rt->weight_distance / r.basin_radius, 3) : std::string("—")) << " | "
        << (std::isfinite(gap) ? num(gap, 3) + " | " + method_winner(gap) : std::string("— | —")) << " | " << count(rt, g) << " | "
        << count(rt, q) << " | " << (rt && g ? num(g->weight_distance / rt->weight_distance, 3) : std::string("—"))
        << " |\n";
    }
  }
  return o.str();
}

/// Reads every run of `dirs`, writes fig2_compare.svg and compare.md into `out`.
inline std::vector<ComparedRun> write_compare(const std::vector<std::filesystem::path>& dirs,
                                              const std::filesystem::path& out, const std::string& command) {
  std::vector<ComparedRun> runs;
  for (const auto& d : dirs) runs.push_back(read_compared_run(d));
  std::filesystem::create_directories(out);
  write_file_atomic(out / "fig2_compare.svg", figure_compare(runs).svg());
  write_file_atomic(out / "compare.md", compare_markdown(runs, command) + "\n" + findings_markdown(runs));
  return runs;
}

}  // namespace lowbit::study
