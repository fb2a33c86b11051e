// The study driver end to end on a tiny llama2.c model (random weights, the real
// tok512.bin and TinyStories split): outputs, resumability, interruption, input errors.
// Then models made by lowbit_pretrain (one runner instantiation per TU is ~3 min of compile,
// so both live here).
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../io/shared_data.hpp"
#include "../nn/tiny_config.hpp"
#include "../support/tiny_llama2c.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/nn/save.hpp"
#include "lowbit/quant/spec_quantizer.hpp"
#include "lowbit/study/runner.hpp"

namespace {

namespace fs = std::filesystem;
using lowbit::study::StudyOptions;
using lowbit::study::StudyRunner;
using lowbit::study::StudySetup;

using lowbit::test::write_tiny_llama2c;  // dim 16, hidden 32 by default

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
  o.qaft_epochs = 1;
  o.qaft_batch = 8;
  o.landscape = true;
  o.directions = 2;
  o.quick = false;  // also runs the per-layer landscape
  o.save = true;
  return o;
}

/// ‖Q(W) − W‖ of per-tensor histogram-MSE 2-bit RTN for each linear layer, then over
/// all of them (the landscape's probe scale), computed here without the study's code.
std::vector<double> rtn2_distances(const lowbit::nn::Transformer& m) {
  const lowbit::SpecQuantizer q(lowbit::QuantSpec::parse("int2:hist"));
  std::vector<double> d;
  double total = 0;
  for (const auto& l : m.linear_layers()) {
    const auto w = l.weight->matrix();
    std::vector<float> wq(static_cast<std::size_t>(w.rows * w.cols));
    q.fake_quantize(w, lowbit::MatrixView(wq.data(), w.rows, w.cols), l.name);
    double s = 0;
    for (std::size_t i = 0; i < wq.size(); ++i) s += std::pow(double(wq[i]) - double(w.data[i]), 2);
    d.push_back(std::sqrt(s));
    total += s;
  }
  d.push_back(std::sqrt(total));
  return d;
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
  const auto probe_scale = rtn2_distances(setup.model);  // before the run: the fp weights
  const auto first = StudyRunner(setup, nullptr, log).run();
  const std::string log1 = read_log(log);
  std::fclose(log);

  REQUIRE(first.units.size() == 3);
  for (const auto& u : first.units) {
    INFO(u.method << " " << u.bits);
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
  // The model's probe grid, whatever the run's widths (3 bits here): radii up to 1.5 ×
  // ‖ΔW‖ of per-tensor 2-bit RTN, over all layers and per layer.
  CHECK(first.profiles[0].t.back() == doctest::Approx(1.5 * probe_scale.back()));
  REQUIRE(first.layer_profiles.size() == 7);
  const auto& rtn_layers = first.find("rtn", 3)->layers;
  CHECK(first.layer_profiles[2].label == "layer " + rtn_layers[2].name);
  CHECK(first.layer_profiles[2].t.back() == doctest::Approx(1.5 * probe_scale[2]));
  CHECK(probe_scale[2] > std::sqrt(rtn_layers[2].weight_sq_error));  // int2 moves the weights further than int3
  for (const char* f : {"results.json", "report.md", "units.csv", "layers.csv", "qaft.csv", "profiles.csv",
                        "fig1_nll_qaft_vs_gptq.svg", "fig1_layer_mse.svg", "fig2_nll_vs_size.svg", "fig3_landscape.svg",
                        "fig4_nll_vs_distance.svg", "fig5_nll_by_dataset.svg", "units/fp.json", "units/rtn-int3.json", "units/gptq-int3.json", "units/qaft-int3-lr1e-03.json",
                        "units/qaft-int3-lr1e-02.json", "units/qaft-int3.json", "units/landscape.json",
                        "units/landscape-layers.json", "units/probe-scale.json", "layer_basins.csv"})
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
  // Each rate kept its quantized weights per epoch only until the choice: the test
  // curve is the chosen rate's alone, and the epoch folders are gone.
  for (const char* rate : {"qaft-int3-lr1e-03", "qaft-int3-lr1e-02"}) {
    INFO(rate);
    const auto unit = lowbit::io::Json::parse(lowbit::io::read_file(out / "units" / (std::string(rate) + ".json")));
    CHECK(unit.at("epoch_val_nll").size() == 1);
    CHECK(unit.at("epoch_test_nll").size() == 0);
    CHECK_FALSE(fs::exists(out / "units" / (std::string(rate) + ".epochs")));
  }

  // Resume: nothing is recomputed, the results are the same; --heldout (not part of
  // the run's identity) measures every unit again on the held-out stories.
  FILE* log2f = std::tmpfile();
  StudyOptions with_heldout = tiny_options(model, data, out);
  with_heldout.heldout = true;
  StudySetup again = StudySetup::prepare(with_heldout, "test");
  const auto second = StudyRunner(again, nullptr, log2f).run();
  const std::string log2 = read_log(log2f);
  std::fclose(log2f);
  CHECK(log2.find("reusing") != std::string::npos);
  CHECK(log2.find("epoch 1") == std::string::npos);  // no QAFT retraining
  // The probe scale kept in units/probe-scale.json is the computed one to the bit:
  // the landscapes, keyed on it, are reused.
  CHECK(log2.find("probe scale: kept in") != std::string::npos);
  CHECK(log2.find("landscape: reusing") != std::string::npos);
  CHECK(log2.find("landscape-layers: reusing") != std::string::npos);
  CHECK(second.units.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(second.units[i].test_nll == first.units[i].test_nll);
  CHECK(second.profiles.size() == first.profiles.size());
  {
    REQUIRE(again.data.heldout_description.find("132 stories") != std::string::npos);
    const std::string csv = lowbit::io::read_file(out / "heldout.csv");
    CHECK(csv.starts_with("unit,method,bits,test_nll,heldout_nll\nfp,fp,0,"));
    for (const char* k : {"\nrtn-int3,rtn,3,", "\ngptq-int3,gptq,3,", "\nqaft-int3,qaft,3,"}) CHECK_MESSAGE(csv.find(k) != std::string::npos, k);
    CHECK(csv.find("nan") == std::string::npos);
    // The fp row is the model as given, evaluated directly on the same windows.
    StudySetup fresh = StudySetup::prepare(with_heldout, "test");
    const double fp_heldout = lowbit::nn::evaluate(fresh.model, fresh.data.heldout).mean_nll();
    const auto fp_row = csv.substr(csv.find("\nfp,") + 1);
    CHECK(std::stod(fp_row.substr(fp_row.rfind(',', fp_row.find('\n')) + 1)) == doctest::Approx(fp_heldout).epsilon(1e-6));
    const std::string md = lowbit::io::read_file(out / "heldout.md");
    CHECK(md.find("| int3 | ") != std::string::npos);
  }

  // A lost unit (the run was killed while computing it) is recomputed, identically;
  // so is the chosen QAFT rate when its test curve is needed and its epoch weights
  // are gone (trained again: the same run).
  fs::remove(out / "units" / "gptq-int3.json");
  fs::remove(out / "units" / "qaft-int3.json");
  // Epoch weights left that are not this run's (here RTN's) are recognised as such.
  const std::string chosen = first.find("qaft", 3)->learning_rate == 1e-3 ? "qaft-int3-lr1e-03" : "qaft-int3-lr1e-02";
  fs::create_directories(out / "units" / (chosen + ".epochs"));
  fs::copy_file(out / "weights" / "rtn-int3.safetensors", out / "units" / (chosen + ".epochs") / "epoch-1.safetensors");
  FILE* log3f = std::tmpfile();
  StudySetup third_setup = StudySetup::prepare(tiny_options(model, data, out), "test");
  const auto third = StudyRunner(third_setup, nullptr, log3f).run();
  const std::string log3 = read_log(log3f);
  std::fclose(log3f);
  CHECK(log3.find("gptq-int3: reusing") == std::string::npos);
  CHECK(log3.find("rtn-int3: reusing") != std::string::npos);
  CHECK(third.find("gptq", 3)->test_nll == doctest::Approx(first.find("gptq", 3)->test_nll).epsilon(1e-9));
  CHECK(log3.find("not this run's") != std::string::npos);
  CHECK(log3.find("training it again for its test curve") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "units" / (chosen + ".epochs")));
  REQUIRE(third.find("qaft", 3)->epoch_test_nll.size() == 1);
  CHECK(third.find("qaft", 3)->epoch_test_nll[0] == doctest::Approx(first.find("qaft", 3)->epoch_test_nll[0]).epsilon(1e-9));
  CHECK(third.find("qaft", 3)->test_nll == doctest::Approx(first.find("qaft", 3)->test_nll).epsilon(1e-9));

  // Different settings in the same --out are refused before any work.
  auto changed = tiny_options(model, data, out);
  changed.seed = 9;
  StudySetup other = StudySetup::prepare(changed, "test");
  CHECK_THROWS_WITH_AS(StudyRunner(other, nullptr, nullptr).run(), doctest::Contains("different 'seed'"),
                       lowbit::study::UsageError);

  // Regressions (issue #17): every setting that changes a result guards the folder.
  for (const auto& [what, change] : std::vector<std::pair<std::string, std::function<void(StudyOptions&)>>>{
           {"lr_grid", [](StudyOptions& o) { o.lr_grid = {1e-3, 1e-2, 1e-1}; }},
           {"directions", [](StudyOptions& o) { o.directions = 3; }}}) {
    auto o = tiny_options(model, data, out);
    change(o);
    StudySetup s = StudySetup::prepare(o, "test");
    CHECK_THROWS_WITH_AS(StudyRunner(s, nullptr, nullptr).run(), doctest::Contains(("different '" + what + "'").c_str()),
                         lowbit::study::UsageError);
  }
  // A unit copied under another unit's name is refused, naming the file.
  fs::copy_file(out / "units" / "rtn-int3.json", root / "rtn-int3.json.bak");
  fs::copy_file(out / "units" / "gptq-int3.json", out / "units" / "rtn-int3.json", fs::copy_options::overwrite_existing);
  {
    StudySetup s = StudySetup::prepare(tiny_options(model, data, out), "test");
    CHECK_THROWS_WITH_AS(StudyRunner(s, nullptr, nullptr).run(), doctest::Contains("records unit 'gptq-int3'"),
                         lowbit::study::UsageError);
  }
  fs::copy_file(root / "rtn-int3.json.bak", out / "units" / "rtn-int3.json", fs::copy_options::overwrite_existing);
  // Deleting run.json does not drop the guard: each unit records its run's settings.
  fs::copy_file(out / "run.json", root / "run.json.bak");
  fs::remove(out / "run.json");
  {
    auto o = tiny_options(model, data, out);
    o.seed = 5;
    StudySetup s = StudySetup::prepare(o, "test");
    CHECK_THROWS_WITH_AS(StudyRunner(s, nullptr, nullptr).run(),
                         doctest::Contains(".json: was computed with a different 'seed'"), lowbit::study::UsageError);
    CHECK(!fs::exists(out / "run.json"));  // not rewritten with the refused settings
  }
  // Two learning rates that would share one unit name are refused before any work.
  {
    auto o = tiny_options(model, data, out);
    o.lr_grid = {1e-3, 1.4e-3};
    StudySetup s = StudySetup::prepare(o, "test");
    CHECK_THROWS_WITH_AS(StudyRunner(s, nullptr, nullptr).run(), doctest::Contains("share the unit name lr1e-03"),
                         lowbit::study::UsageError);
  }
  fs::copy_file(root / "run.json.bak", out / "run.json", fs::copy_options::overwrite_existing);
  // A truncated unit is set aside and recomputed (identically), with a warning.
  {
    const auto unit = out / "units" / "rtn-int3.json";
    const std::string whole = lowbit::io::read_file(unit);
    lowbit::io::write_file_atomic(unit, whole.substr(0, whole.size() / 2));
    FILE* logf = std::tmpfile();
    StudySetup s = StudySetup::prepare(tiny_options(model, data, out), "test");
    const auto again = StudyRunner(s, nullptr, logf).run();
    const std::string text = read_log(logf);
    std::fclose(logf);
    CHECK(text.find("warning: " + unit.string() + " is unreadable") != std::string::npos);
    CHECK(fs::exists(out / "units" / "rtn-int3.json.corrupt"));
    CHECK(again.find("rtn", 3)->test_nll == first.find("rtn", 3)->test_nll);
    CHECK(text.find("gptq-int3: reusing") != std::string::npos);
  }
  // A second run on the same --out while one holds it is refused at once, as
  // FolderBusy (lowbit-study exits 75 for it, and scripts/study_schemes.sh moves on).
  {
    const lowbit::io::FileLock held(out / "lock");
    StudySetup s = StudySetup::prepare(tiny_options(model, data, out), "test");
    CHECK_THROWS_WITH_AS(StudyRunner(s, nullptr, nullptr).run(), doctest::Contains("another lowbit-study is running"),
                         lowbit::study::FolderBusy);
  }

  // A stop request before a unit: Interrupted, and no partial unit file.
  const fs::path out2 = root / "out2";
  std::atomic<bool> stop{true};
  StudySetup stopped = StudySetup::prepare(tiny_options(model, data, out2), "test");
  CHECK_THROWS_AS(StudyRunner(stopped, &stop, nullptr).run(), lowbit::study::Interrupted);
  CHECK(!fs::exists(out2 / "units" / "fp.json"));
  fs::remove_all(root);
}

TEST_CASE("lowbit-study --streaming: one block at a time, the in-memory runner's units") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const fs::path root = fs::temp_directory_path() / ("lowbit_study_streaming_" + std::to_string(::getpid()));
  fs::remove_all(root);
  // Two blocks: GPTQ's second block is calibrated on the first one's quantized output.
  const auto model = write_tiny_llama2c(root / "model", data / "stories260K" / "tok512.bin", 2);
  const auto options = [&](const fs::path& out, bool streaming) {
    StudyOptions o = tiny_options(model, data, out);
    o.methods = {lowbit::study::Method::rtn, lowbit::study::Method::gptq};
    o.landscape = false;
    o.save = false;
    o.streaming = streaming;
    return o;
  };
  StudySetup memory_setup = StudySetup::prepare(options(root / "memory", false), "test");
  const auto memory = StudyRunner(memory_setup, nullptr, nullptr).run();
  StudySetup streaming_setup = StudySetup::prepare(options(root / "streaming", true), "test");
  CHECK(streaming_setup.model.is_streaming());
  FILE* log = std::tmpfile();
  REQUIRE(log != nullptr);
  const auto streamed = StudyRunner(streaming_setup, nullptr, log).run();
  std::fclose(log);

  CHECK(streamed.fp_test_nll == doctest::Approx(memory.fp_test_nll).epsilon(1e-5));
  CHECK(streamed.fp_ood_nll == doctest::Approx(memory.fp_ood_nll).epsilon(1e-5));
  REQUIRE(streamed.units.size() == 2);
  REQUIRE(memory.units.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& s = streamed.units[i];
    const auto& m = memory.units[i];
    INFO(s.method << " " << s.bits);
    CHECK((s.method == m.method && s.bits == m.bits));
    CHECK(s.test_nll == doctest::Approx(m.test_nll).epsilon(1e-5));
    CHECK(s.val_nll == doctest::Approx(m.val_nll).epsilon(1e-5));
    CHECK(s.ood_nll == doctest::Approx(m.ood_nll).epsilon(1e-5));
    CHECK(s.weight_distance == doctest::Approx(m.weight_distance).epsilon(1e-5));
    CHECK(s.weight_bytes == m.weight_bytes);
    REQUIRE(s.layers.size() == 14);
    REQUIRE(m.layers.size() == 14);
    for (std::size_t k = 0; k < s.layers.size(); ++k) {
      INFO(s.layers[k].name);
      CHECK(s.layers[k].name == m.layers[k].name);
      CHECK(s.layers[k].weight_sq_error == doctest::Approx(m.layers[k].weight_sq_error).epsilon(1e-5));
      CHECK(s.layers[k].output_mse == doctest::Approx(m.layers[k].output_mse).epsilon(1e-4));
      CHECK(s.layers[k].output_mse > 0);
      if (s.method == "gptq") CHECK(s.layers[k].damp == m.layers[k].damp);
      else CHECK(std::isnan(s.layers[k].damp));
    }
  }
  // The units' work folders are gone; the folder records that its units streamed.
  CHECK(!fs::exists(root / "streaming" / "units" / "gptq-int3.blocks"));
  CHECK(!fs::exists(root / "streaming" / "units" / "rtn-int3.blocks"));
  const auto run = lowbit::io::Json::parse(lowbit::io::read_file(root / "streaming" / "run.json"));
  CHECK(run.at("streaming").as_bool());
  CHECK(run.at("model_fingerprint").as_string() ==
        lowbit::io::Json::parse(lowbit::io::read_file(root / "memory" / "run.json")).at("model_fingerprint").as_string());
  // Its units are not reused by an in-memory run, nor the other way round.
  StudySetup mixed = StudySetup::prepare(options(root / "streaming", false), "test");
  CHECK_THROWS_WITH_AS(StudyRunner(mixed, nullptr, nullptr).run(), doctest::Contains("streaming"),
                       lowbit::study::UsageError);

  // A unit stopped after its first block resumes from its work folder: block 0 is
  // taken from there (GPTQ passes the calibration through it), block 1 is quantized,
  // and the unit is the uninterrupted one's, bit for bit.
  {
    StudySetup s = StudySetup::prepare(options(root / "resume", true), "test");
    const auto q = s.options.scheme.with_bits(3);
    int calls = 0;  // two stop checks per layer: block 1's first layer makes the 15th
    lowbit::study::StreamedUnits stopped(s.checkpoint, s.data, s.options, [&] {
      if (++calls == 15) throw lowbit::study::Interrupted("stopped by the test");
    }, nullptr);
    lowbit::study::UnitResult u;
    u.method = "gptq";
    u.bits = 3;
    CHECK_THROWS_AS(stopped.quantize(u, q, "gptq-int3"), lowbit::study::Interrupted);
    const fs::path blocks = root / "resume" / "units" / "gptq-int3.blocks";
    CHECK(fs::exists(blocks / "block-00000.safetensors"));
    CHECK(!fs::exists(blocks / "block-00001.safetensors"));
    FILE* resume_log = std::tmpfile();
    lowbit::study::StreamedUnits resumed(s.checkpoint, s.data, s.options, [] {}, resume_log);
    lowbit::study::UnitResult v;
    v.method = "gptq";
    v.bits = 3;
    resumed.quantize(v, q, "gptq-int3");
    const std::string text = read_log(resume_log);
    std::fclose(resume_log);
    CHECK(text.find("1 of 2 blocks from an interrupted run") != std::string::npos);
    const auto& whole = *streamed.find("gptq", 3);
    CHECK(v.test_nll == whole.test_nll);
    CHECK(v.val_nll == whole.val_nll);
    CHECK(v.weight_distance == whole.weight_distance);
    CHECK(fs::exists(blocks / "block-00001.safetensors"));  // kept until the result is stored,
    resumed.discard("gptq-int3");                           // which the runner does first
    CHECK(!fs::exists(blocks));
  }
  fs::remove_all(root);
}

TEST_CASE("lowbit-study with a llama.cpp block format: each layer in its type, the rest full precision; resumes") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const fs::path root = fs::temp_directory_path() / ("lowbit_study_block_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto model = write_tiny_llama2c(root / "model", data / "stories260K" / "tok512.bin");
  auto o = tiny_options(model, data, root / "out");
  o.scheme = lowbit::QuantSpec::parse("q4_0");
  o.bits = {4};
  o.save = false;
  o.quick = true;
  StudySetup setup = StudySetup::prepare(o, "test");
  const auto first = StudyRunner(setup, nullptr, nullptr).run();
  // dim 16, hidden 32: only the down projection's rows (32 wide) are whole q4_0 blocks.
  REQUIRE(first.notes.size() == 1);
  CHECK(first.notes[0].find("q4_0 1,") != std::string::npos);
  CHECK(first.notes[0].find("full precision (no block type fits: fp32 here, F16 in llama.cpp) 6") != std::string::npos);
  CHECK(first.grid == "q4_0");
  REQUIRE(first.units.size() == 3);
  for (const auto& u : first.units) {
    INFO(u.method);
    CHECK(u.bits == 4);
    CHECK(fs::exists(root / "out" / "units" / (u.method + "-q4_0.json")));
    CHECK(std::isfinite(u.test_nll));
    int changed = 0;
    for (const auto& l : u.layers) changed += l.weight_sq_error > 0 ? 1 : 0;
    CHECK(changed == 1);  // the other six stay at full precision
  }
  // Bytes: one 18-byte q4_0 block per 32-weight row of the down projection as llama.cpp
  // stores it; the six others stay fp32, as everything else.
  double bytes = first.fp_weight_bytes;
  for (const auto& l : setup.model.linear_layers()) {
    const double n = static_cast<double>(l.out_features() * l.in_features());
    if (l.in_features() == 32) bytes += -4.0 * n + 18.0 * static_cast<double>(l.out_features());
  }
  for (const auto& u : first.units) CHECK(u.weight_bytes == doctest::Approx(bytes));
  StudySetup again = StudySetup::prepare(o, "test");
  FILE* log = std::tmpfile();
  const auto second = StudyRunner(again, nullptr, log).run();
  const std::string text = read_log(log);
  std::fclose(log);
  CHECK(text.find("gptq-q4_0: reusing") != std::string::npos);
  CHECK(text.find("epoch 1") == std::string::npos);
  for (std::size_t i = 0; i < 3; ++i) CHECK(second.units[i].test_nll == first.units[i].test_nll);
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
  // Held-out stories exist for the TinyStories data only.
  o = tiny_options(fs::path(LOWBIT_SOURCE_DIR) / "models" / "pd-200k", data, root / "out");
  o.heldout = true;
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("--heldout"), UsageError);
  o = tiny_options(model, data, root / "out");
  o.scheme = lowbit::QuantSpec::parse("int4:g64:hist");
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("--scheme int4:g64:hist: layer"), UsageError);
  // A corrupt checkpoint is an Error naming the file.
  { std::ofstream(root / "model" / "bad.bin") << "not a model"; }
  o = tiny_options(root / "model" / "bad.bin", data, root / "out");
  CHECK_THROWS_WITH_AS(StudySetup::prepare(o, "t"), doctest::Contains("bad.bin"), lowbit::Error);
  fs::remove_all(root);
}

// The study's data for models made by lowbit_pretrain (GPT-2 folder + compact_vocab.json):
// the Python-docs splits mapped to compact ids, checked against the streams built
// independently here, on a small synthetic corpus laid out like python3.11-doc's.
namespace {

namespace fs = std::filesystem;
using lowbit::study::StudyOptions;
namespace text = lowbit::text;

// A corpus folder with files in every split (names are chosen until each split has
// at least `per_split` files), each a few hundred words of reStructuredText-like prose.
fs::path write_corpus(const fs::path& root, int per_split) {
  fs::create_directories(root / "library");
  int counts[3] = {0, 0, 0};
  const char* words[] = {"the", "module", "function", "returns", "a", "list", "of", "objects", "when", "called",
                         "with", "an", "argument", "``None``", "raises", ":exc:`ValueError`", "see", "also", "class"};
  for (int i = 0; counts[0] < 4 * per_split || counts[1] < per_split || counts[2] < per_split; ++i) {
    const std::string rel = "library/mod" + std::to_string(i) + ".rst.txt";
    const auto split = static_cast<int>(text::python_docs_split_of(rel));
    if (split != 0 && counts[split] >= per_split) continue;
    ++counts[split];
    std::string body = ":mod:`mod" + std::to_string(i) + "` --- Module " + std::to_string(i) + "\n" +
                       std::string(30, '=') + "\n\n";
    for (int w = 0; w < 400; ++w) body += std::string(words[(w * 7 + i * 3) % 19]) + (w % 13 == 12 ? ".\n" : " ");
    lowbit::io::write_file_atomic(root / rel, body);
  }
  return root;
}

struct Fixture {
  fs::path root, corpus, model;
  text::CompactVocab vocab;
  std::vector<int> train, validation, test;  // compact ids, built here
};

// A tiny GPT-2 model (random weights) over the compact vocabulary of the corpus's
// train split, saved the way lowbit_pretrain exports one.
Fixture make_fixture(const fs::path& data, const std::string& tag, const std::string& fingerprint_override = "") {
  Fixture f;
  f.root = fs::temp_directory_path() / ("lowbit_study_pd_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(f.root);
  f.corpus = write_corpus(f.root / "corpus", 3);
  const auto docs = text::PythonDocs::open(f.corpus);
  const auto tok = text::Gpt2Tokenizer::from_dir(data / "gpt2-bpe");
  const auto gpt2_train = text::encode_python_docs(docs, text::Split::train, tok, 1);
  f.vocab = text::CompactVocab::from_tokens(gpt2_train);
  f.train = f.vocab.to_compact(gpt2_train);
  f.validation = f.vocab.to_compact(text::encode_python_docs(docs, text::Split::validation, tok, 1));
  f.test = f.vocab.to_compact(text::encode_python_docs(docs, text::Split::test, tok, 1));
  auto cfg = lowbit::test::tiny_config(lowbit::nn::Architecture::gpt2);
  cfg.vocab = f.vocab.size();
  cfg.context = 32;
  lowbit::nn::Transformer m(cfg, 3);
  f.model = f.root / "model";
  lowbit::nn::save_hf(m, f.model, lowbit::nn::SaveDType::f32,
                      {{"lowbit.corpus_fingerprint",
                        fingerprint_override.empty() ? docs.fingerprint_hex() : fingerprint_override}});
  f.vocab.save(f.model / "compact_vocab.json");
  return f;
}

StudyOptions options(const Fixture& f, const fs::path& data) {
  StudyOptions o;
  o.model = f.model;
  o.data = data;
  o.corpus = f.corpus;
  o.out = f.root / "out";
  o.calib = 5;
  o.seq_len = 24;
  o.seed = 7;
  return o;
}

bool same(std::span<const int> a, std::span<const int> b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

}  // namespace

TEST_CASE("study data for a lowbit_pretrain model: Python-docs splits in compact ids") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const Fixture f = make_fixture(data, "splits");
  const StudyOptions o = options(f, data);
  const auto model = lowbit::nn::Transformer::load(f.model);
  const auto d = lowbit::study::load_study_data(o, model.config(), f.model, data, 4);

  // Calibration: the seeded draw from the train split, 24 tokens each.
  const auto want_calib = text::calibration_windows(f.train, 5, 24, 7);
  REQUIRE(d.calibration.size() == want_calib.size());
  for (std::size_t i = 0; i < want_calib.size(); ++i) CHECK(same(d.calibration[i], want_calib[i]));
  // Validation: evenly spread context windows; test: every context window.
  const auto want_val = text::spread_windows(text::eval_windows(f.validation, 32),
                                             lowbit::study::python_docs_validation_windows);
  REQUIRE(d.validation.size() == want_val.size());
  for (std::size_t i = 0; i < want_val.size(); ++i) CHECK(same(d.validation[i], want_val[i]));
  const auto want_test = text::eval_windows(f.test, 32);
  REQUIRE(d.test.size() == want_test.size());
  REQUIRE(!d.test.empty());
  for (std::size_t i = 0; i < want_test.size(); ++i) CHECK(same(d.test[i], want_test[i]));
  // Out of domain: WikiText-2 in compact ids, where unknown GPT-2 ids map to unk.
  REQUIRE(d.ood.size() == 4);
  for (auto w : d.ood) {
    CHECK(w.size() == 32);
    for (int id : w) CHECK((id >= 0 && id <= f.vocab.unk_id()));
  }
  CHECK(d.description.find("Python 3.11 docs") != std::string::npos);
  CHECK(d.description.find("NOTE") == std::string::npos);
  fs::remove_all(f.root);
}

TEST_CASE("study data for a lowbit_pretrain model: a foreign corpus is noted, bad inputs are named") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const Fixture f = make_fixture(data, "errors", "0123456789abcdef");
  StudyOptions o = options(f, data);
  const auto model = lowbit::nn::Transformer::load(f.model);
  const auto d = lowbit::study::load_study_data(o, model.config(), f.model, data, 0);
  CHECK(d.description.find("NOTE: corpus fingerprint") != std::string::npos);
  CHECK(d.description.find("0123456789abcdef") != std::string::npos);
  CHECK(d.ood.empty());

  o.corpus = f.root / "no-such-corpus";
  CHECK_THROWS_WITH_AS(lowbit::study::load_study_data(o, model.config(), f.model, data, 0),
                       doctest::Contains("--corpus"), lowbit::study::UsageError);

  // A vocabulary file that does not fit the model's embedding.
  o.corpus = f.corpus;
  text::CompactVocab::from_ids({1, 2, 3}).save(f.model / "compact_vocab.json");
  CHECK_THROWS_WITH_AS(lowbit::study::load_study_data(o, model.config(), f.model, data, 0),
                       doctest::Contains("compact_vocab.json"), lowbit::Error);
  fs::remove_all(f.root);
}

TEST_CASE("lowbit-study on a lowbit_pretrain model: the fp unit scores the test split as evaluate() does") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const Fixture f = make_fixture(data, "run");
  StudyOptions o = options(f, data);
  o.bits = {4};
  o.methods = {lowbit::study::Method::rtn};
  FILE* log = std::tmpfile();
  REQUIRE(log != nullptr);
  auto setup = lowbit::study::StudySetup::prepare(o, "test");
  const auto res = lowbit::study::StudyRunner(setup, nullptr, log).run();
  std::fclose(log);
  const auto model = lowbit::nn::Transformer::load(f.model);
  const auto want = lowbit::nn::evaluate(model, text::eval_windows(f.test, 32)).mean_nll();
  CHECK(res.fp_test_nll == doctest::Approx(want).epsilon(1e-9));
  const auto* rtn = res.find("rtn", 4);
  REQUIRE(rtn != nullptr);
  CHECK(std::isfinite(rtn->test_nll));
  CHECK(rtn->layers.size() == 8);  // 2 blocks × (qkv, proj, fc, fc-proj)
  fs::remove_all(f.root);
}
