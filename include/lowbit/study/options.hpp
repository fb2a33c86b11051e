// The study's command line: every flag parsed and validated before any work starts.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <utility>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/autograd/thread_pool.hpp"

#include "lowbit/core/cli.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/quant/spec.hpp"

namespace lowbit::study {

/// lowbit-study prints a UsageError with the usage and exits with status 2.
using cli::UsageError;

enum class Method { rtn, gptq, qaft };

/// The study's default scheme: symmetric narrow grid, one scale per tensor,
/// PyTorch-compatible histogram-MSE scales (the bit width comes from --bits).
inline QuantSpec default_study_scheme() { return QuantSpec::parse("int4:hist"); }

/// The bit width a run of `s` is filed under: its bits, or for a llama.cpp block format
/// the code width its name gives (q4_k: 4, q2_k and tq2_0: 2, q8_0: 8) — what the report
/// and the unit files call its bit width; the format itself decides the codes.
inline int nominal_bits(const QuantSpec& s) {
  if (!s.is_block()) return s.bits;
  for (const char* c = blocks::info(s.block).name; *c; ++c)
    if (*c >= '0' && *c <= '9') return *c - '0';
  return 0;
}

struct StudyOptions {
  std::filesystem::path model;  ///< empty: stories260K under the data folder
  std::filesystem::path data;   ///< empty: $LOWBIT_DATA, else ../shared/data
  std::filesystem::path corpus; ///< Python docs sources for lowbit's own models; empty: $LOWBIT_PYTHON_DOCS, else Debian's
  std::filesystem::path out = "study-out";
  std::vector<int> bits = {8, 6, 4, 3, 2};
  std::vector<Method> methods = {Method::rtn, Method::gptq, Method::qaft};
  QuantSpec scheme = default_study_scheme();  ///< its bits are replaced by each of `bits`
  long calib = 128;
  long seq_len = 0;  ///< 0: the model's context
  std::uint64_t seed = 0;
  std::vector<double> damp_grid = {1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4};
  /// The paper's protocol: 8 epochs of one sequence per step (1,024 iterations over
  /// 128 calibration sequences). --quick: 1 epoch of 8 sequences per step.
  long qaft_epochs = 8;
  long qaft_batch = 1;
  std::vector<double> lr_grid = {1e-6, 1e-5, 1e-4, 1e-3};
  double lr_decay = 0.1;
  int threads = 0;  ///< 0: all cores
  static constexpr long max_threads = autograd::ThreadPool::max_threads;
  bool quick = false;
  bool landscape = false;
  bool save = false;
  /// One block of the model in memory at a time (RTN and GPTQ units; study/streamed_units.hpp).
  bool streaming = false;
  long directions = 4;  ///< random directions for --landscape
  /// Every unit measured again on held-out stories (study/heldout.hpp; TinyStories data only).
  bool heldout = false;
  /// --compare: finished run folders drawn and tabulated together into --out (study/compare.hpp).
  std::vector<std::filesystem::path> compare;
  /// --predict: finished run folders the landscape predictor is fitted on (study/predict.hpp).
  std::vector<std::filesystem::path> predict;
};

inline const char* study_usage() {
  return "usage: lowbit-study [options]\n"
         "  --model DIR|FILE       GPT-2/Llama safetensors folder or llama2.c .bin (default: stories260K)\n"
         "  --data DIR             data folder (default: $LOWBIT_DATA, else ../shared/data)\n"
         "  --corpus DIR           Python docs sources, for models made by lowbit_pretrain\n"
         "                         (default: $LOWBIT_PYTHON_DOCS, else /usr/share/doc/python3.11/html/_sources)\n"
         "  --out DIR              results folder (default: study-out); finished units are reused\n"
         "  --bits LIST            e.g. 8,6,4,3,2\n"
         "  --methods LIST         subset of rtn,gptq,qaft\n"
         "  --scheme SPEC          quantization scheme, e.g. int4:g64:asym, or a llama.cpp block\n"
         "                         format (q4_0, q4_k, q3_k, q2_k, ...: one bit width, each layer\n"
         "                         in llama.cpp's type for it) (docs/formats.md); its\n"
         "                         bit width is the default for --bits (default: int4:hist)\n"
         "  --granularity G        the scheme's granularity: tensor | channel | group:N\n"
         "  --scale S              the scheme's scale search: hist | hist-true | absmax | mse | weighted\n"
         "                         (weighted: by diag(H) in GPTQ; RTN and QAFT have no Hessian, so\n"
         "                         every column weighs 1 there)\n"
         "  --calib N              calibration sequences (default 128)\n"
         "  --seq-len N            sequence length (default: the model's context)\n"
         "  --seed S               sampling seed (default 0)\n"
         "  --damp-grid A:B|LIST   GPTQ dampening grid, decades from A to B, or a list\n"
         "  --qaft-epochs E        QAFT epochs (default 8, the paper's; --quick: 1)\n"
         "  --qaft-batch B         QAFT sequences per step (default 1: 1,024 steps for 128\n"
         "                         sequences and 8 epochs, the paper's; --quick: 8)\n"
         "  --lr-grid LIST         QAFT learning rates (AdamW, no weight decay)\n"
         "  --lr-decay F           linear decay to F times the start rate (default 0.1)\n"
         "  --threads N            worker threads, BLAS included (default: LOWBIT_THREADS, else all cores)\n"
         "  --streaming            one block of the model in memory at a time (a Hugging Face\n"
         "                         folder's shards stay mapped): rtn and gptq only, for models\n"
         "                         larger than memory; no --landscape, --save or qaft\n"
         "  --landscape            radial loss profiles and segments\n"
         "  --directions K         random directions for --landscape (default 4)\n"
         "  --save                 write the quantized models (packed safetensors)\n"
         "  --compare DIR,DIR,...  no study: finished runs drawn together (Figure 2 across models or\n"
         "                         schemes, Pareto front, QAFT-GPTQ gaps) into --out/compare.md\n"
         "  --predict DIR,DIR,...  no study: from finished runs with --landscape, how well the landscape\n"
         "                         before fine-tuning predicts RTN's and GPTQ's NLL increase and\n"
         "                         whether QAFT beats GPTQ, leaving one model out (--out/predictor.md)\n"
         "  --heldout              every unit's NLL again on TinyStories-valid.next.txt, which no\n"
         "                         choice saw (heldout.md; needs the weights --landscape keeps)\n"
         "  --quick                a reduced grid that finishes in minutes\n";
}

namespace detail {

using cli::parse_number;
using cli::parse_positive;
using cli::parse_positive_list;
using cli::split;
using cli::usage_fail;

/// The one scheme parser, its errors as UsageErrors naming the flag.
inline QuantSpec parse_scheme(std::string_view flag, const std::string& v) {
  try {
    return QuantSpec::parse(v, flag);
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

}  // namespace detail

/// Parses argv (without argv[0]); throws UsageError on the first problem.
inline StudyOptions parse_study_options(const std::vector<std::string>& args) {
  using detail::usage_fail;
  StudyOptions o;
  bool methods_set = false, bits_set = false, damp_set = false, lr_set = false, scheme_set = false;
  bool epochs_set = false, batch_set = false;
  std::optional<std::pair<ScaleLayout::Kind, Index>> granularity;  // --granularity, applied after --scheme
  std::optional<SearchKind> search;                                // --scale, likewise
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    const auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) usage_fail(flag, "", "needs a value");
      return args[++i];
    };
    if (flag == "--quick") {
      o.quick = true;
    } else if (flag == "--landscape") {
      o.landscape = true;
    } else if (flag == "--save") {
      o.save = true;
    } else if (flag == "--heldout") {
      o.heldout = true;
    } else if (flag == "--compare" || flag == "--predict") {
      const std::string v = value();
      for (const auto& d : detail::split(v, ','))
        if (d.empty()) usage_fail(flag, v, "names an empty folder");
        else (flag == "--compare" ? o.compare : o.predict).emplace_back(d);
    } else if (flag == "--streaming") {
      o.streaming = true;
    } else if (flag == "--model") {
      o.model = value();
    } else if (flag == "--data") {
      o.data = value();
    } else if (flag == "--corpus") {
      o.corpus = value();
      if (o.corpus.empty()) usage_fail(flag, "''", "must name a folder");
    } else if (flag == "--out") {
      o.out = value();
      if (o.out.empty()) usage_fail(flag, "''", "must name a folder");
    } else if (flag == "--bits") {
      const auto& v = value();
      o.bits.clear();
      for (const auto& part : detail::split(v, ',')) {
        const long b = detail::parse_positive(flag, part);
        if (b < 2 || b > 8) usage_fail(flag, v, "bit widths must be 2..8");
        o.bits.push_back(static_cast<int>(b));
      }
      bits_set = true;
    } else if (flag == "--methods") {
      const auto& v = value();
      o.methods.clear();
      for (const auto& m : detail::split(v, ',')) {
        if (m == "rtn") o.methods.push_back(Method::rtn);
        else if (m == "gptq") o.methods.push_back(Method::gptq);
        else if (m == "qaft") o.methods.push_back(Method::qaft);
        else usage_fail(flag, v, "methods are rtn, gptq, qaft");
      }
      methods_set = true;
    } else if (flag == "--scheme") {
      const auto& v = value();
      o.scheme = detail::parse_scheme(flag, v);
      scheme_set = true;
    } else if (flag == "--granularity") {
      const auto& v = value();
      if (v == "tensor" || v == "channel") {
        granularity = std::pair{v == "tensor" ? ScaleLayout::Kind::tensor : ScaleLayout::Kind::channel, Index{0}};
      } else if (v.rfind("group:", 0) == 0) {
        granularity = std::pair{ScaleLayout::Kind::group, static_cast<Index>(detail::parse_positive(flag, v.substr(6)))};
      } else {
        usage_fail(flag, v, "is tensor, channel or group:N");
      }
    } else if (flag == "--scale") {
      const auto& v = value();
      bool known = false;
      for (const auto& c : search_choices) known = known || c.token == v;
      if (!known) usage_fail(flag, v, "is " + spec_detail::tokens(search_choices));
      search = detail::parse_scheme(flag, "int4:" + v).search;
    } else if (flag == "--calib") {
      o.calib = detail::parse_positive(flag, value());
    } else if (flag == "--seq-len") {
      o.seq_len = detail::parse_positive(flag, value());
    } else if (flag == "--seed") {
      o.seed = static_cast<std::uint64_t>(detail::parse_positive(flag, value(), true));
    } else if (flag == "--damp-grid") {
      const auto& v = value();
      const auto ends = detail::split(v, ':');
      if (ends.size() == 2) {
        const double a = detail::parse_number(flag, ends[0]), b = detail::parse_number(flag, ends[1]);
        if (!(a > 0) || !(b >= a)) usage_fail(flag, v, "needs 0 < A <= B");
        o.damp_grid.clear();
        for (double e = std::round(std::log10(a)); e <= std::log10(b) + 1e-9; e += 1) o.damp_grid.push_back(std::pow(10.0, e));
      } else {
        o.damp_grid = detail::parse_positive_list(flag, v);
      }
      damp_set = true;
    } else if (flag == "--qaft-epochs") {
      o.qaft_epochs = detail::parse_positive(flag, value());
      epochs_set = true;
    } else if (flag == "--qaft-batch") {
      o.qaft_batch = detail::parse_positive(flag, value());
      batch_set = true;
    } else if (flag == "--lr-grid") {
      o.lr_grid = detail::parse_positive_list(flag, value());
      lr_set = true;
    } else if (flag == "--lr-decay") {
      const auto& v = value();
      o.lr_decay = detail::parse_number(flag, v);
      if (!(o.lr_decay > 0 && o.lr_decay <= 1)) usage_fail(flag, v, "must be in (0, 1]");
    } else if (flag == "--threads") {
      const auto& v = value();
      const long n = detail::parse_positive(flag, v);
      if (n > StudyOptions::max_threads)
        usage_fail(flag, v, "is more threads than lowbit supports (at most " + std::to_string(StudyOptions::max_threads) + ")");
      o.threads = static_cast<int>(n);
    } else if (flag == "--directions") {
      o.directions = detail::parse_positive(flag, value());
    } else {
      usage_fail(flag, "", "is not an option (see --help)");
    }
  }
  if (o.scheme.is_block()) {  // a llama.cpp block format: one bit width, its own blocks and scales
    const std::string name = o.scheme.str();
    if (granularity) usage_fail("--granularity", "with --scheme " + name, "a block format's blocks fix where its scales live");
    if (search) usage_fail("--scale", "with --scheme " + name, "a block format's scales are llama.cpp's");
    if (o.save)
      usage_fail("--save", "with --scheme " + name,
                 "--save writes lowbit's packed integer grids; lowbit-quantize --format gguf writes block formats");
    const int bits = nominal_bits(o.scheme);
    if (!bits_set) o.bits = {bits};
    for (const int b : o.bits)
      if (b != bits) usage_fail("--bits", std::to_string(b), "does not apply to " + name + ", which has " + std::to_string(bits) + " bits");
  }
  if (granularity) {
    o.scheme.granularity = granularity->first;
    o.scheme.group_size = granularity->second;
  }
  if (search) o.scheme.search = *search;
  if (scheme_set && !bits_set && !o.scheme.is_block()) o.bits = {o.scheme.bits};
  if (o.scheme.is_nf4()) {  // NF4 is one table of 4-bit levels with absmax scales
    if (o.scheme.search != SearchKind::absmax)
      usage_fail("--scale", spec_detail::token_of(search_choices, o.scheme.search),
                 "does not apply to nf4: " + std::string(QuantSpec::nf4_search_rule));
    for (const int b : o.bits)
      if (b != 4) usage_fail("--bits", std::to_string(b), "does not apply to nf4, which has 4 bits only");
  }
  if (o.quick) {  // the reduced grid, unless the user chose otherwise
    if (!bits_set && !scheme_set) o.bits = {8, 4, 3, 2};
    if (!damp_set) o.damp_grid = {1e-2, 1e0, 1e2};
    if (!lr_set) o.lr_grid = {1e-4, 1e-3};
    if (!epochs_set) o.qaft_epochs = 1;
    if (!batch_set) o.qaft_batch = 8;
  }
  if (o.streaming) {  // QAFT, the landscape and --save move or write the whole model at once
    if (!methods_set) o.methods = {Method::rtn, Method::gptq};
    for (const Method m : o.methods)
      if (m == Method::qaft)
        usage_fail("--methods", "qaft", "QAFT trains the whole model in memory; with --streaming the methods are "
                   "rtn and gptq");
    if (o.landscape) usage_fail("--landscape", "with --streaming", "the landscape moves the whole model at once; run it in memory");
    if (o.heldout) usage_fail("--heldout", "with --streaming", "it measures the weights --landscape keeps; run it in memory");
    if (o.scheme.is_block())
      usage_fail("--streaming", "with --scheme " + o.scheme.str(),
                 "block formats are studied in memory; lowbit-quantize --format gguf quantizes a model into them block by block");
    if (o.save)
      usage_fail("--save", "with --streaming", "--save writes the whole model at once; lowbit-quantize writes a "
                 "quantized model block by block");
  }
  if (o.heldout && !o.landscape)
    usage_fail("--heldout", "without --landscape", "it measures the weights each unit keeps, which --landscape writes");
  return o;
}

}  // namespace lowbit::study
