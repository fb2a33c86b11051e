// The study's data for a model: calibration / fine-tuning sequences, validation and
// test windows, and an out-of-domain test, each as token windows the model reads.
//
//  * llama2.c models (stories260K): TinyStories-valid.first246.txt split by story as
//    ../shared/README.md fixes it — calibration 0–127 (one sequence per story, at most
//    --seq-len tokens), validation 128–165, test 166–245 (every token after BOS of each
//    story predicted once, windows of the model's context); the tokenizer is the
//    tok512.bin / tokenizer.bin beside the checkpoint, or for a GGUF model with a
//    SentencePiece vocabulary the same tokenizer built from the file's
//    (nn/gguf_vocab_read.hpp). Out of domain: WikiText-2 raw test with the same
//    tokenizer, the first windows of the model's context.
//  * Hugging Face GPT-2 models: WikiText-2 with GPT-2's BPE. The shared data has no
//    train split, so calibration windows (random, seeded) come from the first 80% of
//    validation, hyper-parameters are chosen on its last 20%, and the test split is
//    reported (../shared/README.md); no separate out-of-domain set.
//  * GPT-2 models made by lowbit_pretrain (a compact_vocab.json beside config.json):
//    the Python 3.11 docs they were trained on, split by python-docs-split-v1
//    (docs/data.md) and mapped to the model's compact ids. Calibration: --calib
//    windows of --seq-len tokens drawn (seeded) from the train split; validation: 128
//    windows of the model's context spread evenly over the validation split; test:
//    the whole test split in windows of the context (the same windows as the model's
//    results.json "test" figure). Out of domain: WikiText-2 raw test, first windows.
#pragma once

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/nn/config.hpp"
#include "lowbit/nn/gguf_vocab_read.hpp"
#include "lowbit/study/options.hpp"
#include "lowbit/text/gpt2_bpe.hpp"
#include "lowbit/text/tokenizer_json.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/text/compact_vocab.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"
#include "lowbit/text/python_docs.hpp"
#include "lowbit/text/tinystories.hpp"
#include "lowbit/text/wikitext.hpp"
#include "lowbit/text/windows.hpp"

namespace lowbit::study {

struct StudyData {
  std::string description;   ///< one line for the report
  std::string ood_description;
  std::vector<std::span<const int>> calibration;  ///< GPTQ's calibration = QAFT's training sequences
  std::vector<std::span<const int>> validation;   ///< QAFT learning-rate selection
  std::vector<std::span<const int>> test;
  std::vector<std::span<const int>> ood;          ///< may be empty
  std::vector<std::span<const int>> heldout;      ///< --heldout: text no choice saw (not in the run's identity)
  std::string heldout_description;
  /// Token buffers the windows point into (stable: each buffer is its own allocation).
  std::vector<std::unique_ptr<std::vector<int>>> storage;

  std::span<const int> keep(std::vector<int> tokens) {
    storage.push_back(std::make_unique<std::vector<int>>(std::move(tokens)));
    return *storage.back();
  }
  [[nodiscard]] static std::int64_t predicted(const std::vector<std::span<const int>>& w) {
    std::int64_t n = 0;
    for (auto s : w) n += static_cast<std::int64_t>(s.size()) - 1;
    return n;
  }
};

/// --heldout's windows: every story of TinyStories-valid.next.txt (the stories after
/// the study's split, never used for a choice), windowed as the test split is.
template <class Encode>
void add_tinystories_heldout(StudyData& d, const std::filesystem::path& data_dir, long context, Encode&& encode) {
  const auto file = data_dir / "tinystories" / "TinyStories-valid.next.txt";
  if (!std::filesystem::exists(file))
    throw UsageError("--heldout: '" + file.string() + "' is missing (see ../shared/README.md)");
  const auto stories = text::tinystories_stories(io::read_file(file));
  for (const auto& s : stories)
    for (auto w : text::story_windows(d.keep(encode(s)), context)) d.heldout.push_back(w);
  d.heldout_description = "TinyStories-valid.next (" + std::to_string(stories.size()) + " stories, " +
                          std::to_string(StudyData::predicted(d.heldout)) + " tokens)";
}

/// The tokenizer file beside a llama2.c checkpoint.
inline std::filesystem::path llama2c_tokenizer_path(const std::filesystem::path& model) {
  for (const char* name : {"tok512.bin", "tokenizer.bin"}) {
    const auto p = model.parent_path() / name;
    if (std::filesystem::exists(p)) return p;
  }
  lowbit::detail::fail("no llama2.c tokenizer (tok512.bin or tokenizer.bin) beside the model '", model.string(), "'");
}

/// The tokenizer a GGUF model carries (nn/gguf_vocab_read.hpp): SentencePiece
/// vocabularies only, as llama2.c's tokenizer.
inline text::Llama2cTokenizer gguf_tokenizer(const std::filesystem::path& model, int vocab) {
  const nn::GgufVocab v = nn::read_gguf_vocab(io::GgufFile::open(model));
  lowbit::detail::check(v.model == "llama", "study data: '", model.string(), "' has a '", v.model,
                        "' vocabulary; lowbit tokenizes calibration and evaluation text for a GGUF model with a "
                        "SentencePiece ('llama') vocabulary only: use the Hugging Face folder it was converted "
                        "from (lowbit-quantize can still quantize the GGUF by RTN, without --eval)");
  lowbit::detail::check(v.size() == vocab, "study data: '", model.string(), "' has ", v.size(),
                        " tokens in its vocabulary, the model ", vocab);
  return nn::llama2c_tokenizer_of(v, model.string());
}

/// Out of domain: the first `windows` context windows of WikiText-2 raw test, when the
/// file is there. Only the first windows·context·chars_per_token characters are read
/// and encoded (`encode`: text → the model's ids); `how` qualifies the description.
template <class Encode>
inline void add_wikitext_ood(StudyData& d, const std::filesystem::path& data_dir, long windows, long context,
                             long chars_per_token, const std::string& how, Encode&& encode) {
  const auto raw_path = data_dir / "wikitext-2" / "wiki.test.raw";
  if (windows <= 0 || !std::filesystem::exists(raw_path)) return;
  std::string raw = text::wikitext_hf_join(io::read_file(raw_path));
  raw.resize(std::min(raw.size(), static_cast<std::size_t>(windows * context * chars_per_token)));
  const auto t = d.keep(encode(raw));
  auto w = text::eval_windows(t, context);
  if (static_cast<long>(w.size()) > windows) w.resize(static_cast<std::size_t>(windows));
  d.ood = std::move(w);
  d.ood_description = "WikiText-2 raw test" + how + ", first " + std::to_string(d.ood.size()) + " windows of " +
                      std::to_string(context) + " tokens";
}

/// The compact vocabulary a lowbit_pretrain model carries beside its config.json.
inline std::filesystem::path compact_vocab_path(const std::filesystem::path& model) {
  return model / "compact_vocab.json";
}

/// Validation windows scored per QAFT epoch and learning rate for Python-docs models.
inline constexpr std::size_t python_docs_validation_windows = 128;

/// Study data for a model trained by lowbit_pretrain on the Python docs (see above).
inline StudyData load_python_docs_study_data(const StudyOptions& o, const nn::TransformerConfig& cfg,
                                             const std::filesystem::path& model,
                                             const std::filesystem::path& data_dir, long ood_windows, long seq_len) {
  StudyData d;
  const long context = cfg.context;
  const auto vocab = text::CompactVocab::load(compact_vocab_path(model));
  lowbit::detail::check(vocab.size() == cfg.vocab, "study data: '", compact_vocab_path(model).string(), "' has ",
                        vocab.size(), " ids but the model in '", model.string(), "' has a vocabulary of ", cfg.vocab);
  std::optional<text::PythonDocs> docs;
  try {
    docs = text::PythonDocs::open(o.corpus.empty() ? std::nullopt : std::optional<std::filesystem::path>(o.corpus));
  } catch (const Error& e) {
    throw UsageError(std::string("--corpus: ") + e.what());
  }
  const auto tok = text::Gpt2Tokenizer::from_dir(data_dir / "gpt2-bpe");
  const auto stream = [&](text::Split split) {
    return d.keep(vocab.to_compact(text::encode_python_docs(*docs, split, tok)));
  };
  const auto train = stream(text::Split::train), valid = stream(text::Split::validation),
             test = stream(text::Split::test);
  if (static_cast<long>(train.size()) < seq_len)
    throw UsageError("--corpus " + docs->root().string() + ": the train split holds only " +
                     std::to_string(train.size()) + " tokens, fewer than one sequence of " + std::to_string(seq_len));
  d.calibration = text::calibration_windows(train, o.calib, seq_len, o.seed);
  d.validation = text::spread_windows(text::eval_windows(valid, context), python_docs_validation_windows);
  d.test = text::eval_windows(test, context);
  lowbit::detail::check(!d.validation.empty() && !d.test.empty(), "study data: the validation or test split of '",
                        docs->root().string(), "' is shorter than one window of ", context, " tokens");
  // The model records the corpus it was trained on; a different corpus (another
  // python3.11-doc version) changes every split, so the report says so.
  std::string note;
  const auto meta = io::SafetensorsFile::open(model / "model.safetensors").metadata();
  if (const auto it = meta.find("lowbit.corpus_fingerprint"); it != meta.end() && it->second != docs->fingerprint_hex())
    note = "; NOTE: corpus fingerprint " + docs->fingerprint_hex() + " differs from the model's training corpus " +
           it->second;
  d.description = "Python 3.11 docs (" + std::string(text::python_docs_split_version) + ", fingerprint " +
                  docs->fingerprint_hex() + ", compact vocabulary of " + std::to_string(vocab.size()) + "): " +
                  std::to_string(o.calib) + " calibration windows of " + std::to_string(seq_len) +
                  " tokens from the train split (seed " + std::to_string(o.seed) + "), selection on " +
                  std::to_string(d.validation.size()) + " validation windows, test split in " +
                  std::to_string(d.test.size()) + " windows of " + std::to_string(context) + note;
  add_wikitext_ood(d, data_dir, ood_windows, context, 8, " (GPT-2 BPE, compact ids)",
                   [&](const std::string& raw) { return vocab.to_compact(tok.encode(raw)); });
  return d;
}

/// `ood_windows`: how many context-length windows of the out-of-domain text to score.
inline StudyData load_study_data(const StudyOptions& o, const nn::TransformerConfig& cfg,
                                 const std::filesystem::path& model, const std::filesystem::path& data_dir,
                                 long ood_windows) {
  StudyData d;
  const long context = cfg.context;
  const long seq_len = o.seq_len > 0 ? o.seq_len : context;
  if (seq_len > context)
    throw UsageError("--seq-len " + std::to_string(seq_len) + ": longer than the model's context of " +
                     std::to_string(context));
  if (!std::filesystem::is_directory(model)) {  // llama2.c, or a GGUF of a SentencePiece vocabulary: TinyStories
    const auto tok = model.extension() == ".gguf" ? gguf_tokenizer(model, cfg.vocab)
                                                  : text::Llama2cTokenizer::load(llama2c_tokenizer_path(model), cfg.vocab);
    const auto file = data_dir / "tinystories" / "TinyStories-valid.first246.txt";
    lowbit::detail::check(std::filesystem::exists(file), "study data: '", file.string(),
                          "' is missing (see ../shared/README.md)");
    const auto stories = text::tinystories_stories(io::read_file(file));
    lowbit::detail::check(stories.size() >= text::tinystories_test.end, "study data: '", file.string(), "' holds ",
                          stories.size(), " stories, the study's split needs ", text::tinystories_test.end);
    const auto calib_n = static_cast<std::size_t>(o.calib);
    const auto available = text::tinystories_calibration.end - text::tinystories_calibration.begin;
    if (calib_n > available)
      throw UsageError("--calib " + std::to_string(o.calib) + ": the TinyStories calibration set has " +
                       std::to_string(available) + " stories (one sequence each)");
    for (std::size_t i = 0; i < calib_n; ++i) {
      auto t = text::tinystories_tokens(tok, stories[text::tinystories_calibration.begin + i]);
      if (static_cast<long>(t.size()) > seq_len) t.resize(static_cast<std::size_t>(seq_len));
      if (t.size() >= 2) d.calibration.push_back(d.keep(std::move(t)));
    }
    const auto windows_of = [&](text::StoryRange r, std::vector<std::span<const int>>& out) {
      for (std::size_t i = r.begin; i < r.end; ++i) {
        const auto t = d.keep(text::tinystories_tokens(tok, stories[i]));
        for (auto w : text::story_windows(t, context)) out.push_back(w);
      }
    };
    windows_of(text::tinystories_validation, d.validation);
    windows_of(text::tinystories_test, d.test);
    if (o.heldout) add_tinystories_heldout(d, data_dir, context, [&](const std::string& s) { return text::tinystories_tokens(tok, s); });
    d.description = "TinyStories-valid.first246 (calibration stories 0-" + std::to_string(calib_n - 1) +
                    " at most " + std::to_string(seq_len) + " tokens each, validation 128-165, test 166-245; " +
                    std::to_string(StudyData::predicted(d.test)) + " test tokens)";
    // About 2.5 characters per token with a 512-token vocabulary: 6 per token is plenty.
    add_wikitext_ood(d, data_dir, ood_windows, context, 6, "",
                     [&](const std::string& raw) { return tok.encode(raw, true, false); });
    return d;
  }
  if (o.heldout)
    throw UsageError("--heldout: only the TinyStories data (llama2.c and GGUF models) has held-out stories; '" +
                     model.string() + "' is studied on other text");
  if (std::filesystem::exists(compact_vocab_path(model)))
    return load_python_docs_study_data(o, cfg, model, data_dir, ood_windows, seq_len);
  // A Hugging Face folder's own tokenizer.json (Llama 2 / 3, Mistral, Qwen), else
  // GPT-2's BPE for a GPT-2 folder.
  std::function<std::vector<int>(const std::string&)> encode;
  std::string tokenizer;
  if (std::filesystem::exists(model / "tokenizer.json")) {
    auto tj = std::make_shared<text::TokenizerJson>(text::TokenizerJson::load(model / "tokenizer.json"));
    lowbit::detail::check(tj->vocab_size() <= cfg.vocab, "study data: '", (model / "tokenizer.json").string(),
                          "' has ", tj->vocab_size(), " tokens, more than the model's vocabulary of ", cfg.vocab);
    encode = [tj](const std::string& t) { return tj->encode(t); };
    tokenizer = "the model's tokenizer.json";
  } else {
    lowbit::detail::check(cfg.arch == nn::Architecture::gpt2, "study data: no tokenizer for the Llama model in '",
                          model.string(), "' (a Hugging Face folder needs its tokenizer.json; a llama2.c model "
                          "its tok512.bin / tokenizer.bin)");
    auto bpe = std::make_shared<text::Gpt2Tokenizer>(text::Gpt2Tokenizer::from_dir(data_dir / "gpt2-bpe"));
    encode = [bpe](const std::string& t) { return bpe->encode(t); };
    tokenizer = "GPT-2 BPE";
  }
  const auto valid = d.keep(encode(text::wikitext_hf_join(text::load_wikitext2(data_dir, "wiki.valid.tokens"))));
  const auto test = d.keep(encode(text::wikitext_hf_join(text::load_wikitext2(data_dir, "wiki.test.raw"))));
  const auto [calib_part, select_part] = text::split_fraction(valid, 0.8);
  d.calibration = text::calibration_windows(calib_part, o.calib, seq_len, o.seed);
  d.validation = text::eval_windows(select_part, context);
  d.test = text::eval_windows(test, context);
  d.description = "WikiText-2 (" + tokenizer + "): " + std::to_string(o.calib) + " calibration windows of " +
                  std::to_string(seq_len) + " tokens from the first 80% of validation (seed " +
                  std::to_string(o.seed) + "), selection on its last 20%, test split in windows of " +
                  std::to_string(context);
  return d;
}

}  // namespace lowbit::study
