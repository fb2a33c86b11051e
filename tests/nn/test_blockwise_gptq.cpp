// A GPTQ checkpoint block by block (nn/blockwise_gptq.hpp): the folder is the
// in-memory path's (quantize_for_gptq_checkpoint + write_gptq_checkpoint) byte for
// byte, for GPTQ and RTN, on a sharded BF16 checkpoint some of whose linears stay
// float; an interrupted run resumes after its last finished block; the folder
// carries the model's tokenizer files and streams back (open_gptq_checkpoint).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/nn/blockwise_gptq.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/evaluate_blockwise.hpp"
#include "../support/temp_dir.hpp"
#include "../support/token_windows.hpp"

namespace {

namespace bg_fs = std::filesystem;
namespace bg_nn = lowbit::nn;

const bg_fs::path kBgMistral = bg_fs::path(LOWBIT_FIXTURE_DIR) / "models" / "mistral_tiny";

std::vector<std::vector<int>> bg_windows(int vocab) { return lowbit::test::token_windows(vocab, 6, 40, 777).ids; }

void bg_same_folder(const bg_fs::path& a, const bg_fs::path& b) {
  for (const char* f : {"model.safetensors", "config.json", "quantize_config.json"}) {
    CAPTURE(f);
    CHECK(lowbit::io::read_file(a / f) == lowbit::io::read_file(b / f));
  }
}

}  // namespace

TEST_CASE("blockwise: a GPTQ checkpoint block by block is the in-memory path's folder, byte for byte") {
  const auto ck = std::make_shared<const bg_nn::Checkpoint>(bg_nn::load_checkpoint(kBgMistral));
  const auto ids = bg_windows(ck->config.vocab);
  const std::vector<std::span<const int>> spans(ids.begin(), ids.end());
  const auto spec = lowbit::QuantSpec::parse("int4:g32:gptq:f16");
  const bg_fs::path dir = lowbit::test::temp_dir("blockwise_gptq");
  for (const auto method : {bg_nn::BlockMethod::rtn, bg_nn::BlockMethod::gptq}) {
    CAPTURE(bg_nn::block_method_name(method));
    bg_nn::Transformer m(bg_nn::load_checkpoint(kBgMistral));
    const auto ex = bg_nn::quantize_for_gptq_checkpoint(
        m, spec, method == bg_nn::BlockMethod::gptq ? bg_nn::GptqExportMethod::gptq : bg_nn::GptqExportMethod::rtn,
        spans);
    bg_nn::write_gptq_checkpoint(dir / "a", m, ex);
    bg_nn::BlockwiseOptions o;
    o.method = method;
    const auto r = bg_nn::quantize_gptq_checkpoint_blockwise(ck, spec, spans, dir / "b", {}, o);
    CHECK(r.report.quantized_blocks == ck->config.layers);
    CHECK(r.quantized_layers == ex.layers.size());
    CHECK(r.kept_float == ex.kept_float);  // MLP width 172: not a multiple of 32
    CHECK(r.kept_float.size() == 6);
    bg_same_folder(dir / "a", dir / "b");
    CHECK_FALSE(bg_fs::exists(dir / "b.blocks"));
  }
  bg_nn::BlockwiseOptions imatrix;
  imatrix.method = bg_nn::BlockMethod::rtn_imatrix;
  CHECK_THROWS_WITH_AS((void)bg_nn::quantize_gptq_checkpoint_blockwise(ck, spec, spans, dir / "c", {}, imatrix),
                       doctest::Contains("method imatrix does not write one block by block"), lowbit::Error);
  bg_fs::remove_all(dir);
}

TEST_CASE("blockwise: an interrupted GPTQ checkpoint resumes after its last finished block") {
  const auto ck = std::make_shared<const bg_nn::Checkpoint>(bg_nn::load_checkpoint(kBgMistral));
  const auto ids = bg_windows(ck->config.vocab);
  const std::vector<std::span<const int>> spans(ids.begin(), ids.end());
  const auto spec = lowbit::QuantSpec::parse("int4:g32:gptq:f16");
  const bg_fs::path dir = lowbit::test::temp_dir("blockwise_gptq_resume");
  bg_nn::BlockwiseOptions o;
  o.method = bg_nn::BlockMethod::gptq;
  (void)bg_nn::quantize_gptq_checkpoint_blockwise(ck, spec, spans, dir / "a", {}, o);
  struct Stop {};
  bg_nn::BlockwiseOptions stopping = o;
  stopping.progress = [](std::size_t done, std::size_t) {
    if (done == 8) throw Stop{};  // the second block's first layer
  };
  CHECK_THROWS_AS((void)bg_nn::quantize_gptq_checkpoint_blockwise(ck, spec, spans, dir / "b", {}, stopping), Stop);
  CHECK_FALSE(bg_fs::exists(dir / "b" / "config.json"));
  CHECK(bg_fs::exists(dir / "b.blocks" / "block-00000.safetensors"));
  // A GGUF run's folder is not this run's.
  CHECK_THROWS_WITH_AS((void)bg_nn::quantize_gguf_blockwise(ck, bg_nn::BlockPlan(lowbit::QuantSpec::parse("q4_0")),
                                                            spans, dir / "b.gguf", nullptr, "x",
                                                            [&] {
                                                              bg_nn::BlockwiseOptions g = o;
                                                              g.work_dir = dir / "b.blocks";
                                                              return g;
                                                            }()),
                       doctest::Contains("holds blocks of another run (output"), lowbit::Error);
  const auto r = bg_nn::quantize_gptq_checkpoint_blockwise(ck, spec, spans, dir / "b", {}, o);
  CHECK(r.report.resumed_blocks == 1);
  CHECK(r.report.quantized_blocks == ck->config.layers - 1);
  bg_same_folder(dir / "a", dir / "b");
  bg_fs::remove_all(dir);
}

TEST_CASE("blockwise: a GPTQ checkpoint carries the model's tokenizer files and streams back to its NLL") {
  // A copy of the fixture with tokenizer files beside it (their bytes are copied, not read).
  const bg_fs::path dir = lowbit::test::temp_dir("blockwise_gptq_tokenizer");
  const bg_fs::path model = dir / "model";
  bg_fs::create_directories(model);
  for (const auto& e : bg_fs::directory_iterator(kBgMistral)) bg_fs::copy_file(e.path(), model / e.path().filename());
  lowbit::io::write_file_atomic(model / "tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}\n");
  lowbit::io::write_file_atomic(model / "tokenizer_config.json", "{\"bos_token\": \"<s>\"}\n");
  const auto ck = std::make_shared<const bg_nn::Checkpoint>(bg_nn::load_checkpoint(model));
  const auto ids = bg_windows(ck->config.vocab);
  const std::vector<std::span<const int>> spans(ids.begin(), ids.end());
  bg_nn::GptqWriteOptions wo;
  wo.tokenizer_from = model;
  bg_nn::BlockwiseOptions o;
  o.method = bg_nn::BlockMethod::gptq;
  (void)bg_nn::quantize_gptq_checkpoint_blockwise(ck, lowbit::QuantSpec::parse("int4:g32:gptq:f16"), spans,
                                                  dir / "out", wo, o);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    CAPTURE(f);
    CHECK(lowbit::io::read_file(dir / "out" / f) == lowbit::io::read_file(model / f));
  }
  CHECK_FALSE(bg_fs::exists(dir / "out" / "special_tokens_map.json"));  // only what the model has

  // Read back lazily (each packed layer dequantized when its block is loaded) and in
  // memory: the same weights, the same NLL.
  const auto lazy = std::make_shared<const bg_nn::Checkpoint>(bg_nn::open_gptq_checkpoint(dir / "out"));
  const bg_nn::Checkpoint eager = bg_nn::load_gptq_checkpoint(dir / "out");
  REQUIRE(lazy->names() == eager.names());
  for (const std::string& n : eager.names()) {
    CAPTURE(n);
    CHECK(lazy->get(n).values == eager.weights.at(n).values);
  }
  bg_nn::Transformer streaming = bg_nn::Transformer::streaming(lazy);
  const auto want = bg_nn::evaluate(bg_nn::Transformer(eager), spans);
  const auto got = bg_nn::evaluate_blockwise(streaming, spans).tally;
  CHECK(got.tokens() == want.tokens());
  CHECK(std::abs(got.mean_nll() - want.mean_nll()) <= 2e-6 * want.mean_nll());
  bg_fs::remove_all(dir);
}
