// The schemes of issue #12 on a 4096×4096 fp32 weight, each next to a baseline in
// the same run: decode and fake-quantize next to memcpy of the fp32 bytes, RTN
// encoding next to llama.cpp's own quantizer (the prebuilt libggml-base of
// node-llama-cpp@3.21.1, loaded at run time when LOWBIT_GGML_LIB names it; its
// benchmarks are skipped otherwise), GPTQ onto each block grid next to one GEMM W·H.
//
//   scripts/fixtures/fetch_llama_cpp.sh      # prints GGML_LIB_DIR
//   LOWBIT_GGML_LIB=$GGML_LIB_DIR/libggml-base.so build/release/benchmarks/bench_blocks
//       --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true
//
// Ratios: scripts/bench_ratios.py over --benchmark_format=json output (docs/performance.md).
#include <benchmark/benchmark.h>

#include "bench_weight.hpp"

#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <lowbit/lowbit.hpp>

namespace {

using lowbit::Index;
using lowbit::blocks::BlockType;
using bench::kCols;
using bench::kRows;
using bench::prefaulted;
using bench::set_bytes;
using bench::weight;

/// A positive per-column importance, as an imatrix would be.
const std::vector<float>& importance() {
  static const std::vector<float> imp = [] {
    std::vector<float> v(static_cast<std::size_t>(kCols));
    std::mt19937 gen(2);
    std::lognormal_distribution<float> d(0.0f, 1.0f);
    for (auto& x : v) x = d(gen);
    return v;
  }();
  return imp;
}

lowbit::ConstMatrixView input() { return {weight().data(), kRows, kCols}; }

void BM_Memcpy(benchmark::State& state) { bench::memcpy_weight(state); }

// ---- llama.cpp's quantizer, loaded at run time ---------------------------------

/// The two ggml entry points the baselines call (their C signatures).
struct Ggml {
  using QuantizeChunk = std::size_t (*)(int, const float*, void*, std::int64_t, std::int64_t, std::int64_t,
                                        const float*);
  using QuantizeInit = void (*)(int);
  QuantizeChunk quantize_chunk = nullptr;
  QuantizeInit quantize_init = nullptr;
  std::string why;

  static const Ggml& get() {
    static const Ggml g = [] {
      Ggml r;
      const char* path = std::getenv("LOWBIT_GGML_LIB");
      if (path == nullptr) {
        r.why = "LOWBIT_GGML_LIB is not set (scripts/fixtures/fetch_llama_cpp.sh prints the library's folder)";
        return r;
      }
      void* h = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) {
        r.why = std::string("cannot load ") + path + ": " + ::dlerror();
        return r;
      }
      r.quantize_chunk = reinterpret_cast<QuantizeChunk>(::dlsym(h, "ggml_quantize_chunk"));
      r.quantize_init = reinterpret_cast<QuantizeInit>(::dlsym(h, "ggml_quantize_init"));
      if (r.quantize_chunk == nullptr || r.quantize_init == nullptr) r.why = "the library has no ggml_quantize_chunk";
      return r;
    }();
    return g;
  }
  [[nodiscard]] bool ok() const { return why.empty(); }
};

// ---- block formats --------------------------------------------------------------

template <BlockType T>
void BM_Dequantize(benchmark::State& state) {
  const auto bytes = lowbit::blocks::quantize(T, input(), "w", nullptr);
  auto out = prefaulted();
  for (auto _ : state) {
    lowbit::blocks::dequantize(T, bytes.data(), lowbit::MatrixView(out.data(), kRows, kCols));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

template <BlockType T, bool WithImportance>
void BM_Quantize(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(lowbit::blocks::quantize(T, input(), "w", WithImportance ? importance().data() : nullptr));
  set_bytes(state);
}

template <BlockType T, bool WithImportance>
void BM_QuantizeLlamaCpp(benchmark::State& state) {
  const Ggml& g = Ggml::get();
  if (!g.ok()) {
    state.SkipWithError(g.why.c_str());
    return;
  }
  const int type = lowbit::blocks::info(T).ggml_type;
  g.quantize_init(type);
  std::vector<std::uint8_t> out(lowbit::blocks::row_bytes(T, kCols) * kRows);
  for (auto _ : state) {
    g.quantize_chunk(type, weight().data(), out.data(), 0, kRows, kCols, WithImportance ? importance().data() : nullptr);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

template <BlockType T>
void BM_FakeQuantizeBlock(benchmark::State& state) {
  const lowbit::SpecQuantizer q(lowbit::QuantSpec::parse(lowbit::blocks::info(T).name));
  auto out = prefaulted();
  for (auto _ : state) {
    benchmark::DoNotOptimize(q.fake_quantize(input(), lowbit::MatrixView(out.data(), kRows, kCols)));
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

// ---- integer grids through a run-time spec ------------------------------------------

void BM_ApplySpec(benchmark::State& state, const char* spec) {
  const lowbit::QuantParams p = lowbit::SpecQuantizer(lowbit::QuantSpec::parse(spec)).params(input());
  auto out = prefaulted();
  for (auto _ : state) {
    p.apply(input(), lowbit::MatrixView(out.data(), kRows, kCols));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

/// Codes and scales back to floats (QuantizedTensor::dequantize: an engine's
/// decode of lowbit's own format).
void BM_DequantizeSpec(benchmark::State& state, const char* spec) {
  const lowbit::QuantizedTensor t = lowbit::SpecQuantizer(lowbit::QuantSpec::parse(spec)).quantize(input());
  auto out = prefaulted();
  for (auto _ : state) {
    t.dequantize(lowbit::MatrixView(out.data(), kRows, kCols));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

void BM_FakeQuantizeSpec(benchmark::State& state, const char* spec) {
  const lowbit::SpecQuantizer q(lowbit::QuantSpec::parse(spec));
  auto out = prefaulted();
  for (auto _ : state) {
    benchmark::DoNotOptimize(q.fake_quantize(input(), lowbit::MatrixView(out.data(), kRows, kCols)));
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

// ---- GPTQ onto a block grid next to one GEMM W·H ------------------------------------

/// The GPTQ layer is n × n with n from LOWBIT_BENCH_GPTQ_N (default 2048; at most
/// the shared 4096 weight): GPTQ's O(n³) work grows faster than an encode's O(n²).
Index gptq_size() {
  const char* v = std::getenv("LOWBIT_BENCH_GPTQ_N");
  const long n = v != nullptr ? std::strtol(v, nullptr, 10) : 2048;
  return n >= 64 && n <= kRows ? static_cast<Index>(n) : 2048;
}
const Index kGptq = gptq_size();

const lowbit::Hessian& hessian() {
  static const lowbit::Hessian h = [] {
    std::mt19937 gen(3);
    std::normal_distribution<float> d(0.0f, 1.0f);
    ::Eigen::MatrixXf x(2 * kGptq, kGptq);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = d(gen);
    lowbit::Hessian r;
    r.matrix = (2.0f / static_cast<float>(x.rows())) * (x.transpose() * x);
    return r;
  }();
  return h;
}

void BM_GemmWH(benchmark::State& state) {
  const ::Eigen::Map<const ::Eigen::MatrixXf> w(weight().data(), kGptq, kGptq);
  ::Eigen::MatrixXf out(kGptq, kGptq);
  for (auto _ : state) {
    out.noalias() = w * hessian().matrix;
    benchmark::DoNotOptimize(out.data());
  }
}

void BM_GptqSpec(benchmark::State& state, const char* spec) {
  const lowbit::ConstMatrixView w(weight().data(), kGptq, kGptq);
  lowbit::GptqOptions o;
  o.evaluate = false;
  const lowbit::SpecGptq<> solver(lowbit::QuantSpec::parse(spec), o);
  for (auto _ : state) benchmark::DoNotOptimize(solver.quantize(w, hessian()));
}

}  // namespace

BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);

#define LOWBIT_BENCH_BLOCK(T)                                                                     \
  BENCHMARK_TEMPLATE(BM_Dequantize, BlockType::T)->Unit(benchmark::kMillisecond);                 \
  BENCHMARK_TEMPLATE(BM_FakeQuantizeBlock, BlockType::T)->Unit(benchmark::kMillisecond);          \
  BENCHMARK_TEMPLATE(BM_Quantize, BlockType::T, false)->Unit(benchmark::kMillisecond);            \
  BENCHMARK_TEMPLATE(BM_QuantizeLlamaCpp, BlockType::T, false)->Unit(benchmark::kMillisecond);    \
  BENCHMARK_TEMPLATE(BM_Quantize, BlockType::T, true)->Unit(benchmark::kMillisecond);             \
  BENCHMARK_TEMPLATE(BM_QuantizeLlamaCpp, BlockType::T, true)->Unit(benchmark::kMillisecond);

LOWBIT_BENCH_BLOCK(q8_0)
LOWBIT_BENCH_BLOCK(q4_0)
LOWBIT_BENCH_BLOCK(q4_1)
LOWBIT_BENCH_BLOCK(q5_0)
LOWBIT_BENCH_BLOCK(q5_1)
LOWBIT_BENCH_BLOCK(q2_k)
LOWBIT_BENCH_BLOCK(q3_k)
LOWBIT_BENCH_BLOCK(q4_k)
LOWBIT_BENCH_BLOCK(q5_k)
LOWBIT_BENCH_BLOCK(q6_k)
LOWBIT_BENCH_BLOCK(tq2_0)
LOWBIT_BENCH_BLOCK(iq4_nl)
LOWBIT_BENCH_BLOCK(mxfp4)
#undef LOWBIT_BENCH_BLOCK

BENCHMARK_CAPTURE(BM_ApplySpec, int4_g128_asym, "int4:g128:asym")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ApplySpec, int4_g128, "int4:g128")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_FakeQuantizeSpec, int4_g128_asym, "int4:g128:asym")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_FakeQuantizeSpec, int4_g32_f16, "int4:g32:f16")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ApplySpec, nf4_g64, "nf4:g64")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_FakeQuantizeSpec, nf4_g64, "nf4:g64")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DequantizeSpec, nf4_g64, "nf4:g64")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DequantizeSpec, int4_g128, "int4:g128")->Unit(benchmark::kMillisecond);

BENCHMARK(BM_GemmWH)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_GptqSpec, int4_channel, "int4:channel")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, int4_g128_asym, "int4:g128:asym")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, q4_0, "q4_0")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, q4_k, "q4_k")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, q2_k, "q2_k")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, iq4_nl, "iq4_nl")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, mxfp4, "mxfp4")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, q8_0, "q8_0")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, q6_k, "q6_k")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, q3_k, "q3_k")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_GptqSpec, nf4_g64, "nf4:g64")->Unit(benchmark::kMillisecond)->Iterations(1);

BENCHMARK_MAIN();
