// SVG plots and progress reporting.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "lowbit/study/progress.hpp"
#include "lowbit/study/svg_plot.hpp"

using namespace lowbit::study;

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
