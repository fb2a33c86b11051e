// llama.cpp as the judge of lowbit's GGUF files (issue #13): stories260K exported by
// lowbit in each llama.cpp type, then scored on the study's TinyStories test windows
// twice — by lowbit (the file read back into nn::Transformer) and by llama.cpp itself
// (the prebuilt libllama of node-llama-cpp@3.21.1: token ids fed directly, NLL from
// its logits in double). Built and run by run_judge.cmake; never linked into lowbit.
//
//   judge DATA_DIR GGML_LIB_DIR OUT_DIR SPEC...
//
// SPEC: f32, or a llama.cpp type with an optional method, TYPE[/rtn|/imatrix|/gptq]
// (nn/block_quantize.hpp; imatrix and GPTQ calibrate on the study's 128 TinyStories
// calibration sequences).
//
// Prints one line per type and exits 1 if the f32 file's NLL in llama.cpp is not the
// study's 1.41965 or differs from lowbit's by more than 1e-4, or if a quantized
// file's NLLs differ by more than 2e-3. Quantized files cannot agree as closely: for
// a quantized (or F16) weight llama.cpp's CPU kernels round the activations too (to
// q8_0 / q8_K blocks, or F16) before the dot products, while lowbit multiplies
// float32 activations by the decoded weights. On stories260K the gap measured
// 1.7e-4 to 8.4e-4 (docs/results/llama.cpp.md).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <ggml-backend.h>
#include <llama.h>

#include "lowbit/nn/block_quantize.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/gguf_llama.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/study/data.hpp"

namespace fs = std::filesystem;
using Windows = std::vector<std::span<const int>>;

namespace {

/// Mean NLL (nats per predicted token) of `windows` under llama.cpp.
double llama_cpp_nll(const fs::path& gguf, const Windows& windows, int context) {
  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(gguf.c_str(), mp);
  if (model == nullptr) throw std::runtime_error("llama.cpp could not load " + gguf.string());
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<std::uint32_t>(context);
  cp.n_batch = cp.n_ubatch = static_cast<std::uint32_t>(context);
  cp.n_threads = cp.n_threads_batch = 1;
  cp.type_k = cp.type_v = GGML_TYPE_F32;  // lowbit keeps keys and values in float32
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.no_perf = true;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (ctx == nullptr) throw std::runtime_error("llama.cpp could not create a context for " + gguf.string());
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  double sum = 0.0;
  long count = 0;
  for (const auto& w : windows) {
    llama_memory_clear(llama_get_memory(ctx), true);
    llama_batch batch = llama_batch_init(static_cast<std::int32_t>(w.size()), 0, 1);
    for (std::size_t i = 0; i < w.size(); ++i) {
      batch.token[i] = w[i];
      batch.pos[i] = static_cast<llama_pos>(i);
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = 0;
      batch.logits[i] = 1;
    }
    batch.n_tokens = static_cast<std::int32_t>(w.size());
    if (llama_decode(ctx, batch) != 0) throw std::runtime_error("llama_decode failed on " + gguf.string());
    for (std::size_t i = 0; i + 1 < w.size(); ++i) {
      const float* l = llama_get_logits_ith(ctx, static_cast<std::int32_t>(i));
      double top = l[0];
      for (int v = 1; v < vocab; ++v) top = std::max(top, static_cast<double>(l[v]));
      double z = 0.0;
      for (int v = 0; v < vocab; ++v) z += std::exp(static_cast<double>(l[v]) - top);
      sum += top + std::log(z) - static_cast<double>(l[w[i + 1]]);
      ++count;
    }
    llama_batch_free(batch);
  }
  llama_free(ctx);
  llama_model_free(model);
  return sum / static_cast<double>(count);
}

void quiet(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: judge DATA_DIR GGML_LIB_DIR OUT_DIR TYPE...\n");
    return 2;
  }
  const fs::path data = argv[1], out = argv[3];
  llama_log_set(quiet, nullptr);
  ggml_backend_load_all_from_path(argv[2]);
  llama_backend_init();
  fs::create_directories(out);
  try {
    const fs::path model = data / "stories260K" / "stories260K.bin";
    const lowbit::nn::Checkpoint ck = lowbit::nn::load_checkpoint(model);
    const auto tok = lowbit::text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", ck.config.vocab);
    const lowbit::study::StudyData d = lowbit::study::load_study_data({}, ck.config, model, data, 0);
    int failures = 0;
    for (int a = 4; a < argc; ++a) {
      const std::string arg = argv[a];
      const std::string type = arg.substr(0, arg.find('/'));
      const auto method = lowbit::nn::parse_block_method(
          arg.find('/') == std::string::npos ? "rtn" : arg.substr(arg.find('/') + 1), "judge: method");
      std::string label = arg;
      for (char& ch : label) ch = ch == '/' ? '-' : ch;
      const fs::path file = out / ("stories260K-" + label + ".gguf");
      if (type == "f32") {
        lowbit::nn::write_gguf_llama(file, ck, &tok, {}, "stories260K");
      } else {
        const lowbit::QuantSpec spec = lowbit::QuantSpec::parse(type, "judge: type");
        lowbit::nn::Transformer q(ck);
        const auto encoded = lowbit::nn::quantize_to_blocks(q, spec, method, d.calibration);
        lowbit::nn::write_gguf_llama(file, q, encoded, spec, &tok, "stories260K");
      }
      const lowbit::nn::Transformer m(lowbit::nn::load_gguf_llama(file));
      const double ours = lowbit::nn::evaluate(m, d.test).mean_nll();
      const double theirs = llama_cpp_nll(file, d.test, ck.config.context);
      const bool agree = std::fabs(ours - theirs) <= (type == "f32" ? 1e-4 : 2e-3);
      const bool f32_ok = type != "f32" || std::fabs(theirs - 1.41965) <= 5e-6;
      std::printf("%-14s %9ju bytes  lowbit %.6f  llama.cpp %.6f  diff %+.2e  %s\n", arg.c_str(),
                  static_cast<std::uintmax_t>(fs::file_size(file)), ours, theirs, theirs - ours,
                  agree && f32_ok ? "ok" : "MISMATCH");
      failures += agree && f32_ok ? 0 : 1;
    }
    llama_backend_free();
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "judge: %s\n", e.what());
    return 1;
  }
}
