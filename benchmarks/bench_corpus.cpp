// The Python-docs pretraining corpus: prints its figures (files, bytes and GPT-2
// tokens per split, compact vocabulary, unknown rates, unigram baseline), then
// times listing + reading, the fingerprint and GPT-2 encoding of the whole corpus
// against a memcpy of the same bytes in the same run.
// Needs python3.11-doc (or LOWBIT_PYTHON_DOCS) and the shared data (LOWBIT_DATA or
// ../shared/data from the working directory).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/text/compact_vocab.hpp"
#include "lowbit/text/python_docs.hpp"
#include "lowbit/text/unigram.hpp"

namespace {

namespace text = lowbit::text;

constexpr text::Split all_splits[] = {text::Split::train, text::Split::validation, text::Split::test};

struct Data {
  std::optional<text::PythonDocs> docs;
  std::optional<text::Gpt2Tokenizer> gpt2;
  std::string bytes;  // every file's text, concatenated (the memcpy baseline's payload)
  std::string error;
};

const Data& data() {
  static const Data d = [] {
    Data x;
    try {
      x.docs = text::PythonDocs::open();
      x.gpt2 = text::Gpt2Tokenizer::from_dir(lowbit::io::data_dir() / "gpt2-bpe");
      for (const auto& f : x.docs->files()) x.bytes += x.docs->read(f);
    } catch (const lowbit::Error& e) {
      x.error = e.what();
    }
    return x;
  }();
  return d;
}

void print_figures() {
  const Data& d = data();
  if (!d.error.empty()) {
    std::printf("corpus figures unavailable: %s\n", d.error.c_str());
    return;
  }
  std::printf("Python docs corpus %s, fingerprint %s, split %.*s\n", d.docs->root().string().c_str(),
              d.docs->fingerprint_hex().c_str(), static_cast<int>(text::python_docs_split_version.size()),
              text::python_docs_split_version.data());
  std::vector<int> streams[3];
  for (const text::Split s : all_splits) {
    const auto files = d.docs->files(s);
    std::uintmax_t bytes = 0;
    for (const auto& f : files) bytes += f.size;
    streams[static_cast<int>(s)] = text::encode_python_docs(*d.docs, s, *d.gpt2);
    std::printf("  %-10s files %4zu  bytes %9ju  GPT-2 tokens %8zu\n", text::split_name(s), files.size(), bytes,
                streams[static_cast<int>(s)].size());
  }
  const auto vocab = text::CompactVocab::from_tokens(streams[0]);
  std::printf("  compact vocabulary (train ids + <|endoftext|> + unknown): %d\n", vocab.size());
  const auto train = vocab.to_compact(streams[0]);
  const auto model = text::UnigramModel::fit(train, vocab.size());
  for (const text::Split s : {text::Split::validation, text::Split::test}) {
    const auto ids = vocab.to_compact(streams[static_cast<int>(s)]);
    const auto unk = std::count(ids.begin(), ids.end(), vocab.unk_id());
    std::printf("  %-10s unknown %ld / %zu = %.4f%%, add-one unigram NLL %.4f nats/token\n", text::split_name(s),
                static_cast<long>(unk), ids.size(), 100.0 * static_cast<double>(unk) / static_cast<double>(ids.size()),
                model.mean_nll(ids));
  }
  std::fflush(stdout);
}

void BM_Memcpy_Corpus(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  std::string dst(d.bytes.size(), '\0');
  for (auto _ : state) {
    std::memcpy(dst.data(), d.bytes.data(), d.bytes.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.bytes.size()));
}

void BM_ListAndRead_Corpus(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  for (auto _ : state) {
    const auto docs = text::PythonDocs::open();
    std::size_t n = 0;
    for (const auto& f : docs.files()) n += docs.read(f).size();
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.bytes.size()));
}

void BM_Fingerprint_Corpus(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  for (auto _ : state) benchmark::DoNotOptimize(d.docs->fingerprint());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.bytes.size()));
}

// All three splits, as a training run prepares them; arg = encoding threads.
void BM_EncodeGpt2_Corpus(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  std::size_t tokens = 0;
  for (auto _ : state) {
    tokens = 0;
    for (const text::Split s : all_splits)
      tokens += text::encode_python_docs(*d.docs, s, *d.gpt2, static_cast<unsigned>(state.range(0))).size();
    benchmark::DoNotOptimize(tokens);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.bytes.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(tokens) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Memcpy_Corpus)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ListAndRead_Corpus)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Fingerprint_Corpus)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeGpt2_Corpus)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  print_figures();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
