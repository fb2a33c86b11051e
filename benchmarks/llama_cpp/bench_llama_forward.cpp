// The calibration / evaluation forward of Llama blocks at the real-checkpoints
// issue's benchmark shape (TinyLlama-1.1B: d 2048, MLP 5632, 32 heads / 4 KV heads,
// RoPE, RMSNorm, SwiGLU) in tokens/s, lowbit next to llama.cpp's CPU forward on the
// same float32 weights and the same thread count (issue #16):
//  - lowbit: nn::Transformer::forward without a tape (what nn::Evaluator and the
//    calibration pipeline run), all logits;
//  - llama.cpp: the prebuilt libllama of node-llama-cpp@3.21.1 on an F32 GGUF that
//    lowbit wrote from the same model (no vocabulary: token ids fed directly), one
//    llama_decode of the whole window with every logit requested — with float32 keys
//    and values and no flash attention (the accuracy lowbit keeps, as the judge runs
//    it) and with llama.cpp's defaults (F16 KV cache, flash attention automatic).
// The vocabulary is cut to 512 ids so that the classifier is a small part of the
// work: the figure is the blocks' rate. LOWBIT_BENCH_LAYERS (default 2) blocks,
// windows of 512 tokens.
//
//   build/release/benchmarks/bench_llama_forward --benchmark_counters_tabular=true
//
// Built only where scripts/fixtures/fetch_llama_cpp.sh has fetched llama.cpp.
#include <benchmark/benchmark.h>

#include "../bench_main.hpp"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <ggml-backend.h>
#include <llama.h>

#include <lowbit/autograd.hpp>
#include <lowbit/backend/blas.hpp>
#include <lowbit/nn/block_quantize.hpp>
#include <lowbit/nn/gguf_model.hpp>
#include <lowbit/nn/transformer.hpp>

namespace {

namespace fs = std::filesystem;
using lowbit::Index;

constexpr Index kTokens = 512;

int layers() {
  const char* s = std::getenv("LOWBIT_BENCH_LAYERS");
  return s != nullptr ? std::max(1, std::atoi(s)) : 2;
}

lowbit::nn::TransformerConfig tinyllama_blocks() {
  lowbit::nn::TransformerConfig c;
  c.arch = lowbit::nn::Architecture::llama;
  c.model_type = "llama";
  c.dim = 2048;
  c.hidden = 5632;
  c.layers = layers();
  c.heads = 32;
  c.kv_heads = 4;
  c.vocab = 512;
  c.context = static_cast<int>(kTokens);
  c.norm_eps = 1e-5f;
  return c;
}

/// The model (random weights at the published initialisation) and its F32 GGUF.
struct Shared {
  lowbit::nn::Transformer model{tinyllama_blocks(), 1};
  fs::path gguf = fs::temp_directory_path() / ("lowbit_bench_forward_" + std::to_string(::getpid()) + ".gguf");
  std::vector<std::int32_t> ids;
  Shared() {
    const lowbit::nn::GgufVocab none = lowbit::nn::GgufVocab::none();
    lowbit::nn::write_gguf(gguf, lowbit::nn::checkpoint_of(model, "model"), &none);
    std::mt19937 gen(3);
    std::uniform_int_distribution<std::int32_t> id(0, model.config().vocab - 1);
    for (Index i = 0; i < kTokens; ++i) ids.push_back(id(gen));
  }
  ~Shared() {
    std::error_code ec;
    fs::remove(gguf, ec);
  }
};

Shared& shared() {
  static Shared s;
  return s;
}

void set_rates(benchmark::State& state) {
  const double tokens = static_cast<double>(kTokens) * static_cast<double>(state.iterations());
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["layers"] = layers();
  state.counters["threads"] = static_cast<double>(state.range(0));
}

void BM_LowbitForward(benchmark::State& state) {
  Shared& s = shared();
  lowbit::autograd::set_num_threads(static_cast<int>(state.range(0)));
  lowbit::autograd::Graph g;
  for (auto _ : state) {
    g.clear();
    lowbit::autograd::NoGradGuard no_grad;
    const auto logits = s.model.forward(s.ids, 1, kTokens);
    benchmark::DoNotOptimize(logits.data());
  }
  set_rates(state);
}

void quiet_log(ggml_log_level, const char*, void*) {}

/// Arguments: threads, 1 for float32 KV without flash attention (0: llama.cpp's defaults).
void BM_LlamaCppForward(benchmark::State& state) {
  Shared& s = shared();
  llama_log_set(quiet_log, nullptr);
  llama_model_params mp = llama_model_default_params();
  std::unique_ptr<llama_model, void (*)(llama_model*)> model(llama_model_load_from_file(s.gguf.c_str(), mp),
                                                               llama_model_free);
  if (!model) {
    state.SkipWithError("llama.cpp could not load the GGUF");
    return;
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = cp.n_batch = cp.n_ubatch = static_cast<std::uint32_t>(kTokens);
  cp.n_threads = cp.n_threads_batch = static_cast<std::int32_t>(state.range(0));
  if (state.range(1) != 0) {
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  }
  cp.no_perf = true;
  std::unique_ptr<llama_context, void (*)(llama_context*)> ctx(llama_init_from_model(model.get(), cp), llama_free);
  if (!ctx) {
    state.SkipWithError("llama.cpp could not create a context");
    return;
  }
  llama_batch batch = llama_batch_init(static_cast<std::int32_t>(kTokens), 0, 1);
  for (Index i = 0; i < kTokens; ++i) {
    batch.token[i] = s.ids[static_cast<std::size_t>(i)];
    batch.pos[i] = static_cast<llama_pos>(i);
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = 1;
  }
  batch.n_tokens = static_cast<std::int32_t>(kTokens);
  for (auto _ : state) {
    llama_memory_clear(llama_get_memory(ctx.get()), true);
    if (llama_decode(ctx.get(), batch) != 0) {
      state.SkipWithError("llama_decode failed");
      break;
    }
    benchmark::DoNotOptimize(llama_get_logits_ith(ctx.get(), 0));
  }
  llama_batch_free(batch);
  set_rates(state);
}

}  // namespace

BENCHMARK(BM_LowbitForward)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LlamaCppForward)
    ->Args({1, 1})
    ->Args({2, 1})
    ->Args({1, 0})
    ->Args({2, 0})
    ->ArgNames({"threads", "f32kv"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

int main(int argc, char** argv) {
  llama_backend_init();
  ggml_backend_load_all_from_path(LOWBIT_GGML_LIB_DIR);  // the CPU backend variants
  const int rc = bench::run_benchmarks(argc, argv);
  llama_backend_free();
  return rc;
}
