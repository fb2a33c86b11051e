// Evaluation one block at a time (nn/evaluate_blockwise.hpp): the NLL of a streaming
// model — a sharded BF16 Hugging Face folder, a quantized GGUF decoded block by
// block — equals nn::evaluate's on the same weights held in memory, however the
// windows are grouped; GGUF files open lazily (open_gguf) and read back as
// load_gguf reads them.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/evaluate_blockwise.hpp"
#include "lowbit/nn/gguf_model.hpp"
#include "../support/temp_dir.hpp"
#include "../support/token_windows.hpp"

namespace {

namespace fs = std::filesystem;
namespace nn = lowbit::nn;

using EvalWindows = lowbit::test::TokenWindows;

/// Seeded windows whose lengths vary (len, len − 3, len − 6), so that chunks of
/// several lengths are exercised.
EvalWindows eval_windows(int vocab, int count, int len) { return lowbit::test::token_windows(vocab, count, len, 777, 3); }

/// The two evaluations agree to float32 accumulation order (windows batched in one,
/// one at a time in the other).
void check_same(const lowbit::text::NllTally& got, const lowbit::text::NllTally& want) {
  CHECK(got.tokens() == want.tokens());
  CHECK(std::abs(got.mean_nll() - want.mean_nll()) <= 2e-6 * std::abs(want.mean_nll()));
}

const fs::path kFixtures = fs::path(LOWBIT_FIXTURE_DIR) / "models";

}  // namespace

TEST_CASE("evaluate_blockwise: in memory and streaming from sharded BF16 shards, the NLL nn::evaluate gives") {
  for (const char* name : {"mistral_tiny", "gpt2_tiny", "qwen3_tiny"}) {
    CAPTURE(name);
    const auto ck = std::make_shared<const nn::Checkpoint>(nn::load_checkpoint(kFixtures / name));
    nn::Transformer in_memory(*ck);
    const EvalWindows w = eval_windows(ck->config.vocab, 7, static_cast<int>(std::min<long>(ck->config.context, 24)));
    const auto want = nn::evaluate(in_memory, w.spans);
    check_same(nn::evaluate_blockwise(in_memory, w.spans).tally, want);

    nn::Transformer streaming = nn::Transformer::streaming(ck);
    nn::BlockwiseEvalOptions o;
    o.batch = 2;
    o.state_bytes = 1;  // every window its own group: each block widened once per window
    std::size_t passes = 0, total = 0;
    o.progress = [&](std::size_t done, std::size_t of) {
      passes = done;
      total = of;
    };
    const auto r = nn::evaluate_blockwise(streaming, w.spans, o);
    check_same(r.tally, want);
    CHECK(r.groups == w.spans.size());
    CHECK(passes == total);
    CHECK(total == w.spans.size() * static_cast<std::size_t>(ck->config.layers));
    // Nothing stays widened: the next forward through a block would need a load.
    CHECK_THROWS_WITH_AS(nn::evaluate(streaming, w.spans), doctest::Contains("not loaded"), lowbit::Error);
  }
}

TEST_CASE("evaluate_blockwise: a quantized GGUF streams block by block to load_gguf's NLL") {
  const nn::Checkpoint ck = nn::load_checkpoint(kFixtures / "llama_tiny");
  const fs::path dir = lowbit::test::temp_dir("evaluate_blockwise_gguf");
  const fs::path path = dir / "q4_0.gguf";
  nn::write_gguf(path, ck, nullptr, nn::gguf_rtn_codec(lowbit::QuantSpec::parse("q4_0")), "llama_tiny");

  const nn::Checkpoint eager = nn::load_gguf(path);
  const auto lazy = std::make_shared<const nn::Checkpoint>(nn::load_checkpoint(path));  // .gguf: open_gguf
  REQUIRE(lazy->weights.empty());
  REQUIRE(lazy->names() == eager.names());
  for (const std::string& n : eager.names()) {
    CAPTURE(n);
    CHECK(lazy->shape(n) == eager.shape(n));
    CHECK(lazy->get(n).values == eager.weights.at(n).values);
  }
  CHECK(lazy->config.dim == eager.config.dim);
  CHECK(lazy->config.rope_style == eager.config.rope_style);

  const EvalWindows w = eval_windows(ck.config.vocab, 5, 20);
  nn::Transformer in_memory(eager);
  nn::Transformer streaming = nn::Transformer::streaming(lazy);
  const auto want = nn::evaluate(in_memory, w.spans);
  check_same(nn::evaluate_blockwise(streaming, w.spans).tally, want);
  // The quantized model is a different model: its NLL is not the float one's.
  CHECK(want.mean_nll() != nn::evaluate(nn::Transformer(ck), w.spans).mean_nll());
  fs::remove_all(dir);
}

TEST_CASE("evaluate_blockwise: bad windows are refused by name") {
  const auto ck = std::make_shared<const nn::Checkpoint>(nn::load_checkpoint(kFixtures / "llama_tiny"));
  nn::Transformer m = nn::Transformer::streaming(ck);
  CHECK_THROWS_WITH_AS(nn::evaluate_blockwise(m, {}), doctest::Contains("no windows"), lowbit::Error);
  const std::vector<int> one{3}, fine{1, 2, 3}, outside{1, 2, 1 << 20};
  CHECK_THROWS_WITH_AS(nn::evaluate_blockwise(m, {std::span<const int>(fine), std::span<const int>(one)}),
                       doctest::Contains("window 1 needs at least two tokens"), lowbit::Error);
  CHECK_THROWS_WITH_AS(nn::evaluate_blockwise(m, {std::span<const int>(outside)}),
                       doctest::Contains("outside the vocabulary"), lowbit::Error);
}
