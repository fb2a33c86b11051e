// Quantizer core throughput on a 4096×4096 fp32 weight, next to memcpy of the same
// bytes into a prefaulted buffer (the floor for any out-of-place pass). The weight
// is a std::vector, i.e. malloc'ed and only 16-byte aligned, as most callers' are.
// Ratios: scripts/bench_ratios.py over this program's --benchmark_format=json output.
#include <benchmark/benchmark.h>

#include "bench_weight.hpp"

#include <cstring>
#include <random>
#include <vector>

#include <lowbit/lowbit.hpp>

namespace {

using bench::kCols;
using bench::kRows;
using bench::prefaulted;
using bench::set_bytes;
using bench::weight;

void BM_Memcpy(benchmark::State& state) { bench::memcpy_weight(state); }
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);

// Applying known scales: the kernel alone.
template <class Q>
void BM_ApplyScales(benchmark::State& state) {
  const auto& w = weight();
  auto out = prefaulted();
  const lowbit::ConstMatrixView in(w.data(), kRows, kCols);
  const lowbit::QuantParams p = Q{}.params(in);
  for (auto _ : state) {
    p.apply(in, lowbit::MatrixView(out.data(), kRows, kCols));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

// Scale search + fake-quantize, out of place.
template <class Q>
void BM_FakeQuantize(benchmark::State& state) {
  const auto& w = weight();
  auto out = prefaulted();
  const lowbit::ConstMatrixView in(w.data(), kRows, kCols);
  const Q q{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(q.fake_quantize(in, lowbit::MatrixView(out.data(), kRows, kCols)));
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

// Scale search alone.
template <class Q>
void BM_ScaleSearch(benchmark::State& state) {
  const auto& w = weight();
  const lowbit::ConstMatrixView in(w.data(), kRows, kCols);
  const Q q{};
  for (auto _ : state) benchmark::DoNotOptimize(q.params(in));
  set_bytes(state);
}

// The passes of HistogramMse<> (TorchCompatible) on their own: the range
// statistics and torch.histc's 2048-bin histogram over that range.
void BM_Stats(benchmark::State& state) {
  const auto& w = weight();
  for (auto _ : state) benchmark::DoNotOptimize(lowbit::kernels::stats(w.data(), kRows * kCols));
  set_bytes(state);
}
BENCHMARK(BM_Stats)->Unit(benchmark::kMillisecond);

void BM_Histc2048(benchmark::State& state) {
  const auto& w = weight();
  const lowbit::SliceStats s = lowbit::kernels::stats(w.data(), kRows * kCols);
  for (auto _ : state)
    benchmark::DoNotOptimize(lowbit::make_histogram(w.data(), kRows * kCols, s.min, s.max, 2048));
  set_bytes(state);
}
BENCHMARK(BM_Histc2048)->Unit(benchmark::kMillisecond);

using namespace lowbit;
using Int4Tensor = Quantizer<Int<4>, PerTensor, AbsMax>;
using Int4Channel = Quantizer<Int<4>, PerChannel, AbsMax>;
using Int4Group128 = Quantizer<Int<4>, PerGroup<128>, AbsMax>;
using Int8Tensor = Quantizer<Int<8>, PerTensor, AbsMax>;
using Int2Tensor = Quantizer<Int<2>, PerTensor, AbsMax>;
using Full4Tensor = Quantizer<IntFull<4>, PerTensor, AbsMax>;
using Gptq4Tensor = Quantizer<GptqGrid<4>, PerTensor, AbsMax>;
using Gptq4Channel = Quantizer<GptqGrid<4>, PerChannel, AbsMax>;
using HistTensor = Quantizer<Int<4>, PerTensor, HistogramMse<>>;
using HistTrueTensor = Quantizer<Int<4>, PerTensor, HistogramMse<HistogramMode::TrueGrid>>;

BENCHMARK_TEMPLATE(BM_ApplyScales, Int4Tensor)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ApplyScales, Int8Tensor)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ApplyScales, Int2Tensor)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ApplyScales, Full4Tensor)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ApplyScales, Gptq4Tensor)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ApplyScales, Int4Channel)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ApplyScales, Int4Group128)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, Int4Tensor)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, Int4Channel)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, Int4Group128)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, Gptq4Channel)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ScaleSearch, HistTensor)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ScaleSearch, HistTrueTensor)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
