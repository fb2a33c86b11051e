// Full-precision evaluation of a GPT-2-small-shaped model (12 layers, d=768, 12
// heads, vocab 50257, context 1024; random weights) on one window, through
// nn::Evaluator (forward pass without a tape + the NLL's log-softmax), next to the
// same pass's GEMMs alone through autograd::gemm in the same run: the GEMM-bound
// limit of a forward pass. Thread counts 1 and 2 (autograd::set_num_threads).
//
//   build/dev/benchmarks/bench_models --benchmark_counters_tabular=true
// (LOWBIT_BENCH_TOKENS=256 for a shorter window.) Figures: docs/performance.md.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <span>
#include <vector>

#include <lowbit/autograd.hpp>
#include <lowbit/nn.hpp>

namespace {

using lowbit::Index;
namespace ag = lowbit::autograd;

lowbit::nn::TransformerConfig gpt2_small() {
  lowbit::nn::TransformerConfig c;
  c.arch = lowbit::nn::Architecture::gpt2;
  c.dim = 768;
  c.hidden = 3072;
  c.layers = 12;
  c.heads = 12;
  c.kv_heads = 12;
  c.vocab = 50257;
  c.context = 1024;
  c.tied_head = true;
  return c;
}

// Window length: the full context by default.
Index window_tokens() {
  if (const char* s = std::getenv("LOWBIT_BENCH_TOKENS")) return std::atol(s);
  return 1024;
}

const lowbit::nn::Transformer& model() {
  static const lowbit::nn::Transformer m(gpt2_small(), 1234);
  return m;
}

const std::vector<int>& window() {
  static const std::vector<int> w = [] {
    std::mt19937 gen(7);
    std::uniform_int_distribution<int> tok(0, 50256);
    std::vector<int> v(static_cast<std::size_t>(window_tokens()));
    for (auto& t : v) t = tok(gen);
    return v;
  }();
  return w;
}

void BM_EvaluateWindow(benchmark::State& state) {
  ag::set_num_threads(static_cast<int>(state.range(0)));
  const auto& m = model();
  lowbit::nn::Evaluator ev(m);
  const auto& w = window();
  // Warm the evaluator's arena as a run over many windows does: the first window
  // grows it chunk by chunk, the second faults in the consolidated chunk.
  for (int i = 0; i < 2; ++i) (void)ev.window_nll(w);
  std::int64_t predicted = 0;
  for (auto _ : state) {
    const auto [sum, n] = ev.window_nll(w);
    benchmark::DoNotOptimize(sum);
    predicted += n;
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(predicted), benchmark::Counter::kIsRate);
}

// The forward pass alone (logits on a graph kept across iterations, warmed up, no
// NLL): the difference to BM_EvaluateWindow is the NLL's log-softmax (double precision).
void BM_ForwardLogits(benchmark::State& state) {
  ag::set_num_threads(static_cast<int>(state.range(0)));
  const auto& m = model();
  const auto& w = window();
  const Index t = static_cast<Index>(w.size()) - 1;
  ag::NoGradGuard no_grad;
  ag::Graph g;
  const auto input = std::span<const int>(w).first(static_cast<std::size_t>(t));
  // Untimed warm-up: the first pass grows the arena chunk by chunk, the first clear()
  // merges them into one fresh chunk, the second pass touches its pages.
  for (int warm = 0; warm < 2; ++warm) {
    g.clear();
    (void)m.forward(input, 1, t);
  }
  std::int64_t predicted = 0;
  for (auto _ : state) {
    g.clear();
    const ag::Tensor logits = m.forward(input, 1, t);
    benchmark::DoNotOptimize(logits.data());
    predicted += t;
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(predicted), benchmark::Counter::kIsRate);
  state.counters["arena_MiB"] = static_cast<double>(g.peak_bytes()) / (1024.0 * 1024.0);
}

// The GEMMs of the same forward pass over T = window − 1 positions: per block the
// four linear layers (x·Wᵀ) and per head QKᵀ (T×T, full, as the attention kernel
// computes it) and P·V; then the tied classifier. Same row-major layouts.
void BM_ForwardGemmsOnly(benchmark::State& state) {
  ag::set_num_threads(static_cast<int>(state.range(0)));
  const auto c = gpt2_small();
  const Index t = window_tokens() - 1, d = c.dim, ff = c.hidden, hd = d / c.heads;
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  const auto randn = [&](Index n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = nd(gen);
    return v;
  };
  const auto x = randn(t * ff), wqkv = randn(3 * d * d), wo = randn(d * d), wfc = randn(ff * d), wout = randn(d * ff);
  const auto wte = randn(c.vocab * d);
  std::vector<float> out(static_cast<std::size_t>(std::max(t * c.vocab, t * ff))), scores(static_cast<std::size_t>(t * t));
  using ag::Trans;
  std::int64_t predicted = 0;
  for (auto _ : state) {
    for (int l = 0; l < c.layers; ++l) {
      ag::gemm<float>(t, 3 * d, d, x.data(), d, Trans::no, wqkv.data(), d, Trans::yes, out.data(), 3 * d);
      for (Index h = 0; h < c.heads; ++h) {
        ag::gemm<float>(t, t, hd, x.data() + h * hd, 3 * d, Trans::no, x.data() + d + h * hd, 3 * d, Trans::yes,
                        scores.data(), t);
        ag::gemm<float>(t, hd, t, scores.data(), t, Trans::no, x.data() + 2 * d + h * hd, 3 * d, Trans::no,
                        out.data() + h * hd, d);
      }
      ag::gemm<float>(t, d, d, x.data(), d, Trans::no, wo.data(), d, Trans::yes, out.data(), d);
      ag::gemm<float>(t, ff, d, x.data(), d, Trans::no, wfc.data(), d, Trans::yes, out.data(), ff);
      ag::gemm<float>(t, d, ff, x.data(), ff, Trans::no, wout.data(), ff, Trans::yes, out.data(), d);
    }
    ag::gemm<float>(t, c.vocab, d, x.data(), d, Trans::no, wte.data(), d, Trans::yes, out.data(), c.vocab);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
    predicted += t;
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(predicted), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_EvaluateWindow)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_ForwardLogits)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_ForwardGemmsOnly)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

BENCHMARK_MAIN();
