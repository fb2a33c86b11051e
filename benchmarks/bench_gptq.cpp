// GPTQ solve time next to one GEMM W·H of the same size, and Hessian accumulation
// throughput next to the SYRK and GEMM rates, all through lowbit::blas (OpenBLAS in
// a default build, Eigen's kernels with LOWBIT_BLAS=none: `blas` in the context
// says which). Single-threaded unless a benchmark's `threads` argument says otherwise.
//
//   build/dev/benchmarks/bench_gptq --benchmark_counters_tabular=true
//
// Counters: `gemm_ratio` = GPTQ time / time of one W·H (rows × cols × cols) GEMM
// measured in the same process just before; `GFLOP/s` for the Hessian
// accumulation counts the tokens·n·(n+1) multiply-adds×2/2 a symmetric rank-k
// update needs (a full XᵀX GEMM does 2·tokens·n²).
#include <benchmark/benchmark.h>

#include "bench_main.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

#include <Eigen/Core>

#include "lowbit/autograd/thread_pool.hpp"
#include "lowbit/backend/blas.hpp"
#include "lowbit/gptq.hpp"

namespace {

using RowMatrix = lowbit::SolveResult::RowMajorMatrix;
constexpr lowbit::Index kSamples = 2048;

RowMatrix random_matrix(lowbit::Index rows, lowbit::Index cols, float stddev, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  RowMatrix m(rows, cols);
  for (lowbit::Index i = 0; i < m.size(); ++i) m.data()[i] = d(gen);
  return m;
}

/// H from kSamples random activations (feature scales vary, as in real layers).
lowbit::Hessian random_hessian(lowbit::Index cols, std::uint32_t seed) {
  RowMatrix x = random_matrix(kSamples, cols, 1.0f, seed);
  std::mt19937 gen(seed + 1);
  std::lognormal_distribution<float> scale(0.0f, 0.5f);
  for (lowbit::Index c = 0; c < cols; ++c) x.col(c) *= scale(gen);
  lowbit::HessianAccumulator<float> acc(cols);
  acc.add(lowbit::ConstMatrixView(x));
  return acc.hessian();
}

/// out = w·h (h column-major = its transpose row-major) through lowbit::blas.
void gemm_wh(const RowMatrix& w, const Eigen::MatrixXf& h, RowMatrix& out) {
  using lowbit::blas::Trans;
  lowbit::blas::gemm<float>(w.rows(), h.cols(), w.cols(), 1.0f, w.data(), w.cols(), Trans::no, h.data(), h.rows(),
                            Trans::yes, 0.0f, out.data(), out.cols());
}

double seconds_of_gemm(const RowMatrix& w, const Eigen::MatrixXf& h) {
  RowMatrix out(w.rows(), h.cols());
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    gemm_wh(w, h, out);
    benchmark::DoNotOptimize(out.data());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

using Solver = lowbit::Gptq<lowbit::Int<4>, lowbit::PerTensor>;

/// `reuse:1`: one solver for the whole program, as a study that quantizes layer
/// after layer uses it: its workspace stays allocated (and faulted in) across
/// calls and repetitions. `reuse:0`: a fresh solver per benchmark run, so with one
/// iteration per repetition every timed call is a first call.
void BM_Gptq4bitPerTensor(benchmark::State& state) {
  lowbit::autograd::set_num_threads(state.range(4));
  const lowbit::Index rows = state.range(0), cols = state.range(1);
  const RowMatrix w = random_matrix(rows, cols, 0.02f, 1);
  const lowbit::Hessian h = random_hessian(cols, 2);
  lowbit::GptqOptions o;
  o.block_size = 128;
  o.evaluate = state.range(2) != 0;
  static Solver shared;
  Solver fresh;
  Solver& gptq = state.range(3) != 0 ? shared : fresh;
  gptq.options() = o;
  const double gemm = seconds_of_gemm(w, h.matrix);
  double total = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    lowbit::SolveResult r = gptq.quantize(lowbit::ConstMatrixView(w), h);
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(r.weights.data());
  }
  const double per = total / static_cast<double>(state.iterations());
  state.counters["gemm_ms"] = gemm * 1e3;
  state.counters["gemm_ratio"] = per / gemm;
}

void BM_GemmWH(benchmark::State& state) {
  lowbit::autograd::set_num_threads(1);
  const lowbit::Index rows = state.range(0), cols = state.range(1);
  const RowMatrix w = random_matrix(rows, cols, 0.02f, 1);
  const Eigen::MatrixXf h = random_matrix(cols, cols, 1.0f, 3);
  RowMatrix out(rows, cols);
  for (auto _ : state) {
    gemm_wh(w, h, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(rows) * double(cols) * double(cols),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

/// Args: n, threads (the accumulation's SYRK is cut into column panels spread over
/// the pool: backend/blas.hpp).
template <class Scalar>
void BM_HessianAccumulate(benchmark::State& state) {
  lowbit::autograd::set_num_threads(static_cast<int>(state.range(1)));
  const lowbit::Index n = state.range(0);
  const RowMatrix x = random_matrix(kSamples, n, 1.0f, 4);
  // One accumulator fed batch after batch, as calibration streams them (a fresh one
  // per batch would time the first touch of its n² floats, not the accumulation).
  lowbit::HessianAccumulator<Scalar> acc(n);
  acc.add(lowbit::ConstMatrixView(x));
  for (auto _ : state) {
    acc.add(lowbit::ConstMatrixView(x));
    benchmark::DoNotOptimize(&acc);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(kSamples) * double(n) * double(n + 1),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

/// The SYRK rate on the same operands (lower triangle of XᵀX, as counted above): one
/// call of the BLAS's own SYRK (Eigen's in a BLAS-less build), one thread.
void BM_SyrkXtX(benchmark::State& state) {
  lowbit::autograd::set_num_threads(1);
  const lowbit::Index n = state.range(0);
  const RowMatrix x = random_matrix(kSamples, n, 1.0f, 4);
  Eigen::MatrixXf h = Eigen::MatrixXf::Zero(n, n);
  for (auto _ : state) {
    lowbit::blas::detail::syrk_here<float>(n, kSamples, 1.0f, x.data(), n, 0.0f, h.data(), n);
    benchmark::DoNotOptimize(h.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(kSamples) * double(n) * double(n + 1),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

/// The machine's GEMM rate on the same operands: full XᵀX (2·tokens·n² flops).
void BM_GemmXtX(benchmark::State& state) {
  using lowbit::blas::Trans;
  lowbit::autograd::set_num_threads(1);
  const lowbit::Index n = state.range(0);
  const RowMatrix x = random_matrix(kSamples, n, 1.0f, 4);
  RowMatrix h(n, n);
  for (auto _ : state) {
    lowbit::blas::gemm<float>(n, n, kSamples, 1.0f, x.data(), n, Trans::yes, x.data(), n, Trans::no, 0.0f, h.data(), n);
    benchmark::DoNotOptimize(h.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(kSamples) * double(n) * double(n),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

}  // namespace

// The three smaller layers run as long as Google Benchmark likes; 4096×4096 once
// per repetition, 7 repetitions (report the median), with the solver's workspace
// reused and fresh.
BENCHMARK(BM_Gptq4bitPerTensor)
    ->Args({768, 768, 0, 1, 1})
    ->Args({768, 3072, 0, 1, 1})
    ->Args({3072, 768, 0, 1, 1})
    ->Args({768, 768, 1, 1, 1})
    ->ArgNames({"rows", "cols", "eval", "reuse", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Gptq4bitPerTensor)
    ->Args({4096, 4096, 0, 1, 1})
    ->Args({4096, 4096, 0, 0, 1})
    ->Args({4096, 4096, 0, 1, 2})
    ->ArgNames({"rows", "cols", "eval", "reuse", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(7)
    ->UseRealTime();
BENCHMARK(BM_GemmWH)
    ->Args({768, 768})
    ->Args({768, 3072})
    ->Args({3072, 768})
    ->Args({4096, 4096})
    ->ArgNames({"rows", "cols"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_HessianAccumulate<float>)
    ->ArgsProduct({{768, 3072, 4096}, {1, 2}})
    ->ArgNames({"n", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_HessianAccumulate<double>)->Args({768, 1})->Args({3072, 1})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SyrkXtX)->Arg(768)->Arg(3072)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GemmXtX)->Arg(768)->Arg(3072)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  Eigen::setNbThreads(1);
  lowbit::autograd::set_num_threads(1);
  return bench::run_benchmarks(argc, argv);
}
