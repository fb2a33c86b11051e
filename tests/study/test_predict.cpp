// lowbit-study --predict on runs whose answer is built in: three models whose NLL
// increases follow ‖Δw_RTN‖ / R(w) exactly and where QAFT wins exactly when the
// perturbation leaves the basin. Leaving one model out must then predict the others.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "../support/render_svg.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/study/predict.hpp"

namespace fs = std::filesystem;
using namespace lowbit::study;

namespace {

UnitResult unit(const std::string& method, int bits, double nll, double distance, double layer_scale) {
  UnitResult u;
  u.method = method;
  u.bits = bits;
  u.test_nll = nll;
  u.weight_distance = distance;
  for (int k = 0; k < 4; ++k) {
    LayerResult l;
    l.name = "layer" + std::to_string(k);
    l.weight_sq_error = std::pow(layer_scale * (k + 1), 2);
    l.output_mse = 1e-4 * distance * distance;
    u.layers.push_back(l);
  }
  return u;
}

/// A model whose basin radius is `radius`; at each width RTN moves the weights by
/// `d`, RTN's and GPTQ's NLL increases are 0.1·(d/R)² and 0.05·(d/R)², and QAFT
/// beats GPTQ by 0.1 exactly when d > R — unless `valleys` marks the width: there
/// GPTQ's segment rises a twentieth of the random direction's rise and QAFT loses.
StudyResults model_run(const std::string& model, double radius, const std::vector<double>& distances, bool landscape = true,
                       const std::vector<bool>& valleys = {}) {
  StudyResults r;
  r.model = model + " (2 layers, d=16)";
  r.fp_test_nll = 2.0;
  r.basin_radius = landscape ? radius : lowbit::study::nan_value;
  const Profile random{"random 0", {0, radius, 3 * radius}, {2, 2.1, 3}, radius};
  int bits = 8;
  for (std::size_t k = 0; k < distances.size(); ++k) {
    const double d = distances[k], x = d / radius;
    const bool valley = k < valleys.size() && valleys[k];
    const double rtn = 2.0 + 0.1 * x * x, gptq = 2.0 + 0.05 * x * x;
    r.units.push_back(unit("rtn", bits, rtn, d, d / 4));
    r.units.push_back(unit("gptq", bits, gptq, 1.2 * d, d / 4));
    r.units.push_back(unit("qaft", bits, gptq + (x > 1 && !valley ? -0.1 : 0.1), 1.3 * d, d / 4));
    const double rise = random.rise_at(1.2 * d);
    if (landscape) r.profiles.push_back({segment_label("gptq", r.label(bits)), {0, 1.2 * d}, {2, 2 + (valley ? rise / 20 : rise)}});
    bits -= 2;
  }
  if (landscape) {
    r.profiles.push_back(random);
    for (int k = 0; k < 4; ++k)  // layer k's basin: R/2; RTN's layer error (d/4)(k+1)
      r.layer_profiles.push_back({"layer layer" + std::to_string(k), {0, radius}, {2, 2.1}, radius / 2});
  }
  return r;
}

ComparedRun compared(const std::string& name, StudyResults r) {
  ComparedRun c;
  c.name = name;
  c.protocol = "paper, QAFT 8 epoch(s) at 4 rate(s)";
  c.results = std::move(r);
  return c;
}

}  // namespace

TEST_CASE("predictor: points from runs, what cannot be used named") {
  std::vector<std::string> skipped;
  const auto pts = predictor_points({compared("a-paper", model_run("a", 10, {2, 8, 30})),
                                     compared("no-landscape", model_run("b", 10, {2}, false))},
                                    skipped);
  REQUIRE(pts.size() == 3);
  CHECK(pts[0].model == "a");
  CHECK(pts[0].width == "int8");
  CHECK(pts[2].log_ratio == doctest::Approx(std::log10(3.0)));
  CHECK(pts[2].rtn_increase == doctest::Approx(0.9));
  CHECK(pts[2].qaft_wins());
  CHECK_FALSE(pts[1].qaft_wins());
  CHECK(pts[0].exits == 0.0);  // layer errors d/4·(k+1) = 0.5..2, all inside R/2 = 5
  CHECK(pts[1].exits == 0.5);  // 2, 4, 6, 8: two of four outside
  CHECK(pts[2].exits == 1.0);
  CHECK(pts[0].log_valley == doctest::Approx(0.0));  // the segment rises as the random direction does
  PredictorPoint tie;  // closer than the margin: a tie, not a win
  tie.qaft_minus_gptq = -0.5 * PredictorPoint::win_margin;
  CHECK_FALSE(tie.qaft_wins());
  tie.qaft_minus_gptq = -1.5 * PredictorPoint::win_margin;
  CHECK(tie.qaft_wins());
  REQUIRE(skipped.size() == 1);
  CHECK(skipped[0].find("no-landscape int8") != std::string::npos);
  CHECK(skipped[0].find("--landscape") != std::string::npos);
}

TEST_CASE("predictor: leaving one model out predicts a law the others share") {
  std::vector<std::string> skipped;
  const auto pts = predictor_points({compared("a", model_run("a", 10, {2, 8, 15, 30})),
                                     compared("b", model_run("b", 40, {10, 30, 60, 200})),
                                     compared("c", model_run("c", 5, {1, 3, 6, 20}))},
                                    skipped);
  REQUIRE(pts.size() == 12);
  const auto e = evaluate_predictor(pts);
  for (std::size_t i = 0; i < pts.size(); ++i) {
    INFO(pts[i].run << " " << pts[i].width);
    // log10 ΔNLL = log10 0.1 + 2 r: linear in r, so r alone predicts it across models.
    // (The ridge penalty shrinks the slope by ~1 %: a few hundredths of a decade.)
    CHECK(std::fabs(e.rtn_ratio[i] - log_increase(pts[i].rtn_increase)) < 0.05);
    CHECK(std::fabs(e.gptq_ratio[i] - log_increase(pts[i].gptq_increase)) < 0.05);
    CHECK(e.wins_threshold[i] == (pts[i].qaft_wins() ? 1.0 : 0.0));
  }
  const fs::path out = fs::temp_directory_path() / ("lowbit_predict_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string md = predictor_markdown(pts, e, skipped, "lowbit-study --predict a,b,c");
  CHECK(md.find("— threshold on r: 12/12 (100 %)") != std::string::npos);
  CHECK(md.find("Fitted on every point: QAFT beats GPTQ when r > ") != std::string::npos);
  fs::create_directories(out);
  lowbit::io::write_file_atomic(out / "fig_predictor.svg", figure_predictor(pts, e).svg());
  if (lowbit::test::have_rsvg_convert()) lowbit::test::check_renders(out / "fig_predictor.svg");
  fs::remove_all(out);
}

TEST_CASE("predictor: runs of the same weights are one model, whatever their names") {
  ComparedRun a = compared("a", model_run("a", 10, {2, 8, 30})), copy = compared("a-copy", model_run("a.gguf", 10, {2, 30}));
  a.model_fingerprint = copy.model_fingerprint = "0123abcd";
  ComparedRun qwen = compared("q", model_run("Qwen2.5-0.5B", 10, {2, 30}));
  std::vector<std::string> skipped;
  const auto pts = predictor_points({a, copy, qwen}, skipped);
  REQUIRE(pts.size() == 7);
  CHECK(pts[3].model == "a");  // the GGUF copy's name without its extension
  for (std::size_t i = 0; i < 5; ++i) CHECK(pts[i].group == "0123abcd");
  CHECK(pts[5].model == "Qwen2.5-0.5B");
  CHECK(pts[5].group == "Qwen2.5-0.5B");  // no fingerprint recorded: the name
  // Leaving "a" out leaves its copy out too: the Qwen points alone predict them.
  const auto e = evaluate_predictor(pts);
  for (std::size_t i = 0; i < 5; ++i) CHECK(std::isfinite(e.rtn_ratio[i]));
  // A diverged unit's NaN is no point, and says why.
  ComparedRun bad = compared("bad", model_run("b", 10, {2}));
  bad.results.units[2].test_nll = lowbit::study::nan_value;
  skipped.clear();
  CHECK(predictor_points({bad}, skipped).empty());
  REQUIRE(skipped.size() == 1);
  CHECK(skipped[0].find("not a number") != std::string::npos);
}

TEST_CASE("predictor: the valley tells where GPTQ wins outside the basin, which r alone cannot") {
  // Outside the basin QAFT wins unless GPTQ found a valley; the valley sits at a larger
  // r than the plain width in one model, a smaller one in another, the same in the third
  // (which no threshold on r can get right).
  std::vector<std::string> skipped;
  const auto pts = predictor_points({compared("a", model_run("a", 10, {2, 20, 30}, true, {false, false, true})),
                                     compared("b", model_run("b", 10, {2, 20, 30}, true, {false, true, false})),
                                     compared("c", model_run("c", 10, {2, 25, 25}, true, {false, true, false}))},
                                    skipped);
  REQUIRE(pts.size() == 9);
  // GPTQ's segment (to 36) outruns the random probes (to 30): both rises are read at 30,
  // the segment's (30/36)² of its rise there (interpolated in t²).
  CHECK(pts[2].log_valley == doctest::Approx(std::log10(1.0 / 20 * 900 / 1296)));
  const auto e = evaluate_predictor(pts);
  int threshold_right = 0;
  for (std::size_t i = 0; i < pts.size(); ++i) {
    INFO(pts[i].run << " " << pts[i].width);
    CHECK(e.wins_valley[i] == (pts[i].qaft_wins() ? 1.0 : 0.0));
    threshold_right += e.wins_threshold[i] == (pts[i].qaft_wins() ? 1.0 : 0.0);
  }
  CHECK(threshold_right < 9);
}

TEST_CASE("landscape profiles: the rise between probes grows with t², and is held beyond them") {
  const Profile p{"random 0", {0, 10, 30}, {2, 2.1, 3}};
  CHECK(p.rise_at(0) == 0.0);
  CHECK(p.rise_at(5) == doctest::Approx(0.025));  // a bowl: a quarter of the rise at 10, not half
  CHECK(p.rise_at(20) == doctest::Approx(0.1 + 0.9 * 300.0 / 800.0));
  CHECK(p.rise_at(30) == doctest::Approx(1.0));
  CHECK(p.rise_at(99) == doctest::Approx(1.0));
  CHECK(Profile{"one probe", {0}, {2}}.rise_at(5) == 0.0);
  CHECK(Profile{"repeated probe", {0, 10, 10, 30}, {2, 2.1, 2.1, 3}}.rise_at(10) == doctest::Approx(0.1));
  CHECK(std::isnan(p.rise_at(-1)));
  CHECK(std::isnan(p.rise_at(std::nan(""))));
  CHECK(std::isnan(Profile{}.rise_at(1)));
  CHECK(std::isnan(Profile{"short", {0, 10}, {2}}.rise_at(5)));  // malformed: fewer NLLs than radii
}

TEST_CASE("predictor: the valley averages the random directions and floors rises within the probes' noise") {
  StudyResults r;
  r.profiles = {{random_label(0), {0, 10}, {2, 2.2}}, {random_label(1), {0, 10}, {2, 2.6}},
                {segment_label("gptq", "int4"), {0, 10}, {2, 2.04}}, {segment_label("gptq", "int8"), {0, 0.5}, {2, 2}}};
  CHECK(detail::log_valley(r, "int4") == doctest::Approx(std::log10(0.04 / 0.4)));  // the mean of 0.2 and 0.6
  // At 0.5 the random directions rise 0.4 · 0.25 % = 0.001 nats and GPTQ not at all:
  // both floored, no signal.
  CHECK(detail::log_valley(r, "int8") == doctest::Approx(0.0));
  CHECK(std::isnan(detail::log_valley(r, "int2")));  // no segment
  // A run without GPTQ's segment keeps its points; only the valley's classifier skips them.
  ComparedRun gap = compared("gap", model_run("g", 10, {2, 20}));
  std::erase_if(gap.results.profiles, [](const Profile& p) { return p.label == segment_label("gptq", "int6"); });
  std::vector<std::string> skipped;
  const auto pts = predictor_points({gap, compared("h", model_run("h", 10, {2, 20}))}, skipped);
  REQUIRE(pts.size() == 4);
  CHECK(std::isnan(pts[1].log_valley));
  const auto e = evaluate_predictor(pts);
  CHECK(std::isnan(e.wins_valley[1]));
  CHECK(std::isfinite(e.wins_valley[0]));
  CHECK(std::isfinite(e.wins_threshold[1]));
}

TEST_CASE("predictor: one model alone cannot be judged, and says so") {
  std::vector<std::string> skipped;
  const auto pts = predictor_points({compared("a", model_run("a", 10, {2, 8, 30}))}, skipped);
  const auto e = evaluate_predictor(pts);
  CHECK(std::isnan(e.rtn_all[0]));
  const std::string md = predictor_markdown(pts, e, skipped, "x");
  CHECK(md.find("needs two models") != std::string::npos);
}

TEST_CASE("--predict names a folder that is not a finished run") {
  const fs::path missing = fs::temp_directory_path() / "lowbit_predict_no_such_run";
  CHECK_THROWS_WITH_AS(write_predictor({missing}, missing / "out", "x"), doctest::Contains("--predict"), UsageError);
}
