// The study's data for models made by lowbit_pretrain (GPT-2 folder + compact_vocab.json):
// the Python-docs splits mapped to compact ids, checked against the streams built
// independently here, on a small synthetic corpus laid out like python3.11-doc's.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "../io/shared_data.hpp"
#include "../nn/tiny_config.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/nn/save.hpp"
#include "lowbit/study/runner.hpp"

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
