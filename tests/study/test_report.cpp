// report.md findings and tidy CSVs from hand-made results with known answers.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "lowbit/io/file.hpp"
#include "../support/render_svg.hpp"
#include "lowbit/study/report.hpp"

using namespace lowbit::study;

namespace {
StudyResults sample() {
  StudyResults r;
  r.model = "toy";
  r.data = "synthetic";
  r.fp_test_nll = 1.0;
  r.fp_val_nll = 1.1;
  r.fp_weight_bytes = 4000;
  r.basin_radius = 0.5;
  const auto unit = [](std::string m, int b, double nll, double dist, double mse0, double mse1) {
    UnitResult u;
    u.method = std::move(m);
    u.bits = b;
    u.test_nll = nll;
    u.val_nll = nll + 0.1;
    u.weight_distance = dist;
    u.weight_bytes = 1000.0 * b / 8;
    u.layers = {{"l0", mse0, 1.0, 1.0}, {"l1", mse1, 1.0, 1.0}};
    return u;
  };
  r.units = {unit("rtn", 4, 1.5, 0.3, 1e-2, 2e-2), unit("gptq", 4, 1.3, 0.4, 5e-3, 1e-2),
             unit("qaft", 4, 1.2, 0.6, 2e-2, 3e-2), unit("rtn", 2, 5.0, 0.9, 1e-1, 2e-1),
             unit("gptq", 2, 3.0, 1.1, 5e-2, 3e-1), unit("qaft", 2, 2.0, 1.3, 2e-1, 1e-1)};
  r.units[2].epoch_test_nll = {1.25};
  r.units[5].epoch_test_nll = {3.5};
  r.units[2].lr_curve = {{1e-4, 1.4}, {1e-3, 1.3}};
  r.units[5].lr_curve = {{1e-4, 3.4}, {1e-3, 2.1}};
  return r;
}
}  // namespace

TEST_CASE("report.md states each finding with its numbers") {
  const std::string md = report_markdown(sample(), "lowbit-study --quick");
  CHECK(md.find("int4: QAFT beats GPTQ on test NLL — **held** (1.2 vs 1.3)") != std::string::npos);
  CHECK(md.find("int2: QAFT beats GPTQ on test NLL — **held** (2 vs 3)") != std::string::npos);
  // Closer than method_tie_margin is a tie, either way round.
  auto close = sample();
  close.units[2].test_nll = close.units[1].test_nll + 0.5 * method_tie_margin;
  CHECK(report_markdown(close, "x").find("int4: QAFT beats GPTQ on test NLL — **a tie** (within 0.02 nats) (1.31 vs 1.3)") !=
        std::string::npos);
  CHECK(md.find("int4: GPTQ lowers the output MSE of every layer below RTN's — **held** (2/2 layers); QAFT does so for 0/2") !=
        std::string::npos);
  CHECK(md.find("int2: GPTQ lowers the output MSE of every layer below RTN's — **did not hold** (1/2 layers)") !=
        std::string::npos);
  CHECK(md.find("int4: ‖w_GPTQ − w‖ > ‖w_RTN − w‖ — **held**") != std::string::npos);
  CHECK(md.find("int4 0.3 (inside)") != std::string::npos);
  CHECK(md.find("int2 0.9 (outside)") != std::string::npos);
  CHECK(md.find("int4: one epoch of QAFT already beats GPTQ — **held**") != std::string::npos);
  CHECK(md.find("int2: one epoch of QAFT already beats GPTQ — **did not hold**") != std::string::npos);
}

TEST_CASE("tidy CSVs have one row per unit and per layer") {
  const auto r = sample();
  const std::string u = units_csv(r);
  CHECK(u.rfind("method,bits,test_nll", 0) == 0);
  CHECK(std::count(u.begin(), u.end(), '\n') == 1 + 1 + 6);
  const std::string l = layers_csv(r);
  CHECK(std::count(l.begin(), l.end(), '\n') == 1 + 12);
  CHECK(l.find("gptq,4,l1,0.01,1,1") != std::string::npos);
}

TEST_CASE("write_report writes every file into the folder") {
  const auto dir = std::filesystem::temp_directory_path() / "lowbit_report_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  StudyResults r = sample();
  Profile radial;  // the landscape figure too
  radial.label = "random 0";
  radial.t = {0, 0.5, 1.0};
  radial.nll = {1.0, 1.2, 2.0};
  radial.basin_radius = 0.6;
  Profile to_rtn = radial, to_gptq = radial, to_qaft = radial;
  to_rtn.label = "w -> w_rtn (int4)";
  to_gptq.label = "w -> w_gptq (int4)";
  to_qaft.label = "w -> w_qaft (int2)";
  r.profiles = {radial, to_rtn, to_gptq, to_qaft};
  write_report(r, dir, "lowbit-study");
  for (const char* f : {"units.csv", "layers.csv", "qaft.csv", "profiles.csv", "fig1_nll_qaft_vs_gptq.svg",
                        "fig1_layer_mse.svg", "fig2_nll_vs_size.svg", "fig3_landscape.svg", "fig4_nll_vs_distance.svg",
                        "fig5_nll_by_dataset.svg", "figB_qaft_epochs.svg", "figA_qaft_rates.svg", "report.md"})
    CHECK(std::filesystem::exists(dir / f));

  // Every figure renders (a malformed one fails here).
  if (lowbit::test::have_rsvg_convert()) {
    int figures = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() != ".svg") continue;
      ++figures;
      lowbit::test::check_renders(e.path());
    }
    CHECK(figures == 8);
  }
  // Figure 3: one panel per bit width, each with the random direction (grey, in the
  // legend once) and that width's segments, and the basin radius marked.
  const std::string fig3 = lowbit::io::read_file(dir / "fig3_landscape.svg");
  const auto count = [&](const std::string& what) {
    int n = 0;
    for (auto p = fig3.find(what); p != std::string::npos; p = fig3.find(what, p + 1)) ++n;
    return n;
  };
  CHECK(count("<svg") == 3);  // the document and two panels (int4, int2)
  CHECK(count("Global NLL along directions from w (int4)") == 1);
  CHECK(count("Global NLL along directions from w (int2)") == 1);
  CHECK(count("R(w) = 0.5") == 2);
  CHECK(count(">random directions<") == 2);
  CHECK(count("clipPath id=\"landscape0\"") == 1);
  CHECK(count("clipPath id=\"landscape1\"") == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("Figure 4 puts each method at its distance from w; Figure 5 has a panel per evaluation set measured") {
  StudyResults r = sample();
  const auto fig4 = figure_nll_vs_distance(r).svg();
  for (const char* m : {">rtn<", ">gptq<", ">qaft<", ">fp32<", "R(w) = 0.5"}) CHECK(fig4.find(m) != std::string::npos);
  CHECK(report_markdown(r, "x").find("fig4_nll_vs_distance.svg") != std::string::npos);

  auto count = [](const std::string& s, const std::string& what) {
    int n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
  };
  CHECK(figure_nll_by_dataset(r).size() == 1);  // no out-of-domain NLL measured: the test split alone
  r.fp_ood_nll = 2.0;
  for (auto& u : r.units) u.ood_nll = u.test_nll + 1.0;
  r.units[0].ood_nll = lowbit::study::nan_value;  // a unit without it is left out, not drawn at NaN
  const auto panels = figure_nll_by_dataset(r);
  REQUIRE(panels.size() == 2);
  const std::string ood = panels[1].svg();
  CHECK(ood.find("Out-of-domain text") != std::string::npos);
  CHECK(count(ood, ">fp32<") == 1);
  CHECK(ood.find("NaN") == std::string::npos);
  CHECK(ood.find("nan") == std::string::npos);
}
