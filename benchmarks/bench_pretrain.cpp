// Pretraining throughput (tokens/s) of whole GPT-2 training steps (forward, loss,
// backward, clipping, AdamW) through train::Pretrainer for the candidate model sizes
// of docs/pretrain.md, on a synthetic stream over a 21,750-id vocabulary (the size
// of the Python-docs compact vocabulary), next to one GEMM of the classifier's shape
// ([B·T, d] × [d, V], through lowbit::blas) in the same run as the baseline;
// scripts/bench/torch_pretrain.py runs the same steps in PyTorch.
//
// Model FLOPs/token = 6 × (non-embedding matrices + classifier) + attention
// (12 · layers · T · d / 2 for the causal half of QK and PV, forward + backward).
#include <benchmark/benchmark.h>

#include "bench_main.hpp"

#include <Eigen/Dense>
#include <cstdint>
#include <random>
#include <vector>

#include <lowbit/autograd/thread_pool.hpp>
#include <lowbit/backend/blas.hpp>
#include <lowbit/train/pretrainer.hpp>

namespace {

using lowbit::Index;

constexpr int kVocab = 21750;

std::vector<int> synthetic_stream(Index n) {
  std::mt19937 gen(7);
  // Zipf-like ids, so the classifier sees a realistic, skewed target mix.
  std::vector<int> t(static_cast<std::size_t>(n));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (auto& x : t) x = static_cast<int>(std::pow(static_cast<double>(kVocab), u(gen))) - 1;
  return t;
}

lowbit::train::PretrainSettings settings(int layers, int dim, int heads, int context, int batch) {
  lowbit::train::PretrainSettings s;
  s.model.arch = lowbit::nn::Architecture::gpt2;
  s.model.layers = layers;
  s.model.dim = dim;
  s.model.hidden = 4 * dim;
  s.model.heads = heads;
  s.model.kv_heads = heads;
  s.model.vocab = kVocab;
  s.model.context = context;
  s.model.tied_head = true;
  s.batch = batch;
  s.steps = 1000000;
  s.warmup = 10;
  s.lr = 1e-3;
  return s;
}

double flops_per_token(int layers, int dim, int context, int vocab) {
  const double matrices = 12.0 * layers * dim * dim + static_cast<double>(vocab) * dim;
  return 6.0 * matrices + 6.0 * layers * context * dim;
}

// args: layers, dim, heads, context, batch, threads
void BM_PretrainStep(benchmark::State& state) {
  const int layers = static_cast<int>(state.range(0)), dim = static_cast<int>(state.range(1));
  const int heads = static_cast<int>(state.range(2)), context = static_cast<int>(state.range(3));
  const int batch = static_cast<int>(state.range(4));
  lowbit::autograd::set_num_threads(static_cast<int>(state.range(5)));
  static const std::vector<int> stream = synthetic_stream(1 << 20);
  lowbit::train::Pretrainer trainer(settings(layers, dim, heads, context, batch), stream);
  // Warm-up: the first step grows the arena chunk by chunk and consolidates it into
  // one block, which the second step first touches (~0.5 s of page faults here).
  trainer.step();
  trainer.step();
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step().loss);
  const double tokens = static_cast<double>(state.iterations()) * batch * context;
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(tokens * flops_per_token(layers, dim, context, kVocab) * 1e-9, benchmark::Counter::kIsRate);
}

// The classifier's forward GEMM for one step: [B·T, d] × [d, V] through lowbit::blas
// (OpenBLAS or Eigen, split over the same pool threads).
void BM_ClassifierGemm(benchmark::State& state) {
  const Index rows = state.range(0), dim = state.range(1);
  lowbit::autograd::set_num_threads(static_cast<int>(state.range(2)));
  const Eigen::MatrixXf x = Eigen::MatrixXf::Random(rows, dim), w = Eigen::MatrixXf::Random(kVocab, dim);
  std::vector<float> y(static_cast<std::size_t>(rows * kVocab));
  for (auto _ : state) {
    // Row-major x·wᵀ from column-major x (= xᵀ row-major) and w (= wᵀ row-major).
    lowbit::blas::gemm<float>(rows, kVocab, dim, 1.0f, x.data(), rows, lowbit::blas::Trans::yes, w.data(), kVocab,
                              lowbit::blas::Trans::no, 0.0f, y.data(), kVocab);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * 2.0 * rows * dim * kVocab *
                                                     1e-9, benchmark::Counter::kIsRate);
}

// Candidate sizes (docs/pretrain.md): batch·context = 2048 tokens per step.
#define LOWBIT_CANDIDATES(threads)                 \
  ->Args({4, 256, 4, 128, 16, threads})            \
      ->Args({4, 128, 4, 128, 16, threads})        \
      ->Args({5, 128, 4, 128, 16, threads})        \
      ->Args({6, 192, 6, 128, 16, threads})        \
      ->Args({6, 256, 8, 128, 16, threads})        \
      ->Args({8, 256, 8, 128, 16, threads})

BENCHMARK(BM_PretrainStep) LOWBIT_CANDIDATES(2)->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();
BENCHMARK(BM_PretrainStep) LOWBIT_CANDIDATES(1)->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();
BENCHMARK(BM_ClassifierGemm)->Args({2048, 128, 2})->Args({2048, 256, 2})->Args({2048, 256, 1})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  return bench::run_benchmarks(argc, argv);
}
