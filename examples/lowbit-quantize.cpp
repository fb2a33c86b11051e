// lowbit-quantize: a model into a file an inference engine runs — a GGUF for
// llama.cpp, its linear layers quantized by round-to-nearest, llama.cpp's
// importance-matrix quantizer, GPTQ onto llama.cpp's block grids
// (nn/block_quantize.hpp) or quantization-aware fine-tuning through them
// (study/block_qaft.hpp); or a GPTQ checkpoint in the Hugging Face layout for
// transformers / vLLM, by GPTQ, QAFT or round-to-nearest onto an integer grid
// (nn/gptq_export.hpp).
//
//   lowbit-quantize --model stories260K.bin --scheme q4_0 --method gptq --out s.gguf
//   llama-cli -m s.gguf ...            # or any program on llama.cpp
//   lowbit-quantize --model models/pd-1m --scheme int4:g128:gptq:f16 --method gptq --out pd-1m-gptq/
//
// Models: llama2.c checkpoints (tokenizer beside them; calibrated on the study's
// TinyStories calibration stories) and lowbit's GPT-2 folders (compact vocabulary
// over GPT-2's BPE; calibrated on the Python docs train split), as lowbit-study
// reads them; Hugging Face folders; GGUF files of F32/F16/BF16 tensors, whose
// vocabulary is carried over (and, for a SentencePiece one, tokenizes the
// calibration text). The output format follows from --out (*.gguf, or a folder for a
// GPTQ checkpoint) or --format; --scheme f32|f16|bf16 converts without quantizing.
//
// Exit status: 0 done, 1 failed during the work, 2 bad flags or unreadable inputs
// (before any work), 130 interrupted (no output file is left behind).
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include <lowbit/core/cli.hpp>
#include <lowbit/core/tool_main.hpp>
#include <lowbit/io/file.hpp>
#include <lowbit/nn/block_quantize.hpp>
#include <lowbit/nn/blockwise.hpp>
#include <lowbit/nn/blockwise_gptq.hpp>
#include <lowbit/nn/gguf_model.hpp>
#include <lowbit/nn/gguf_vocab_read.hpp>
#include <lowbit/nn/gptq_export.hpp>
#include <lowbit/nn/llama_cpp_presets.hpp>
#include <lowbit/autograd/thread_pool.hpp>
#include <lowbit/nn/evaluate.hpp>
#include <lowbit/nn/evaluate_blockwise.hpp>
#include <lowbit/study/block_qaft.hpp>
#include <lowbit/study/data.hpp>
#include <lowbit/study/options.hpp>
#include <lowbit/study/progress.hpp>

namespace {

namespace fs = std::filesystem;

std::atomic<bool> stop_requested{false};
extern "C" void on_interrupt(int) {
  if (stop_requested.exchange(true)) std::_Exit(130);
}

struct Interrupted {};

constexpr const char* usage =
    "usage: lowbit-quantize --model PATH --scheme SPEC --out FILE.gguf|DIR [options]\n"
    "\n"
    "  --model PATH       a llama2.c checkpoint (.bin) with its tokenizer (tok<N>.bin or\n"
    "                     tokenizer.bin) beside it, or a Hugging Face folder: config.json,\n"
    "                     model.safetensors or shards + model.safetensors.index.json, F32,\n"
    "                     F16 or BF16, Llama family (tokenizer.json, tokenizer_config.json)\n"
    "                     or GPT-2 (lowbit's pd-* carry compact_vocab.json), or a GGUF file\n"
    "                     of F32, F16 or BF16 tensors (its vocabulary is carried over; with\n"
    "                     a SentencePiece vocabulary it is calibrated as llama2.c models\n"
    "                     are, a byte-level one takes rtn only). rtn, imatrix\n"
    "                     and gptq run block by block, one block widened at a time; an\n"
    "                     interrupted run resumes from OUT.blocks/ with the same command\n"
    "  --scheme SPEC      GGUF: a llama.cpp type, q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0 q3_k\n"
    "                     q2_k tq2_0 iq4_nl mxfp4 (rows that are not whole blocks take\n"
    "                     llama.cpp's fallback, or F16), or a llama-quantize preset with its\n"
    "                     mixture of types: Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q4_K_M Q4_K_S\n"
    "                     Q4_1 Q4_0 Q3_K_L Q3_K_M Q2_K IQ4_NL. GPTQ checkpoint: an integer grid\n"
    "                     with float16 scales, 2, 3, 4 or 8 bits, e.g. int4:g128:gptq:f16\n"
    "                     or int4:g128:asym:f16 (layers not 32-divisible stay float).\n"
    "                     f32, f16 or bf16: a GGUF of the model unquantized (a conversion)\n"
    "  --out FILE.gguf|DIR  the output: a GGUF file, or a folder for a GPTQ checkpoint\n"
    "                     (written to temporary files, then renamed)\n"
    "  --scheme-for P=T   GGUF: tensors whose GGUF name matches the regular expression P\n"
    "                     take llama.cpp type T instead (repeatable, first match wins;\n"
    "                     llama-quantize's --tensor-type), e.g. --scheme-for ffn_down=q6_k\n"
    "  --format F         gguf or gptq (default: from --out)\n"
    "  --method M         rtn (round-to-nearest; for GGUF llama.cpp's quantizer, default),\n"
    "                     imatrix (GGUF: with an importance matrix from calibration data),\n"
    "                     gptq (GPTQ onto the grid), qaft (quantization-aware fine-tuning:\n"
    "                     the layers trained through the scheme's round-to-nearest on the\n"
    "                     calibration sequences, as lowbit-study's QAFT, then rtn)\n"
    "  --calib N          calibration sequences for imatrix, gptq and qaft (default 128)\n"
    "  --seq-len T        tokens per calibration sequence (default: the model's context;\n"
    "                     TinyStories stories are cut at T)\n"
    "  --lr LIST          QAFT learning rates; each is trained and the one with the lower\n"
    "                     NLL on the study's validation windows is written (default 1e-4,1e-3)\n"
    "  --epochs E         QAFT epochs over the calibration sequences (default 1)\n"
    "  --data DIR         lowbit's data folder (default $LOWBIT_DATA or ../shared/data)\n"
    "  --damp P           GPTQ's percdamp (default 0.01)\n"
    "  --act-order        GPTQ in decreasing diag(H) order\n"
    "  --eval             afterwards, the NLL of the model and of what was written on the\n"
    "                     study's test windows for this model, both one block at a time\n"
    "  --eval-windows N   --eval on the first N test windows only (a quick check)\n"
    "  --threads N        worker threads, BLAS included (default: LOWBIT_THREADS, else all cores)\n";

enum class Format { gguf, gptq };

struct Options {
  fs::path model, out;
  std::optional<fs::path> data;
  Format format = Format::gguf;
  lowbit::QuantSpec scheme;
  std::string preset;  ///< a llama-quantize preset (Q4_K_M), or empty
  lowbit::nn::BlockMethod method = lowbit::nn::BlockMethod::rtn;
  long calib = 128;
  long seq_len = 0;  ///< 0: the model's context
  std::vector<double> lrs = {1e-4, 1e-3};  ///< QAFT: the study's grid
  long epochs = 1;
  int threads = 0;  ///< 0: all cores
  bool eval = false;  ///< --eval: the test NLL of the model and of the output, block by block
  long eval_windows = 0;  ///< --eval-windows: the first N test windows (0: all)
  std::vector<std::string> scheme_for;  ///< GGUF mixture: PATTERN=TYPE
  std::optional<std::uint32_t> float_type;  ///< --scheme f32|f16|bf16: an unquantized GGUF
  lowbit::GptqOptions gptq;
};

[[noreturn]] void bad(const std::string& flag, const std::string& why) {
  throw lowbit::Error(flag + ": " + why);
}

/// The integer value `v` of `flag`, at least `min`.
long integer_flag(const std::string& flag, const std::string& v, long min) {
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE || n < min)
    bad(flag + " " + v, "must be an integer of at least " + std::to_string(min));
  return n;
}

/// --scheme with its --scheme-for overrides, which win over a preset's mixture.
lowbit::nn::BlockPlan plan_of(const Options& o, const lowbit::nn::TransformerConfig* c = nullptr) {
  lowbit::nn::BlockPlan plan(o.scheme);
  for (const auto& p : o.scheme_for) plan.add(p, "--scheme-for");
  if (!o.preset.empty() && c != nullptr)
    plan.append(lowbit::nn::llama_cpp_preset(o.preset, *c, lowbit::nn::uses_importance(o.method)));
  return plan;
}

Options parse(const std::vector<std::string>& args) {
  Options o;
  bool scheme = false;
  std::string format, scheme_text;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& f = args[i];
    const auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) bad(f, "needs a value");
      return args[++i];
    };
    if (f == "--model") {
      o.model = value();
    } else if (f == "--out") {
      o.out = value();
    } else if (f == "--data") {
      o.data = fs::path(value());
    } else if (f == "--scheme") {
      const std::string& v = value();
      o.float_type.reset();  // the last --scheme counts
      o.preset.clear();
      scheme_text = v;
      if (const auto t = lowbit::nn::gguf_float_type(v)) {
        o.float_type = t;  // not a quantization scheme: the model converted as it is
      } else if (const auto* p = lowbit::nn::find_llama_cpp_preset(v); p != nullptr && p->name == v) {
        o.preset = v;  // upper case, as llama-quantize spells its presets; q4_k is the plain type
        o.scheme = lowbit::QuantSpec::parse(p->base, "--scheme");
      } else {
        o.scheme = lowbit::QuantSpec::parse(v, "--scheme");
      }
      scheme = true;
    } else if (f == "--scheme-for") {
      o.scheme_for.push_back(value());
    } else if (f == "--format") {
      format = value();
      if (format != "gguf" && format != "gptq") bad("--format " + format, "must be gguf or gptq");
    } else if (f == "--method") {
      o.method = lowbit::nn::parse_block_method(value(), "--method");
    } else if (f == "--calib") {
      o.calib = integer_flag("--calib", value(), 1);
    } else if (f == "--seq-len") {
      o.seq_len = integer_flag("--seq-len", value(), 2);
    } else if (f == "--damp") {
      const std::string& v = value();
      char* end = nullptr;
      o.gptq.percdamp = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(o.gptq.percdamp > 0.0)) bad("--damp " + v, "must be a positive number");
    } else if (f == "--threads") {
      const std::string& v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n <= 0) bad("--threads " + v, "must be a positive integer");
      if (n > lowbit::study::StudyOptions::max_threads)
        bad("--threads " + v, "is more threads than lowbit supports (at most " +
                                  std::to_string(lowbit::study::StudyOptions::max_threads) + ")");
      o.threads = static_cast<int>(n);
    } else if (f == "--lr") {
      o.lrs = lowbit::cli::parse_positive_list(f, value());
    } else if (f == "--epochs") {
      o.epochs = lowbit::cli::parse_positive(f, value());
    } else if (f == "--act-order") {
      o.gptq.act_order = true;
    } else if (f == "--eval") {
      o.eval = true;
    } else if (f == "--eval-windows") {
      o.eval_windows = integer_flag("--eval-windows", value(), 1);
      o.eval = true;
    } else {
      bad(f, "is not an option (see --help)");
    }
  }
  if (o.model.empty()) bad("--model", "is required");
  if (!scheme) bad("--scheme", "is required");
  if (o.out.empty()) bad("--out", "is required");
  const bool gguf_name = o.out.extension() == ".gguf";
  if (format.empty()) {
    if (o.out.extension() == ".safetensors")
      bad("--out " + o.out.string(), "lowbit's own packed format is written by lowbit-study --save, not here yet");
    if (!gguf_name && o.out.has_extension())
      bad("--out " + o.out.string(), "must end in .gguf, or name a folder for a GPTQ checkpoint (or give --format)");
    format = gguf_name ? "gguf" : "gptq";
  }
  o.format = format == "gguf" ? Format::gguf : Format::gptq;
  if (o.format == Format::gguf && !gguf_name) bad("--out " + o.out.string(), "a GGUF file must end in .gguf");
  if (o.format == Format::gptq && gguf_name) bad("--out " + o.out.string(), "a GPTQ checkpoint is a folder, not *.gguf");
  if (o.float_type) {  // a conversion: nothing to choose codes for
    if (o.format != Format::gguf) bad("--scheme " + scheme_text, "writes a GGUF file; give --out FILE.gguf");
    if (o.method != lowbit::nn::BlockMethod::rtn)
      bad("--method " + std::string(lowbit::nn::block_method_name(o.method)),
          "does not apply to --scheme " + scheme_text + ", which writes the model unquantized");
    if (!o.scheme_for.empty()) bad("--scheme-for " + o.scheme_for.front(), "does not apply to an unquantized GGUF");
    if (!fs::is_regular_file(o.model) && !fs::is_directory(o.model))
      bad("--model " + o.model.string(), "is neither a llama2.c .bin file, a GGUF file nor a model folder");
    return o;
  }
  if (o.format == Format::gguf && !o.scheme.is_block())
    bad("--scheme " + o.scheme.str(), "is not a llama.cpp type (GGUF holds q8_0 … iq4_nl)");
  if (o.format == Format::gguf) (void)plan_of(o);  // a bad --scheme-for is an error before any work
  if (o.format == Format::gptq && !o.preset.empty())
    bad("--scheme " + o.preset, "is a llama-quantize preset; a GPTQ checkpoint takes an integer grid");
  if (o.format == Format::gptq && !o.scheme_for.empty())
    bad("--scheme-for " + o.scheme_for.front(), "mixes llama.cpp types; it applies to GGUF output only");
  if (o.format == Format::gptq) {
    try {
      lowbit::nn::check_gptq_checkpoint_scheme(o.scheme);
    } catch (const lowbit::Error& e) {
      bad("--scheme " + o.scheme.str(), e.what());
    }
    if (o.method == lowbit::nn::BlockMethod::rtn_imatrix)
      bad("--method imatrix", "is llama.cpp's quantizer; a GPTQ checkpoint takes rtn, gptq or qaft");
  }
  if (!fs::is_regular_file(o.model) && !fs::is_directory(o.model))
    bad("--model " + o.model.string(), "is neither a llama2.c .bin file, a GGUF file nor a model folder");
  return o;
}

/// A GGUF --model: its tensors must be float (F32, F16, BF16) — quantizing quantized
/// weights again compounds both errors, which llama-quantize also refuses by default.
void check_float_gguf(const fs::path& model) {
  const auto f = lowbit::io::GgufFile::open(model);
  for (const auto& t : f.tensors())
    if (t.ggml_type != 0 && t.ggml_type != 1 && t.ggml_type != 30) {
      const auto info = lowbit::io::ggml_type_info(t.ggml_type);
      bad("--model " + model.string(), "tensor '" + t.name + "' is " + (info ? std::string(info->name) : "of ggml type " +
          std::to_string(t.ggml_type)) + "; lowbit-quantize takes F32, F16 or BF16 GGUF models (quantizing quantized "
          "weights again compounds the errors): give the model it was made from");
    }
}

/// The model's tokenizer as GGUF metadata, found where lowbit-study finds it.
lowbit::nn::GgufVocab vocab_of(const fs::path& model, const lowbit::nn::TransformerConfig& c,
                               const std::optional<fs::path>& data) {
  if (model.extension() == ".gguf") return lowbit::nn::read_gguf_vocab(lowbit::io::GgufFile::open(model));
  if (!fs::is_directory(model))
    return lowbit::nn::gguf_spm_vocab(
        lowbit::text::Llama2cTokenizer::load(lowbit::study::llama2c_tokenizer_path(model), c.vocab));
  if (fs::exists(model / "tokenizer.json")) return lowbit::nn::gguf_hf_folder_vocab(model, c.vocab);
  if (c.arch != lowbit::nn::Architecture::gpt2) {
    std::fprintf(stderr, "lowbit-quantize: note: %s has no tokenizer.json, so the file has no vocabulary "
                 "(tokenizer.ggml.model = no_vocab: llama.cpp loads it and runs it on token ids)\n",
                 model.string().c_str());
    return lowbit::nn::GgufVocab::none();
  }
  const fs::path bpe = lowbit::io::data_dir(data) / "gpt2-bpe";
  if (!fs::exists(lowbit::study::compact_vocab_path(model))) return lowbit::nn::gguf_gpt2_vocab(bpe);
  const auto compact = lowbit::text::CompactVocab::load(lowbit::study::compact_vocab_path(model));
  return lowbit::nn::gguf_gpt2_vocab(bpe, &compact);
}

/// Where block-by-block quantization keeps its finished blocks (resumable).
fs::path work_dir_of(const fs::path& out) { return fs::path(out.string() + ".blocks"); }

/// Layers whose rows are not whole blocks take llama.cpp's fallback: says which.
void report_fallbacks(const lowbit::nn::Transformer& m, const lowbit::nn::BlockPlan& plan) {
  for (const auto& l : m.linear_layers()) {
    const lowbit::QuantSpec& asked = plan.spec_for(m.config().arch, l.name);
    const auto fit = lowbit::nn::fitted_block_spec(asked, l);
    if (fit && fit->block == asked.block) continue;
    std::fprintf(stderr, "lowbit-quantize: %s: rows of %jd weights are not whole %s blocks; written as %s\n",
                 l.name.c_str(), static_cast<std::intmax_t>(l.in_features()), asked.str().c_str(),
                 fit ? fit->str().c_str() : "f16");
  }
}

/// QAFT from the checkpoint at each of --lr's rates, `train_and_encode(model, lr)`
/// training and encoding a fresh copy; the copy (and its encoding) with the lower NLL
/// on the study's validation windows wins, as lowbit-study chooses.
template <class Encoded, class F>
std::pair<std::unique_ptr<lowbit::nn::Transformer>, Encoded> best_qaft(const Options& o, const lowbit::nn::Checkpoint& ck,
                                                                       const lowbit::study::StudyData& data,
                                                                       F&& train_and_encode) {
  std::unique_ptr<lowbit::nn::Transformer> best;
  Encoded best_encoded{};
  double best_nll = 0, best_lr = 0;
  for (const double lr : o.lrs) {
    auto m = std::make_unique<lowbit::nn::Transformer>(ck);
    Encoded e = train_and_encode(*m, lr);
    const double nll = lowbit::nn::evaluate(*m, data.validation).mean_nll();
    std::fprintf(stderr, "lowbit-quantize: qaft learning rate %g: validation NLL %.5f\n", lr, nll);
    if (!best || nll < best_nll) {
      best = std::move(m);
      best_encoded = std::move(e);
      best_nll = nll;
      best_lr = lr;
    }
  }
  if (o.lrs.size() > 1) std::fprintf(stderr, "lowbit-quantize: qaft writes learning rate %g\n", best_lr);
  return {std::move(best), std::move(best_encoded)};
}

using ProgressFn = std::function<void(std::size_t, std::size_t)>;

/// --eval: the test windows' NLL of the model and of the file just written, both
/// evaluated one block at a time (nn/evaluate_blockwise.hpp; the written GGUF's or
/// GPTQ checkpoint's tensors are decoded as each block is read), so the check costs
/// no more memory than the quantization did.
void evaluate_output(const Options& o, const lowbit::study::StudyData& data,
                     const std::function<ProgressFn(std::string)>& tracker) {
  std::vector<std::span<const int>> windows = data.test;
  if (o.eval_windows > 0 && static_cast<std::size_t>(o.eval_windows) < windows.size())
    windows.resize(static_cast<std::size_t>(o.eval_windows));
  const auto nll = [&](lowbit::nn::Checkpoint ck, const std::string& what) {
    lowbit::nn::Transformer m =
        lowbit::nn::Transformer::streaming(std::make_shared<const lowbit::nn::Checkpoint>(std::move(ck)));
    lowbit::nn::BlockwiseEvalOptions eo;
    eo.progress = tracker("lowbit-quantize: evaluating " + what);
    return lowbit::nn::evaluate_blockwise(m, windows, eo);
  };
  const auto model = nll(lowbit::nn::load_checkpoint(o.model), "the model");
  const auto written = nll(o.format == Format::gguf ? lowbit::nn::load_checkpoint(o.out)
                                                    : lowbit::nn::open_gptq_checkpoint(o.out),
                           o.out.filename().string());
  std::fprintf(stderr, "lowbit-quantize: test NLL over %jd tokens (%zu windows): model %.5f, %s %.5f (%+.5f)\n",
               static_cast<std::intmax_t>(model.tally.tokens()), windows.size(), model.tally.mean_nll(),
               o.out.filename().string().c_str(), written.tally.mean_nll(),
               written.tally.mean_nll() - model.tally.mean_nll());
}

/// "pd-1m" for models/pd-1m/, "stories260K" for stories260K.bin.
/// The block-by-block run's timing line (and where a resumed run's blocks came from).
void print_report(const lowbit::nn::BlockwiseReport& report, int layers, const fs::path& work_dir) {
  const double blocks = std::max(1, report.quantized_blocks);
  std::fprintf(stderr, "lowbit-quantize: %d blocks quantized: widening %.1f s, calibration forward %.1f s"
               " (%.0f calibration tokens/s through the whole model), solves %.1f s (%.2f s per block), writing %.1f s\n",
               report.quantized_blocks, report.load_seconds, report.forward_seconds,
               report.forward_seconds > 0
                   ? static_cast<double>(report.calibration_tokens) * blocks / report.forward_seconds / layers
                   : 0.0,
               report.solve_seconds, report.solve_seconds / blocks, report.write_seconds);
  if (report.resumed_blocks > 0)
    std::fprintf(stderr, "lowbit-quantize: resumed: %d finished blocks taken from %s\n", report.resumed_blocks,
                 work_dir.string().c_str());
}

std::string model_name(const fs::path& model) {
  const fs::path p = model.has_filename() ? model : model.parent_path();
  return fs::is_directory(p) ? p.filename().string() : p.stem().string();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      return 0;
    }
  Options o;
  lowbit::nn::Checkpoint ck;
  fs::path blockwise_out;  // set when quantizing block by block (resumable)
  lowbit::nn::GgufVocab vocab;
  lowbit::study::StudyData data;
  const int prepared = lowbit::cli::guarded("lowbit-quantize", "reading the model and data",
                                            lowbit::cli::exit_bad_input, [&] {
    try {
      o = parse(args);
    } catch (const lowbit::Error& e) {
      std::fprintf(stderr, "lowbit-quantize: %s\n\n%s", e.what(), usage);
      return lowbit::cli::exit_bad_input;
    }
    if (o.model.extension() == ".gguf") check_float_gguf(o.model);
    ck = lowbit::nn::load_checkpoint(o.model);
    if (o.format == Format::gguf) vocab = vocab_of(o.model, ck.config, o.data);
    if (o.method != lowbit::nn::BlockMethod::rtn || o.eval) {
      lowbit::study::StudyOptions so;
      so.calib = o.calib;
      so.seq_len = o.seq_len;
      data = lowbit::study::load_study_data(so, ck.config, o.model, lowbit::io::data_dir(o.data), 0);
    }
    return lowbit::cli::exit_ok;
  });
  if (prepared != lowbit::cli::exit_ok) return prepared;
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  return lowbit::cli::guarded("lowbit-quantize", "quantizing", lowbit::cli::exit_failed, [&] {
    try {
      if (o.threads > 0) lowbit::autograd::set_num_threads(o.threads);
      const bool qaft = o.method == lowbit::nn::BlockMethod::qaft;
      // RTN, imatrix and GPTQ stream block by block; QAFT trains the whole model.
      std::unique_ptr<lowbit::nn::Transformer> model;
      if (qaft) model = std::make_unique<lowbit::nn::Transformer>(ck);
      // A bar with rate and ETA on a terminal, a plain line every 10 s in logs.
      std::optional<lowbit::study::Progress> bar;
      const std::string what = "lowbit-quantize: " + std::string(lowbit::nn::block_method_name(o.method)) + " " +
                               o.scheme.str();
      const auto tracker = [&](std::string label, const char* unit) {
        bar.reset();
        return [&bar, label = std::move(label), unit](auto done, auto total) {
          if (!bar) bar.emplace(label, static_cast<long>(total), unit);
          bar->update(static_cast<long>(done));
          if (stop_requested) throw Interrupted{};
        };
      };
      const auto progress = tracker(what, "layers");
      // --eval once the output is written: an interruption here leaves the output.
      const auto evaluate = [&] {
        if (bar) bar->finish();
        bar.reset();
        if (!o.eval) return lowbit::cli::exit_ok;
        try {
          evaluate_output(o, data, [&](std::string label) -> ProgressFn { return tracker(label, "blocks"); });
        } catch (const Interrupted&) {
          std::fprintf(stderr, "\nlowbit-quantize: evaluation interrupted; %s is written\n", o.out.string().c_str());
          return lowbit::cli::exit_interrupted;
        }
        if (bar) bar->finish();
        return lowbit::cli::exit_ok;
      };
      // QAFT at one learning rate: the study's training step, here --epochs (default 1) of 8
      // sequences per step (lowbit-study's default is the paper's 8 epochs of 1), a bar over the steps.
      const auto qaft_train = [&](lowbit::nn::Transformer& m, double lr, const auto& train) {
        lowbit::study::QaftOptions q;
        q.lr = lr;
        q.epochs = o.epochs;
        char label[64];
        std::snprintf(label, sizeof label, " lr %g", lr);
        train(m, q, tracker(what + label, "steps"));
        if (bar) bar->finish();
        bar.reset();
      };
      const auto blockwise_options = [&] {
        lowbit::nn::BlockwiseOptions bo;
        bo.method = o.method;
        bo.gptq = o.gptq;
        bo.progress = progress;
        bo.work_dir = work_dir_of(o.out);
        blockwise_out = o.out;
        return bo;
      };
      lowbit::nn::GptqWriteOptions wo;
      wo.model_name_or_path = model_name(o.model);
      if (fs::is_directory(o.model)) wo.tokenizer_from = o.model;
      const auto kept_float = [](const std::vector<std::string>& names) {
        for (const auto& name : names)
          std::fprintf(stderr, "lowbit-quantize: %s: a dimension is not a multiple of 32 (QuantLinear's packing); "
                       "kept as float16\n", name.c_str());
      };
      if (o.format == Format::gptq && !qaft) {  // block by block: one block widened at a time, resumable
        const auto shared = std::make_shared<const lowbit::nn::Checkpoint>(std::move(ck));
        const auto r =
            lowbit::nn::quantize_gptq_checkpoint_blockwise(shared, o.scheme, data.calibration, o.out, wo, blockwise_options());
        if (bar) bar->finish();
        print_report(r.report, shared->config.layers, work_dir_of(o.out));
        kept_float(r.kept_float);
        std::fprintf(stderr, "lowbit-quantize: wrote the GPTQ checkpoint %s (%zu quantized layers)\n",
                     o.out.string().c_str(), r.quantized_layers);
        return evaluate();
      }
      if (o.format == Format::gptq) {
        lowbit::nn::GptqExport ex;
        {
          std::tie(model, ex) = best_qaft<lowbit::nn::GptqExport>(o, ck, data, [&](lowbit::nn::Transformer& m, double lr) {
            qaft_train(m, lr, [&](lowbit::nn::Transformer& t, const lowbit::study::QaftOptions& q, const auto& steps) {
              lowbit::study::qaft_train(t, data.calibration, lowbit::nn::gptq_checkpoint_quantizers(t, o.scheme), q,
                                        {}, steps);
            });
            return lowbit::nn::quantize_for_gptq_checkpoint(m, o.scheme, lowbit::nn::GptqExportMethod::rtn);
          });
        }
        if (stop_requested) throw Interrupted{};
        if (bar) bar->finish();
        kept_float(ex.kept_float);
        lowbit::nn::write_gptq_checkpoint(o.out, *model, ex, wo);
        std::fprintf(stderr, "lowbit-quantize: wrote the GPTQ checkpoint %s (%zu quantized layers)\n",
                     o.out.string().c_str(), ex.layers.size());
        return evaluate();
      }
      if (o.float_type) {  // a conversion, one tensor widened and written at a time
        lowbit::nn::write_gguf(o.out, ck, &vocab, lowbit::nn::gguf_float_codec(*o.float_type), model_name(o.model));
        std::fprintf(stderr, "lowbit-quantize: wrote %s (%ju bytes, unquantized)\n", o.out.string().c_str(),
                     static_cast<std::uintmax_t>(fs::file_size(o.out)));
        return evaluate();
      }
      const lowbit::nn::BlockPlan plan = plan_of(o, &ck.config);
      if (!qaft) {  // block by block: one block widened at a time, resumable
        const auto shared = std::make_shared<const lowbit::nn::Checkpoint>(std::move(ck));
        report_fallbacks(lowbit::nn::Transformer::streaming(shared), plan);
        const auto report = lowbit::nn::quantize_gguf_blockwise(shared, plan, data.calibration, o.out, &vocab,
                                                                model_name(o.model), blockwise_options());
        if (bar) bar->finish();
        print_report(report, shared->config.layers, work_dir_of(o.out));
        std::fprintf(stderr, "lowbit-quantize: wrote %s (%ju bytes)\n", o.out.string().c_str(),
                     static_cast<std::uintmax_t>(fs::file_size(o.out)));
        return evaluate();
      }
      std::map<std::string, lowbit::nn::EncodedTensor> encoded;
      {
        using Encoded = std::map<std::string, lowbit::nn::EncodedTensor>;
        std::tie(model, encoded) = best_qaft<Encoded>(o, ck, data, [&](lowbit::nn::Transformer& m, double lr) {
          qaft_train(m, lr, [&](lowbit::nn::Transformer& t, const lowbit::study::QaftOptions& q, const auto& steps) {
            lowbit::study::qaft_to_blocks(t, plan, data.calibration, q, {}, steps);
          });
          return lowbit::nn::quantize_to_blocks(m, plan, lowbit::nn::BlockMethod::qaft);
        });
      }
      if (stop_requested) throw Interrupted{};
      if (bar) bar->finish();
      report_fallbacks(*model, plan);
      lowbit::nn::write_gguf(o.out, *model, encoded, plan, &vocab, model_name(o.model));
      std::fprintf(stderr, "lowbit-quantize: wrote %s (%ju bytes)\n", o.out.string().c_str(),
                   static_cast<std::uintmax_t>(fs::file_size(o.out)));
      return evaluate();
    } catch (const Interrupted&) {
      std::fprintf(stderr, "lowbit-quantize: interrupted; %s was not written\n", o.out.string().c_str());
      if (!blockwise_out.empty() && fs::exists(work_dir_of(blockwise_out)))
        std::fprintf(stderr, "lowbit-quantize: the finished blocks are in %s: the same command resumes after them\n",
                     work_dir_of(blockwise_out).string().c_str());
      return lowbit::cli::exit_interrupted;
    }
    return lowbit::cli::exit_ok;
  });
}
