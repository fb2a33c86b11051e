// The export formats of issue #13, each next to a baseline in the same run:
//  - pd-5m written as a Q4_K GGUF by round-to-nearest, starting from its F32 GGUF on
//    disk: lowbit (nn::load_gguf + nn::write_gguf with the RTN codec) next to
//    llama.cpp's own llama_model_quantize (pure Q4_K, one thread) from the prebuilt
//    libllama of node-llama-cpp@3.21.1, loaded at run time when LOWBIT_LLAMA_LIB names
//    it (skipped otherwise);
//  - that Q4_K file read back (io::GgufFile::open + to_float of every tensor) next to
//    memcpy of the same number of float bytes;
//  - a 4096×4096 int4 g128 layer packed into a GPTQ checkpoint's qweight / qzeros /
//    scales / g_idx (io::pack_gptq_linear) next to memcpy of its fp32 weight.
//
//   scripts/fixtures/fetch_llama_cpp.sh      # prints GGML_LIB_DIR
//   LOWBIT_LLAMA_LIB=$GGML_LIB_DIR/libllama.v0.4.0.so build/release/benchmarks/bench_gguf
//       --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include "bench_weight.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <lowbit/io/gguf.hpp>
#include <lowbit/io/gptq_checkpoint.hpp>
#include <lowbit/nn/checkpoint.hpp>
#include <lowbit/nn/gguf_model.hpp>
#include <lowbit/quant/spec_quantizer.hpp>

#ifdef LOWBIT_HAVE_LLAMA_H
#include <llama.h>
#endif

namespace {

namespace fs = std::filesystem;

/// A temporary file of this run, removed when the program ends.
fs::path temp(const std::string& name) {
  static struct Cleanup {
    std::vector<fs::path> files;
    ~Cleanup() {
      std::error_code ec;
      for (const auto& f : files) fs::remove(f, ec);
    }
  } cleanup;
  cleanup.files.push_back(fs::temp_directory_path() / ("lowbit_bench_" + std::to_string(::getpid()) + "_" + name));
  return cleanup.files.back();
}

/// pd-5m's F32 GGUF, written once per run.
const fs::path& pd5m_f32() {
  static const fs::path p = [] {
    const fs::path out = temp("pd-5m-f32.gguf");
    lowbit::nn::write_gguf(out, lowbit::nn::load_checkpoint(fs::path(LOWBIT_SOURCE_DIR) / "models" / "pd-5m"));
    return out;
  }();
  return p;
}

std::int64_t file_bytes(const fs::path& p) { return static_cast<std::int64_t>(fs::file_size(p)); }

void BM_WriteQ4K_lowbit(benchmark::State& state) {
  const fs::path out = temp("lowbit-q4_k.gguf");
  const lowbit::QuantSpec q4k = lowbit::QuantSpec::parse("q4_k");
  for (auto _ : state) lowbit::nn::write_gguf(out, lowbit::nn::load_gguf(pd5m_f32()), nullptr, lowbit::nn::gguf_rtn_codec(q4k));
  state.counters["file_MB"] = static_cast<double>(file_bytes(out)) / 1e6;
}

void BM_WriteQ4K_llama_cpp(benchmark::State& state) {
#ifdef LOWBIT_HAVE_LLAMA_H
  const char* lib = std::getenv("LOWBIT_LLAMA_LIB");
  if (lib == nullptr) {
    state.SkipWithError("LOWBIT_LLAMA_LIB is not set (scripts/fixtures/fetch_llama_cpp.sh prints the library's folder)");
    return;
  }
  void* h = ::dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    state.SkipWithError(::dlerror());
    return;
  }
  using Defaults = llama_model_quantize_params (*)();
  using Quantize = std::uint32_t (*)(const char*, const char*, const llama_model_quantize_params*);
  using LogSet = void (*)(ggml_log_callback, void*);
  const auto defaults = reinterpret_cast<Defaults>(::dlsym(h, "llama_model_quantize_default_params"));
  const auto quantize = reinterpret_cast<Quantize>(::dlsym(h, "llama_model_quantize"));
  const auto log_set = reinterpret_cast<LogSet>(::dlsym(h, "llama_log_set"));
  if (defaults == nullptr || quantize == nullptr || log_set == nullptr) {
    state.SkipWithError("the library has no llama_model_quantize");
    return;
  }
  log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  llama_model_quantize_params p = defaults();
  p.nthread = 1;
  p.ftype = LLAMA_FTYPE_MOSTLY_Q4_K_M;
  p.pure = true;  // every tensor Q4_K (with its fallbacks): the types lowbit writes
  const fs::path out = temp("llama.cpp-q4_k.gguf");
  const std::string in = pd5m_f32().string();
  for (auto _ : state)
    if (quantize(in.c_str(), out.c_str(), &p) != 0) state.SkipWithError("llama_model_quantize failed");
  if (fs::exists(out)) state.counters["file_MB"] = static_cast<double>(file_bytes(out)) / 1e6;
#else
  state.SkipWithError("built without llama.h (LOWBIT_LLAMA_CPP_CACHE had no llama.cpp source at configure time)");
#endif
}

/// pd-5m in Q4_K, and the number of floats its tensors decode to.
const fs::path& pd5m_q4k() {
  static const fs::path p = [] {
    const fs::path out = temp("pd-5m-q4_k.gguf");
    lowbit::nn::write_gguf(out, lowbit::nn::load_gguf(pd5m_f32()), nullptr,
                           lowbit::nn::gguf_rtn_codec(lowbit::QuantSpec::parse("q4_k")));
    return out;
  }();
  return p;
}

/// Element counts of the Q4_K file's tensors, in file order.
std::vector<std::size_t> tensor_floats() {
  const lowbit::io::GgufFile f = lowbit::io::GgufFile::open(pd5m_q4k());
  std::vector<std::size_t> n;
  for (const auto& t : f.tensors()) {
    std::size_t e = 1;
    for (const auto d : t.ne) e *= static_cast<std::size_t>(d);
    n.push_back(e);
  }
  return n;
}

std::int64_t total_bytes(const std::vector<std::size_t>& n) {
  std::size_t s = 0;
  for (const auto e : n) s += e;
  return static_cast<std::int64_t>(s * sizeof(float));
}

void BM_ReadQ4K(benchmark::State& state) {
  const auto n = tensor_floats();
  for (auto _ : state) {
    const lowbit::io::GgufFile f = lowbit::io::GgufFile::open(pd5m_q4k());
    for (const auto& t : f.tensors()) benchmark::DoNotOptimize(f.to_float(t.name).data());
  }
  state.SetBytesProcessed(state.iterations() * total_bytes(n));
}

/// The baseline: the same floats copied, tensor by tensor into a new vector each (as
/// to_float returns them), from memory already decoded.
void BM_MemcpyDecoded(benchmark::State& state) {
  const auto n = tensor_floats();
  std::size_t largest = 0;
  for (const auto e : n) largest = std::max(largest, e);
  const std::vector<float> src(largest, 1.0f);
  for (auto _ : state)
    for (const auto e : n) {
      std::vector<float> dst(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(e));
      benchmark::DoNotOptimize(dst.data());
    }
  state.SetBytesProcessed(state.iterations() * total_bytes(n));
}

void BM_PackGptq(benchmark::State& state) {
  const lowbit::QuantSpec spec = lowbit::QuantSpec::parse("int4:g128:gptq:f16");
  const lowbit::QuantizedTensor q =
      lowbit::SpecQuantizer(spec).quantize(lowbit::ConstMatrixView(bench::weight().data(), bench::kRows, bench::kCols), "w");
  std::vector<lowbit::Index> g_idx(static_cast<std::size_t>(bench::kCols));
  for (std::size_t c = 0; c < g_idx.size(); ++c) g_idx[c] = static_cast<lowbit::Index>(c / 128);
  for (auto _ : state) benchmark::DoNotOptimize(lowbit::io::pack_gptq_linear("w", q.params, q.codes, g_idx).qweight.data());
  bench::set_bytes(state);
}

void BM_Memcpy(benchmark::State& state) { bench::memcpy_weight(state); }

}  // namespace

BENCHMARK(BM_WriteQ4K_lowbit)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_WriteQ4K_llama_cpp)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_ReadQ4K)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MemcpyDecoded)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PackGptq)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
