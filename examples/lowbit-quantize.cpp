// lowbit-quantize: a model into a GGUF file llama.cpp runs, its linear layers
// quantized by round-to-nearest, llama.cpp's importance-matrix quantizer, or GPTQ
// onto llama.cpp's block grids (nn/block_quantize.hpp).
//
//   lowbit-quantize --model stories260K.bin --scheme q4_0 --method gptq --out s.gguf
//   llama-cli -m s.gguf ...            # or any program on llama.cpp
//
// First version (issue #13): llama2.c models (tokenizer beside the checkpoint),
// calibrated on the study's TinyStories calibration stories; GGUF output only.
//
// Exit status: 0 done, 1 failed during the work, 2 bad flags or unreadable inputs
// (before any work), 130 interrupted (no output file is left behind).
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <lowbit/core/tool_main.hpp>
#include <lowbit/io/file.hpp>
#include <lowbit/nn/block_quantize.hpp>
#include <lowbit/study/data.hpp>

namespace {

namespace fs = std::filesystem;

std::atomic<bool> stop_requested{false};
extern "C" void on_interrupt(int) {
  if (stop_requested.exchange(true)) std::_Exit(130);
}

struct Interrupted {};

constexpr const char* usage =
    "usage: lowbit-quantize --model FILE --scheme TYPE --out FILE.gguf [options]\n"
    "\n"
    "  --model FILE       a llama.cpp-convertible model: a llama2.c checkpoint (.bin) with its\n"
    "                     tokenizer (tok<N>.bin or tokenizer.bin) beside it\n"
    "  --scheme TYPE      a llama.cpp type: q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0 q3_k q2_k\n"
    "                     tq2_0 iq4_nl mxfp4 (rows that are not whole blocks take llama.cpp's\n"
    "                     fallback, or F16)\n"
    "  --out FILE.gguf    the output (written to a temporary file, then renamed)\n"
    "  --method M         rtn (llama.cpp's quantizer, default), imatrix (with an importance\n"
    "                     matrix from calibration data), gptq (GPTQ onto the block grid)\n"
    "  --calib N          calibration sequences for imatrix and gptq (default 128)\n"
    "  --data DIR         lowbit's data folder (default $LOWBIT_DATA or ../shared/data)\n"
    "  --damp P           GPTQ's percdamp (default 0.01)\n"
    "  --act-order        GPTQ in decreasing diag(H) order\n";

struct Options {
  fs::path model, out;
  std::optional<fs::path> data;
  lowbit::QuantSpec scheme;
  lowbit::nn::BlockMethod method = lowbit::nn::BlockMethod::rtn;
  long calib = 128;
  lowbit::GptqOptions gptq;
};

[[noreturn]] void bad(const std::string& flag, const std::string& why) {
  throw lowbit::Error(flag + ": " + why);
}

Options parse(const std::vector<std::string>& args) {
  Options o;
  bool scheme = false;
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
      o.scheme = lowbit::QuantSpec::parse(value(), "--scheme");
      if (!o.scheme.is_block()) bad("--scheme " + o.scheme.str(), "is not a llama.cpp type (GGUF holds q8_0 … iq4_nl)");
      scheme = true;
    } else if (f == "--method") {
      o.method = lowbit::nn::parse_block_method(value(), "--method");
    } else if (f == "--calib") {
      const std::string& v = value();
      char* end = nullptr;
      o.calib = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || o.calib <= 0) bad("--calib " + v, "must be a positive integer");
    } else if (f == "--damp") {
      const std::string& v = value();
      char* end = nullptr;
      o.gptq.percdamp = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(o.gptq.percdamp > 0.0)) bad("--damp " + v, "must be a positive number");
    } else if (f == "--act-order") {
      o.gptq.act_order = true;
    } else {
      bad(f, "is not an option (see --help)");
    }
  }
  if (o.model.empty()) bad("--model", "is required");
  if (!scheme) bad("--scheme", "is required");
  if (o.out.empty()) bad("--out", "is required");
  if (o.out.extension() != ".gguf") bad("--out " + o.out.string(), "must end in .gguf (the only format so far)");
  if (!fs::is_regular_file(o.model)) bad("--model " + o.model.string(), "is not a file (a llama2.c .bin)");
  return o;
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
  std::optional<lowbit::text::Llama2cTokenizer> tok;
  lowbit::study::StudyData data;
  const int prepared = lowbit::cli::guarded("lowbit-quantize", "reading the model and data",
                                            lowbit::cli::exit_bad_input, [&] {
    try {
      o = parse(args);
    } catch (const lowbit::Error& e) {
      std::fprintf(stderr, "lowbit-quantize: %s\n\n%s", e.what(), usage);
      return lowbit::cli::exit_bad_input;
    }
    ck = lowbit::nn::load_checkpoint(o.model);
    tok.emplace(lowbit::text::Llama2cTokenizer::load(lowbit::study::llama2c_tokenizer_path(o.model), ck.config.vocab));
    if (o.method != lowbit::nn::BlockMethod::rtn) {
      lowbit::study::StudyOptions so;
      so.calib = o.calib;
      data = lowbit::study::load_study_data(so, ck.config, o.model, lowbit::io::data_dir(o.data), 0);
    }
    return lowbit::cli::exit_ok;
  });
  if (prepared != lowbit::cli::exit_ok) return prepared;
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  return lowbit::cli::guarded("lowbit-quantize", "quantizing", lowbit::cli::exit_failed, [&] {
    try {
      lowbit::nn::Transformer model(ck);
      const std::string what(lowbit::nn::block_method_name(o.method));
      const auto encoded = lowbit::nn::quantize_to_blocks(
          model, o.scheme, o.method, data.calibration, o.gptq, [&](std::size_t done, std::size_t total) {
            std::fprintf(stderr, "lowbit-quantize: %s %s: layer %zu of %zu\n", what.c_str(), o.scheme.str().c_str(),
                         done, total);
            if (stop_requested) throw Interrupted{};
          });
      if (stop_requested) throw Interrupted{};
      // Layers whose rows are not whole blocks took llama.cpp's fallback: say which.
      const auto wanted = static_cast<std::uint32_t>(lowbit::blocks::info(o.scheme.block).ggml_type);
      for (const auto& [name, e] : encoded)
        if (e.ggml_type != wanted)
          std::fprintf(stderr, "lowbit-quantize: %s: rows of %jd weights are not whole %s blocks; written as %s\n",
                       name.c_str(), static_cast<std::intmax_t>(ck.weights.at(name).shape.back()),
                       o.scheme.str().c_str(), std::string(lowbit::io::ggml_type_info(e.ggml_type)->name).c_str());
      lowbit::nn::write_gguf_llama(o.out, model, encoded, o.scheme, &*tok, o.model.stem().string());
      std::fprintf(stderr, "lowbit-quantize: wrote %s (%ju bytes)\n", o.out.string().c_str(),
                   static_cast<std::uintmax_t>(fs::file_size(o.out)));
    } catch (const Interrupted&) {
      std::fprintf(stderr, "lowbit-quantize: interrupted; %s was not written\n", o.out.string().c_str());
      return lowbit::cli::exit_interrupted;
    }
    return lowbit::cli::exit_ok;
  });
}
