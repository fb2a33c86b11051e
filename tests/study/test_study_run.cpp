// The study driver end to end on a tiny llama2.c model (random weights, the real
// tok512.bin and TinyStories split): outputs, resumability, interruption, input errors.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../io/shared_data.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/study/runner.hpp"

namespace {

namespace fs = std::filesystem;
using lowbit::study::StudyOptions;
using lowbit::study::StudyRunner;
using lowbit::study::StudySetup;

// A llama2.c v0 checkpoint: dim 16, hidden 32, 1 layer, 2 heads, 1 kv head, vocab 512
// (shared classifier), context 512, weights in run.c's order, N(0, 0.1) values.
fs::path write_tiny_llama2c(const fs::path& dir, const fs::path& tokenizer) {
  fs::create_directories(dir);
  const int d = 16, h = 32, L = 1, H = 2, KV = 1, V = 512, T = 512, hd = d / H, kv = KV * hd;
  const std::int32_t header[7] = {d, h, L, H, KV, V, T};
  const long floats = static_cast<long>(V) * d + L * d + L * d * d + 2L * L * d * kv + L * d * d + L * d +
                      3L * L * h * d + d + static_cast<long>(T) * hd;
  std::mt19937 gen(5);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  std::ofstream out(dir / "tiny.bin", std::ios::binary);
  out.write(reinterpret_cast<const char*>(header), sizeof header);
  for (long i = 0; i < floats; ++i) {
    const float v = nd(gen);
    out.write(reinterpret_cast<const char*>(&v), 4);
  }
  out.close();
  fs::copy_file(tokenizer, dir / "tok512.bin", fs::copy_options::overwrite_existing);
  return dir / "tiny.bin";
}

StudyOptions tiny_options(const fs::path& model, const fs::path& data, const fs::path& out) {
  StudyOptions o;
  o.model = model;
  o.data = data;
  o.out = out;
  o.bits = {3};
  o.calib = 6;
  o.seq_len = 64;
  o.damp_grid = {1e-2, 1.0};
  o.lr_grid = {1e-3, 1e-2};
  o.landscape = true;
  o.directions = 2;
  o.quick = false;  // also runs the per-layer landscape
  o.save = true;
  return o;
}

std::string read_log(FILE* f) {
  std::rewind(f);
  std::string s;
  char buf[4096];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, f)) s.append(buf, n);
  return s;
}

}  // namespace

TEST_CASE("lowbit-study on a tiny model: outputs, then a resumed run reuses every unit") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const fs::path root = fs::temp_directory_path() / ("lowbit_study_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto model = write_tiny_llama2c(root / "model", data / "stories260K" / "tok512.bin");
  const fs::path out = root / "out";

  FILE* log = std::tmpfile();
  REQUIRE(log != nullptr);
  StudySetup setup = StudySetup::prepare(tiny_options(model, data, out), "test");
  const auto first = StudyRunner(setup, nullptr, log).run();
  const std::string log1 = read_log(log);
  std::fclose(log);

  REQUIRE(first.units.size() == 3);
  for (const auto& u : first.units) {
    INFO(u.key());
    CHECK(std::isfinite(u.test_nll));
    CHECK(std::isfinite(u.val_nll));
    CHECK(std::isfinite(u.ood_nll));
    CHECK(u.weight_distance > 0);
    CHECK(u.layers.size() == 7);
  }
  const auto* q = first.find("qaft", 3);
  REQUIRE(q != nullptr);
  CHECK(q->lr_curve.size() == 2);
  CHECK(q->epoch_test_nll.size() == 1);
  CHECK(q->epoch_test_nll.front() == doctest::Approx(q->test_nll));
  for (const auto& l : first.find("gptq", 3)->layers) CHECK((l.damp == 1e-2 || l.damp == 1.0));
  // Landscape: 2 random directions + 3 segments from w + GPTQ → QAFT; all start at w.
  REQUIRE(first.profiles.size() == 6);
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(first.profiles[i].t.front() == 0.0);
    CHECK(first.profiles[i].nll.size() == first.profiles[i].t.size());
    CHECK(first.profiles[i].nll.front() == doctest::Approx(first.profiles[0].nll.front()));  // the NLL at w
  }
  // Per layer: one profile per linear layer, radii up to 1.5 × that layer's ‖ΔW_RTN‖.
  REQUIRE(first.layer_profiles.size() == 7);
  const auto& rtn_layers = first.find("rtn", 3)->layers;
  CHECK(first.layer_profiles[2].label == "layer " + rtn_layers[2].name);
  CHECK(first.layer_profiles[2].t.back() == doctest::Approx(1.5 * std::sqrt(rtn_layers[2].weight_sq_error)));
  for (const char* f : {"results.json", "report.md", "units.csv", "layers.csv", "qaft.csv", "profiles.csv",
                        "fig1_nll_qaft_vs_gptq.svg", "fig1_layer_mse.svg", "fig2_nll_vs_size.svg", "fig3_landscape.svg",
                        "units/fp.json", "units/rtn-int3.json", "units/gptq-int3.json", "units/qaft-int3-lr1e-03.json",
                        "units/qaft-int3-lr1e-02.json", "units/qaft-int3.json", "units/landscape.json",
                        "units/landscape-layers.json", "layer_basins.csv"})
    CHECK_MESSAGE(fs::exists(out / f), f);
  // --save: packed models whose codes·scales are exactly the weights each method evaluated.
  for (const char* k : {"rtn-int3", "gptq-int3", "qaft-int3-lr1e-02", "qaft-int3"}) {
    INFO(k);
    const auto packed = lowbit::io::SafetensorsFile::open(out / "models" / (std::string(k) + ".safetensors"));
    const auto weights = lowbit::io::SafetensorsFile::open(out / "weights" / (std::string(k) + ".safetensors"));
    const std::string name = "model.layers.0.mlp.down_proj.weight";
    const auto q = lowbit::io::read_quantized(packed, name);
    CHECK(q.method == std::string(k).substr(0, std::string(k).find('-')));
    const auto t = lowbit::unpack(q.packed);
    std::vector<float> deq(t.codes.size());
    t.dequantize(lowbit::MatrixView(deq.data(), t.rows(), t.cols()));
    CHECK(deq == weights.to_float(name));
    CHECK(packed.to_float("model.embed_tokens.weight").size() == 512u * 16u);
  }
  const auto results = lowbit::io::Json::parse(lowbit::io::read_file(out / "results.json"));
  CHECK(results.at("units").size() == 3);
  CHECK(log1.find("reusing") == std::string::npos);

  // Resume: nothing is recomputed, the results are the same.
  FILE* log2f = std::tmpfile();
  StudySetup again = StudySetup::prepare(tiny_options(model, data, out), "test");
  const auto second = StudyRunner(again, nullptr, log2f).run();
  const std::string log2 = read_log(log2f);
  std::fclose(log2f);
  CHECK(log2.find("reusing") != std::string::npos);
  CHECK(log2.find("epoch 1") == std::string::npos);  // no QAFT retraining
  CHECK(second.units.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(second.units[i].test_nll == first.units[i].test_nll);
  CHECK(second.profiles.size() == first.profiles.size());

  // A lost unit (the run was killed while computing it) is recomputed, identically.
  fs::remove(out / "units" / "gptq-int3.json");
  FILE* log3f = std::tmpfile();
  StudySetup third_setup = StudySetup::prepare(tiny_options(model, data, out), "test");
  const auto third = StudyRunner(third_setup, nullptr, log3f).run();
  const std::string log3 = read_log(log3f);
  std::fclose(log3f);
  CHECK(log3.find("gptq-int3: reusing") == std::string::npos);
  CHECK(log3.find("rtn-int3: reusing") != std::string::npos);
  CHECK(third.find("gptq", 3)->test_nll == doctest::Approx(first.find("gptq", 3)->test_nll).epsilon(1e-9));

  // Different settings in the same --out are refused before any work.
  auto changed = tiny_options(model, data, out);
  changed.seed = 9;
  StudySetup other = StudySetup::prepare(changed, "test");
  CHECK_THROWS_WITH_AS(StudyRunner(other, nullptr, nullptr).run(), doctest::Contains("different 'seed'"),
                       lowbit::study::UsageError);

  // A stop request before a unit: Interrupted, and no partial unit file.
  const fs::path out2 = root / "out2";
  std::atomic<bool> stop{true};
  StudySetup stopped = StudySetup::prepare(tiny_options(model, data, out2), "test");
  CHECK_THROWS_AS(StudyRunner(stopped, &stop, nullptr).run(), lowbit::study::Interrupted);
  CHECK(!fs::exists(out2 / "units" / "fp.json"));
  fs::remove_all(root);
}

TEST_CASE("lowbit-study input errors are UsageErrors naming the flag, raised before any work") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const fs::path root = fs::temp_directory_path() / ("lowbit_study_err_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto model = write_tiny_llama2c(root / "model", data / "stories260K" / "tok512.bin");
  using lowbit::study::UsageError;
  auto o = tiny_options(root / "missing.bin", data, root / "out");
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("--model"), UsageError);
  o = tiny_options(model, root / "no-data", root / "out");
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("--data"), UsageError);
  o = tiny_options(model, data, "/proc/lowbit-cannot-write-here");
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("--out"), UsageError);
  o = tiny_options(model, data, root / "out");
  o.calib = 200;
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("--calib 200"), UsageError);
  o = tiny_options(model, data, root / "out");
  o.seq_len = 4096;
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("--seq-len 4096"), UsageError);
  o = tiny_options(model, data, root / "out");
  o.granularity = {lowbit::study::Granularity::Kind::group, 64};
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("--granularity group:64"), UsageError);
  // A corrupt checkpoint is an Error naming the file.
  { std::ofstream(root / "model" / "bad.bin") << "not a model"; }
  o = tiny_options(root / "model" / "bad.bin", data, root / "out");
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("bad.bin"), lowbit::Error);
  fs::remove_all(root);
}
