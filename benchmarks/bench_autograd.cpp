// Forward + backward of GPT-2-small-sized transformer blocks (d=768, 12 heads, T=256,
// batch 1) through lowbit::autograd, next to GEMMs of the block's largest shape (and
// 4096³) through lowbit and through OpenBLAS directly, in the same run. Model FLOPs = 3 × forward FLOPs (linear layers + attention
// with the full T×T score product); PyTorch 1.13 figures come from
// scripts/bench/torch_block.py on the same shapes and thread counts (docs/performance.md).
#include <benchmark/benchmark.h>

#include "bench_main.hpp"

#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include <lowbit/autograd.hpp>

namespace {

using namespace lowbit::autograd;

constexpr Index kDim = 768, kHeads = 12, kT = 256, kBatch = 1;

std::vector<float> randn(Index n, float stddev, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(gen);
  return v;
}

struct Gpt2Block {
  Parameter ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, out_w, out_b;
  explicit Gpt2Block(std::uint32_t seed)
      : ln1_w("ln1.w", Shape{kDim}, std::vector<float>(kDim, 1.0f)),
        ln1_b("ln1.b", Shape{kDim}),
        qkv_w("qkv.w", Shape{3 * kDim, kDim}, randn(3 * kDim * kDim, 0.02f, seed)),
        qkv_b("qkv.b", Shape{3 * kDim}),
        proj_w("proj.w", Shape{kDim, kDim}, randn(kDim * kDim, 0.02f, seed + 1)),
        proj_b("proj.b", Shape{kDim}),
        ln2_w("ln2.w", Shape{kDim}, std::vector<float>(kDim, 1.0f)),
        ln2_b("ln2.b", Shape{kDim}),
        fc_w("fc.w", Shape{4 * kDim, kDim}, randn(4 * kDim * kDim, 0.02f, seed + 2)),
        fc_b("fc.b", Shape{4 * kDim}),
        out_w("out.w", Shape{kDim, 4 * kDim}, randn(4 * kDim * kDim, 0.02f, seed + 3)),
        out_b("out.b", Shape{kDim}) {}

  Tensor operator()(Tensor x) const {
    Tensor h = layer_norm(x, ln1_w, ln1_b);
    Tensor qkv = linear(h, qkv_w, qkv_b);
    const Shape hs{kBatch, kT, kHeads, kDim / kHeads};
    Tensor q = reshape(slice_last(qkv, 0, kDim), hs);
    Tensor k = reshape(slice_last(qkv, kDim, 2 * kDim), hs);
    Tensor v = reshape(slice_last(qkv, 2 * kDim, 3 * kDim), hs);
    Tensor a = reshape(causal_attention(q, k, v), Shape{kBatch, kT, kDim});
    x = add(x, linear(a, proj_w, proj_b));
    h = layer_norm(x, ln2_w, ln2_b);
    return add(x, linear(gelu_tanh(linear(h, fc_w, fc_b)), out_w, out_b));
  }
};

double forward_flops_per_block() {
  const double tokens = kBatch * kT;
  const double linear = 2 * tokens * (kDim * 3 * kDim + kDim * kDim + 2 * kDim * 4 * kDim);
  const double attention = 2 * 2 * kBatch * double(kT) * kT * kDim;  // QKᵀ and PV, all heads
  return linear + attention;
}

void run_stack(benchmark::State& state, int layers) {
  set_num_threads(static_cast<int>(state.range(0)));
  std::deque<Gpt2Block> blocks;
  for (int l = 0; l < layers; ++l) blocks.emplace_back(static_cast<std::uint32_t>(10 * l + 1));
  const auto input = randn(kBatch * kT * kDim, 1.0f, 99);
  Graph g;
  auto step = [&] {
    g.clear();
    Tensor x = g.variable(Shape{kBatch, kT, kDim}, input);
    for (const auto& b : blocks) x = b(x);
    backward(sum(x));
    benchmark::DoNotOptimize(blocks.front().qkv_w.grad());
  };
  step();  // warm-up: the arena grows, then is consolidated and first touched
  step();
  for (auto _ : state) step();
  const double flops = 3 * forward_flops_per_block() * layers;
  state.counters["FLOP/s"] = benchmark::Counter(flops * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
  state.counters["peak_MiB"] = static_cast<double>(g.peak_bytes()) / (1 << 20);
  state.counters["threads"] = static_cast<double>(state.range(0));
}

void BM_Gpt2Block_FwdBwd(benchmark::State& state) { run_stack(state, 1); }
void BM_Gpt2Stack12_FwdBwd(benchmark::State& state) { run_stack(state, 12); }

// References in the same run: the block's biggest GEMM (fc: 256×768 · 768×3072) and a
// 4096³ GEMM through lowbit's gemm (lowbit::blas: OpenBLAS one thread per pool
// thread, or Eigen), and the same products through OpenBLAS called directly with its
// own threads — the rate lowbit's gemm must keep (issue #16: ≥ 0.95×).
std::vector<float>& gemm_operand(Index rows, Index cols, std::uint32_t seed) {
  static std::deque<std::vector<float>> keep;
  return keep.emplace_back(randn(rows * cols, 1.0f, seed));
}

void BM_Gemm(benchmark::State& state) {
  set_num_threads(static_cast<int>(state.range(0)));
  const Index m = state.range(1), n = state.range(2), k = state.range(3);
  const auto& a = gemm_operand(m, k, 1);
  const auto& b = gemm_operand(n, k, 2);
  std::vector<float> c(static_cast<std::size_t>(m * n));
  for (auto _ : state) {
    gemm<float>(m, n, k, a.data(), k, Trans::no, b.data(), k, Trans::yes, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * double(m) * double(n) * double(k) * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

#if defined(LOWBIT_HAS_BLAS)
void BM_OpenBlasDirect(benchmark::State& state) {
  const Index m = state.range(1), n = state.range(2), k = state.range(3);
  const auto& a = gemm_operand(m, k, 1);
  const auto& b = gemm_operand(n, k, 2);
  std::vector<float> c(static_cast<std::size_t>(m * n));
  lowbit::blas::gemm<float>(1, 1, 1, 1.0f, a.data(), 1, Trans::no, b.data(), 1, Trans::no, 0.0f, c.data(), 1);
  openblas_set_num_threads(static_cast<int>(state.range(0)));  // after lowbit's first call set it to 1
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, a.data(), static_cast<int>(k), b.data(), static_cast<int>(k), 0.0f,
                c.data(), static_cast<int>(n));
    benchmark::DoNotOptimize(c.data());
  }
  openblas_set_num_threads(1);
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * double(m) * double(n) * double(k) * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}
#endif

}  // namespace

// Arguments: threads, m, n, k.
#define LOWBIT_GEMM_SHAPES(b)                                                                          \
  BENCHMARK(b)->Args({1, kT, 4 * kDim, kDim})->Args({2, kT, 4 * kDim, kDim})->Args({1, 4096, 4096, 4096}) \
      ->Args({2, 4096, 4096, 4096})->ArgNames({"threads", "m", "n", "k"})->Unit(benchmark::kMillisecond)->UseRealTime()
LOWBIT_GEMM_SHAPES(BM_Gemm);
#if defined(LOWBIT_HAS_BLAS)
LOWBIT_GEMM_SHAPES(BM_OpenBlasDirect);
#endif
BENCHMARK(BM_Gpt2Block_FwdBwd)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Gpt2Stack12_FwdBwd)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

int main(int argc, char** argv) {
  return bench::run_benchmarks(argc, argv);
}
