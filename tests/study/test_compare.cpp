// lowbit-study --compare: finished runs read back from their folders and drawn and
// tabulated together, each with its protocol and its own bit-width names.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../io/shared_data.hpp"
#include "../support/tiny_llama2c.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/study/compare.hpp"
#include "lowbit/study/runner.hpp"

namespace fs = std::filesystem;
using namespace lowbit::study;

namespace {
// dim 32, hidden 64: every layer's rows are whole q4_0 blocks.
fs::path write_compare_model(const fs::path& dir, const fs::path& tokenizer) {
  return lowbit::test::write_tiny_llama2c(dir, tokenizer, 1, 32, 64, 11);
}

StudyResults run_scheme(const fs::path& model, const fs::path& data, const fs::path& out, const char* scheme) {
  StudyOptions o;
  o.model = model;
  o.data = data;
  o.out = out;
  o.scheme = lowbit::QuantSpec::parse(scheme);
  o.bits = {4};
  o.methods = {Method::rtn, Method::gptq};
  o.calib = 4;
  o.seq_len = 32;
  o.damp_grid = {1e-2};
  o.quick = true;
  StudySetup s = StudySetup::prepare(o, "test");
  return StudyRunner(s, nullptr, nullptr).run();
}
}  // namespace

TEST_CASE("lowbit-study --compare: runs of two schemes side by side, each read back as written") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const fs::path root = fs::temp_directory_path() / ("lowbit_compare_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto model = write_compare_model(root / "model", data / "stories260K" / "tok512.bin");
  const StudyResults int4 = run_scheme(model, data, root / "int4", "int4:hist");
  const StudyResults q40 = run_scheme(model, data, root / "q4_0", "q4_0");

  const auto runs = write_compare({root / "int4", root / "q4_0"}, root / "cmp", "lowbit-study --compare ...");
  REQUIRE(runs.size() == 2);
  CHECK(runs[1].results.grid == "q4_0");
  CHECK(runs[0].protocol.find("quick") == 0);
  REQUIRE(runs[1].results.units.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {  // read back exactly as the run returned them
    CHECK(runs[0].results.units[i].test_nll == int4.units[i].test_nll);
    CHECK(runs[1].results.units[i].weight_bytes == q40.units[i].weight_bytes);
    CHECK(runs[1].results.units[i].layers.size() == q40.units[i].layers.size());
  }
  CHECK(runs[1].results.notes == q40.notes);
  const std::string md = lowbit::io::read_file(root / "cmp" / "compare.md");
  CHECK(md.find("| int4 | ") != std::string::npos);
  CHECK(md.find("| q4_0 | ") != std::string::npos);
  CHECK(md.find("Pareto front") != std::string::npos);
  const std::string svg = lowbit::io::read_file(root / "cmp" / "fig2_compare.svg");
  CHECK(svg.find("Pareto front") != std::string::npos);
  CHECK(svg.find("QAFT - GPTQ gap") == std::string::npos);  // no QAFT in these runs
  // The Pareto front: no point of it is beaten on both bytes and NLL by another unit.
  std::vector<std::pair<double, double>> all;
  for (const auto& r : runs)
    for (const auto& u : r.results.units) all.emplace_back(u.weight_bytes, u.test_nll);
  for (const auto& [x, y] : detail::pareto_front(all))
    for (const auto& [x2, y2] : all) CHECK_FALSE((x2 <= x && y2 < y));
  // A folder that is not a finished run is named.
  CHECK_THROWS_WITH_AS(read_compared_run(root / "model"), doctest::Contains((root / "model").string().c_str()), UsageError);
  fs::remove_all(root);
}

TEST_CASE("lowbit-study --compare: every run's findings in one table") {
  const auto unit = [](const std::string& method, double nll, double distance, std::vector<double> mse) {
    UnitResult u;
    u.method = method;
    u.bits = 3;
    u.test_nll = nll;
    u.weight_distance = distance;
    for (std::size_t k = 0; k < mse.size(); ++k) u.layers.push_back({"l" + std::to_string(k), mse[k]});
    return u;
  };
  ComparedRun a;
  a.name = "m-paper";
  a.results.basin_radius = 10;
  a.results.units = {unit("rtn", 4.0, 15, {1, 1, 1}), unit("gptq", 3.5, 20, {0.5, 0.9, 1.0}),
                     unit("qaft", 3.2, 16, {2, 0.5, 3})};
  ComparedRun b;  // no landscape, GPTQ ahead by less than the margin, no QAFT
  b.name = "m q4_0";
  b.results.grid = "q4_0";
  b.results.units = {unit("rtn", 4.0, 5, {1}), unit("gptq", 3.9, 6, {2})};
  b.results.units[0].bits = b.results.units[1].bits = 4;
  const std::string md = findings_markdown({a, b});
  CHECK(md.find("| m-paper | int3 | 1.5 | -0.3 | QAFT | 3/3 | 1/3 | 1.33 |") != std::string::npos);
  CHECK(md.find("| m q4_0 | q4_0 | — | — | — | 0/1 | — | 1.2 |") != std::string::npos);
  CHECK(std::string(method_winner(0.01)) == "tie");
  CHECK(std::string(method_winner(0.05)) == "GPTQ");
}
