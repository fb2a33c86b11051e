// SVG plots and progress reporting.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <set>
#include <string>

#include "lowbit/study/progress.hpp"
#include "lowbit/analysis/svg_plot.hpp"

using namespace lowbit::study;
using lowbit::analysis::SvgPlot;
using lowbit::analysis::Series;

namespace {
int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("SvgPlot draws every finite point, skips the rest, and escapes labels") {
  SvgPlot p;
  p.title = "NLL <QAFT> vs GPTQ & co";
  p.identity_line = true;
  p.add({"int4", {1.0, 2.0, 3.0}, {1.5, NAN, 2.5}, false, true, "", false});
  p.add({"int2", {4.0, 5.0}, {4.5, 6.0}, true, true, "", true});
  const std::string s = p.svg();
  CHECK(s.rfind("<svg", 0) == 0);
  CHECK(s.find("</svg>") != std::string::npos);
  CHECK(count(s, "<circle") == 4);  // 5 points, one NaN
  CHECK(s.find("1 non-finite") != std::string::npos);
  CHECK(s.find("NLL &lt;QAFT&gt; vs GPTQ &amp; co") != std::string::npos);
  CHECK(count(s, "stroke-dasharray") >= 2);  // identity line + dashed series
  SvgPlot lg;
  lg.log_y = true;
  lg.add({"mse", {1, 2, 3}, {1e-3, 0.0, 1e-1}, true, true, "", false});
  CHECK(count(lg.svg(), "<circle") == 2);  // 0 cannot sit on a log axis
}

TEST_CASE("SvgPlot: no two series share a colour, a log axis inside one decade still has ticks") {
  SvgPlot many;
  for (int k = 0; k < 24; ++k) many.add({"s" + std::to_string(k), {1.0, 2.0}, {1.0 * k, 2.0 * k}, true, false, "", false});
  std::set<std::string> colors;
  for (std::size_t k = 0; k < 24; ++k) colors.insert(SvgPlot::palette_color(k));
  CHECK(colors.size() == 24);
  for (const auto& c : colors) CHECK(many.svg().find("stroke=\"" + c + "\"") != std::string::npos);

  // Weight bytes from 150k to 900k: no power of ten inside, so ticks at 2 and 5 times
  // one, labelled as numbers with k / M, not "1e5.3".
  SvgPlot bytes;
  bytes.log_x = true;
  bytes.add({"rtn", {150e3, 300e3, 900e3}, {3.0, 2.0, 1.5}, true, true, "", false});
  const std::string s = bytes.svg();
  CHECK(s.find(">200k<") != std::string::npos);
  CHECK(s.find(">500k<") != std::string::npos);
  CHECK(s.find("1e5") == std::string::npos);
  // Several decades: decade ticks.
  SvgPlot wide;
  wide.log_y = true;
  wide.add({"mse", {1, 2, 3}, {1e-6, 1e-3, 1e0}, true, true, "", false});
  CHECK(wide.svg().find(">1e-06<") != std::string::npos);

  // Panels: one document, each plot a nested <svg> at its place, legend rows only for
  // the series that ask for one.
  SvgPlot a, b;
  a.id = "a";
  b.id = "b";
  a.add({"shown", {1, 2}, {1, 2}, true, false, "", false});
  a.add({"hidden", {1, 2}, {2, 3}, true, false, "", false, false});
  b.markers.push_back({1.5, "R(w) = 1.5"});
  b.add({"x", {1, 2}, {1, 2}, true, false, "", false});
  const std::string both = SvgPlot::panels({a, b}, 2);
  CHECK(count(both, "<svg") == 3);
  CHECK(both.find("<svg x=\"640\" y=\"0\"") != std::string::npos);
  CHECK(both.find(">shown<") != std::string::npos);
  CHECK(both.find(">hidden<") == std::string::npos);
  CHECK(both.find(">R(w) = 1.5<") != std::string::npos);
}

TEST_CASE("Progress prints plain lines with rate and ETA when not on a terminal") {
  FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  {
    Progress p("gptq int4", 4, "layers", f, 0.0);
    for (int i = 0; i < 4; ++i) p.advance();
  }
  std::rewind(f);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  std::fclose(f);
  CHECK(out.find("gptq int4: 4/4 (100%)") != std::string::npos);
  CHECK(out.find("layers/s") != std::string::npos);
  CHECK(out.find("ETA") != std::string::npos);
}
