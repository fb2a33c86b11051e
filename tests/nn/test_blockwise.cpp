// Block-by-block quantization in bounded memory (nn/blockwise.hpp): the GGUF it
// writes from a sharded BF16 checkpoint is the in-memory path's file byte for byte
// (RTN, imatrix, GPTQ), an interrupted run resumes after its last finished block,
// a work folder of another run is refused, and the memory it holds is one block,
// not the model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/blockwise.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "../support/temp_dir.hpp"
#include "../support/token_windows.hpp"

namespace {

namespace fs = std::filesystem;
namespace nn = lowbit::nn;
using lowbit::QuantSpec;

std::vector<std::uint8_t> file_bytes(const fs::path& p) {
  const std::string s = lowbit::io::read_file(p);
  return {s.begin(), s.end()};
}

/// Seeded calibration windows of token ids.
using BlockwiseWindows = lowbit::test::TokenWindows;
BlockwiseWindows blockwise_windows(int vocab, int count, int len) {
  return lowbit::test::token_windows(vocab, count, len, 12345);
}

/// The in-memory path: the whole model widened, quantize_to_blocks, write_gguf.
void in_memory(const fs::path& model, const nn::BlockPlan& plan, nn::BlockMethod method,
               const std::vector<std::span<const int>>& calib, const fs::path& out) {
  nn::Transformer m(nn::load_checkpoint(model));
  const auto enc = nn::quantize_to_blocks(m, plan, method, calib);
  nn::write_gguf(out, m, enc, plan, nullptr, "blockwise");
}

const fs::path kMistral = fs::path(LOWBIT_FIXTURE_DIR) / "models" / "mistral_tiny";

}  // namespace

TEST_CASE("blockwise: a sharded BF16 checkpoint quantizes block by block to the in-memory path's GGUF, byte for byte") {
  const auto ck = std::make_shared<const nn::Checkpoint>(nn::load_checkpoint(kMistral));
  REQUIRE(ck->files->file_count() == 3);
  const BlockwiseWindows w = blockwise_windows(ck->config.vocab, 6, 40);
  const fs::path dir = lowbit::test::temp_dir("blockwise_same");
  for (const char* type : {"q4_0", "q4_k"})
    for (const auto method : {nn::BlockMethod::rtn, nn::BlockMethod::rtn_imatrix, nn::BlockMethod::gptq}) {
      const nn::BlockPlan plan(QuantSpec::parse(type));
      CAPTURE(type);
      CAPTURE(nn::block_method_name(method));
      in_memory(kMistral, plan, method, w.spans, dir / "a.gguf");
      nn::BlockwiseOptions o;
      o.method = method;
      const auto report = nn::quantize_gguf_blockwise(ck, plan, w.spans, dir / "b.gguf", nullptr, "blockwise", o);
      CHECK(report.quantized_blocks == ck->config.layers);
      CHECK(report.resumed_blocks == 0);
      CHECK(file_bytes(dir / "a.gguf") == file_bytes(dir / "b.gguf"));
      CHECK_FALSE(fs::exists(dir / "b.gguf.blocks"));  // the work folder goes once the file is written
    }
  fs::remove_all(dir);
}

TEST_CASE("blockwise: an interrupted run resumes after its last finished block; another run's folder is refused") {
  const auto ck = std::make_shared<const nn::Checkpoint>(nn::load_checkpoint(kMistral));
  const BlockwiseWindows w = blockwise_windows(ck->config.vocab, 6, 40);
  const fs::path dir = lowbit::test::temp_dir("blockwise_resume");
  const nn::BlockPlan plan(QuantSpec::parse("q4_0"));
  in_memory(kMistral, plan, nn::BlockMethod::gptq, w.spans, dir / "a.gguf");
  struct Stop {};
  const std::size_t per_block = ck->config.layers > 0 ? 7 : 0;
  nn::BlockwiseOptions o;
  o.method = nn::BlockMethod::gptq;
  o.progress = [&](std::size_t done, std::size_t) {
    if (done == per_block + 1) throw Stop{};  // in the second block
  };
  CHECK_THROWS_AS(nn::quantize_gguf_blockwise(ck, plan, w.spans, dir / "b.gguf", nullptr, "blockwise", o), Stop);
  CHECK_FALSE(fs::exists(dir / "b.gguf"));
  CHECK(fs::exists(dir / "b.gguf.blocks" / "block-00000.safetensors"));
  CHECK_FALSE(fs::exists(dir / "b.gguf.blocks" / "block-00001.safetensors"));

  // Another plan, method or calibration: the folder's blocks are not this run's.
  nn::BlockwiseOptions other = o;
  other.progress = {};
  CHECK_THROWS_WITH_AS(nn::quantize_gguf_blockwise(ck, nn::BlockPlan(QuantSpec::parse("q8_0")), w.spans,
                                                   dir / "b.gguf", nullptr, "blockwise", other),
                       doctest::Contains("holds blocks of another run (plan"), lowbit::Error);
  const BlockwiseWindows fewer = blockwise_windows(ck->config.vocab, 5, 40);
  CHECK_THROWS_WITH_AS(
      nn::quantize_gguf_blockwise(ck, plan, fewer.spans, dir / "b.gguf", nullptr, "blockwise", other),
      doctest::Contains("(calibration:"), lowbit::Error);

  const auto report = nn::quantize_gguf_blockwise(ck, plan, w.spans, dir / "b.gguf", nullptr, "blockwise", other);
  CHECK(report.resumed_blocks == 1);
  CHECK(report.quantized_blocks == ck->config.layers - 1);
  CHECK(file_bytes(dir / "a.gguf") == file_bytes(dir / "b.gguf"));
  CHECK_FALSE(fs::exists(dir / "b.gguf.blocks"));
  fs::remove_all(dir);
}

namespace {

/// Anonymous resident memory (heap and anonymous maps; not the page cache of the
/// memory-mapped shards), from /proc/self/status; -1 where it cannot be read.
long rss_anon_kib() {
  std::ifstream f("/proc/self/status");
  std::string key;
  long value = -1;
  while (f >> key) {
    if (key == "RssAnon:") {
      f >> value;
      return value;
    }
    f.ignore(4096, '\n');
  }
  return -1;
}

/// A Llama checkpoint of `c` with seeded weights, written tensor by tensor as BF16
/// into `shards` shards with an index, never holding more than one shard.
void write_sharded_llama(const nn::TransformerConfig& c, const fs::path& dir, int shards) {
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> tensors;
  const std::int64_t d = c.dim, ff = c.hidden, kv = c.kv_dim(), q = c.q_dim();
  tensors.push_back({"model.embed_tokens.weight", {c.vocab, d}});
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const auto& [n, s] : std::vector<std::pair<std::string, std::vector<std::int64_t>>>{
             {"input_layernorm.weight", {d}}, {"self_attn.q_proj.weight", {q, d}}, {"self_attn.k_proj.weight", {kv, d}},
             {"self_attn.v_proj.weight", {kv, d}}, {"self_attn.o_proj.weight", {d, q}},
             {"post_attention_layernorm.weight", {d}}, {"mlp.gate_proj.weight", {ff, d}},
             {"mlp.up_proj.weight", {ff, d}}, {"mlp.down_proj.weight", {d, ff}}})
      tensors.push_back({p + n, s});
  }
  tensors.push_back({"model.norm.weight", {d}});
  tensors.push_back({"lm_head.weight", {c.vocab, d}});
  lowbit::io::Json map = lowbit::io::Json::object();
  std::uint64_t state = 99;
  const std::size_t per_shard = (tensors.size() + static_cast<std::size_t>(shards) - 1) / static_cast<std::size_t>(shards);
  for (int k = 0; k < shards; ++k) {
    lowbit::io::SafetensorsWriter w;
    const std::string file = "model-0000" + std::to_string(k + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
    for (std::size_t t = k * per_shard; t < std::min(tensors.size(), (k + 1) * per_shard); ++t) {
      const auto& [name, shape] = tensors[t];
      std::int64_t n = 1;
      for (auto s : shape) n *= s;
      std::vector<std::uint8_t> bytes(static_cast<std::size_t>(2 * n));
      const bool norm = shape.size() == 1;
      for (std::int64_t i = 0; i < n; ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        const float u = static_cast<float>((state >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;
        const std::uint16_t h = lowbit::io::f32_to_bf16(norm ? 1.0f + 0.1f * u : 0.1f * u);
        bytes[static_cast<std::size_t>(2 * i)] = static_cast<std::uint8_t>(h & 0xFF);
        bytes[static_cast<std::size_t>(2 * i + 1)] = static_cast<std::uint8_t>(h >> 8);
      }
      w.add(name, lowbit::io::DType::BF16, shape, bytes);
      map.set(name, lowbit::io::Json::string(file));
    }
    w.write(dir / file);
  }
  lowbit::io::Json index = lowbit::io::Json::object();
  index.set("metadata", lowbit::io::Json::object());
  index.set("weight_map", std::move(map));
  lowbit::io::write_file_atomic(dir / "model.safetensors.index.json", index.dump());
  lowbit::io::write_file_atomic(dir / "config.json", nn::config_to_hf_json(c).dump());
}

}  // namespace

TEST_CASE("blockwise: memory holds one block, not the model (anonymous RSS against the model's fp32 size)") {
  if (rss_anon_kib() < 0) {
    MESSAGE("skipped: /proc/self/status has no RssAnon on this system");
    return;
  }
  nn::TransformerConfig c;
  c.arch = nn::Architecture::llama;
  c.dim = 512;
  c.hidden = 1376;
  c.layers = 24;
  c.heads = 8;
  c.kv_heads = 4;
  c.vocab = 512;
  c.context = 64;
  const fs::path dir = lowbit::test::temp_dir("blockwise_rss");
  write_sharded_llama(c, dir, 2);
  const double fp32_mib = static_cast<double>(c.parameter_count()) * 4.0 / (1024.0 * 1024.0);
  const BlockwiseWindows w = blockwise_windows(c.vocab, 4, 32);
#if defined(__GLIBC__)
  malloc_trim(0);  // what writing the shards freed goes back to the system first
#endif
  const long base = rss_anon_kib();
  long peak = base;
  {
    const auto ck = std::make_shared<const nn::Checkpoint>(nn::load_checkpoint(dir));
    nn::BlockwiseOptions o;
    o.method = nn::BlockMethod::gptq;
    o.progress = [&](std::size_t, std::size_t) { peak = std::max(peak, rss_anon_kib()); };
    nn::quantize_gguf_blockwise(ck, nn::BlockPlan(QuantSpec::parse("q4_0")), w.spans, dir / "out.gguf", nullptr,
                                "blockwise", o);
    peak = std::max(peak, rss_anon_kib());
  }
  const double grown_mib = static_cast<double>(peak - base) / 1024.0;
  const double block_mib = fp32_mib / c.layers;
  MESSAGE("blockwise GPTQ of a " << fp32_mib << " MiB (fp32) model: anonymous RSS grew by at most " << grown_mib
                                 << " MiB (one block " << block_mib << " MiB)");
  // One block (11 MiB) + the widest layer's GPTQ workspace (~30 MiB) + the
  // calibration state, measured after each layer: ~65 MiB of the model's 270.
  CHECK(grown_mib < 0.35 * fp32_mib);
  CHECK(fs::file_size(dir / "out.gguf") > 0);
  fs::remove_all(dir);
}
