// Llama models to and from GGUF (nn/gguf_llama.hpp): llama.cpp's names both ways,
// Hugging Face query/key rows interleaved for llama.cpp's RoPE (the model read back
// computes the same logits), stories260K with its vocabulary written as llama.cpp's
// own converter writes it, and a q4_0 file whose tensors decode to llama.cpp's RTN,
// with the fallback to F16 where rows are not whole blocks.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "../io/shared_data.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/nn.hpp"
#include "lowbit/nn/gguf_llama.hpp"
#include "lowbit/quant/blocks/codec.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

fs::path temp_gguf(const char* name) {
  return fs::temp_directory_path() / (std::string(name) + "_" + std::to_string(::getpid()) + ".gguf");
}

std::vector<float> logits_of(const nn::Transformer& m, const std::vector<int>& ids) {
  autograd::Graph g;
  autograd::NoGradGuard ng;
  const auto t = m.forward(ids, 1, static_cast<Index>(ids.size()));
  return {t.values().begin(), t.values().end()};
}

}  // namespace

TEST_CASE("gguf llama: names map to llama.cpp's and back") {
  CHECK(nn::gguf_name_of("model.embed_tokens.weight") == "token_embd.weight");
  CHECK(nn::gguf_name_of("model.layers.11.self_attn.k_proj.weight") == "blk.11.attn_k.weight");
  CHECK(nn::gguf_name_of("model.layers.0.mlp.down_proj.weight") == "blk.0.ffn_down.weight");
  CHECK(nn::gguf_name_of("lm_head.weight") == "output.weight");
  CHECK(!nn::gguf_name_of("model.layers.x.mlp.down_proj.weight"));
  CHECK(!nn::gguf_name_of("model.layers.0.self_attn.rotary_emb.inv_freq"));
  for (const auto& n : nn::gguf_llama_block_names) {
    const std::string lowbit = "model.layers.7." + std::string(n.lowbit);
    CHECK(nn::lowbit_name_of(*nn::gguf_name_of(lowbit)) == lowbit);
  }
}

TEST_CASE("gguf llama: a Hugging Face Llama read back from GGUF computes the same logits") {
  const nn::Checkpoint ck = nn::load_checkpoint(fs::path(LOWBIT_FIXTURE_DIR) / "models" / "llama_tiny");
  REQUIRE(ck.config.rope_style == autograd::RopeStyle::half);
  const fs::path path = temp_gguf("lowbit_llama_tiny");
  nn::write_gguf_llama(path, ck);
  const nn::Checkpoint back = nn::load_gguf_llama(path);
  fs::remove(path);
  CHECK(back.config.rope_style == autograd::RopeStyle::interleaved);
  CHECK(back.config.dim == ck.config.dim);
  CHECK(back.config.kv_heads == ck.config.kv_heads);
  CHECK(back.config.tied_head == ck.config.tied_head);
  CHECK(back.config.norm_eps == ck.config.norm_eps);
  CHECK(back.config.rope_theta == ck.config.rope_theta);
  // Every weight but q/k is stored as it was; q/k rows are permuted, not changed.
  for (const auto& [name, w] : ck.weights) {
    CAPTURE(name);
    REQUIRE(back.weights.count(name) == 1);
    const auto& b = back.weights.at(name);
    CHECK(b.shape == w.shape);
    const bool qk = name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight");
    if (!qk) CHECK(std::memcmp(b.values.data(), w.values.data(), w.values.size() * sizeof(float)) == 0);
  }
  const nn::Transformer a(ck), c(back);
  std::vector<int> ids;
  for (int i = 0; i < std::min(ck.config.context, 12); ++i) ids.push_back((i * 7 + 3) % ck.config.vocab);
  const auto la = logits_of(a, ids), lc = logits_of(c, ids);
  REQUIRE(la.size() == lc.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < la.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(la[i] - lc[i])));
  CHECK(worst < 1e-5);
}

TEST_CASE("gguf llama: stories260K with its vocabulary, in F32 and q4_0") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const nn::Checkpoint ck = nn::load_checkpoint(data / "stories260K" / "stories260K.bin");
  const auto tok = text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", ck.config.vocab);
  const fs::path path = temp_gguf("lowbit_stories260k");

  nn::write_gguf_llama(path, ck, &tok, {}, "stories260K");
  {
    const io::GgufFile f = io::GgufFile::open(path);
    CHECK(f.string("tokenizer.ggml.model") == "llama");
    CHECK(f.integer("llama.block_count") == 5);
    CHECK(f.integer("llama.attention.head_count_kv") == 4);
    const auto& tokens = f.at("tokenizer.ggml.tokens").items;
    const auto& types = f.at("tokenizer.ggml.token_type").items;
    REQUIRE(tokens.size() == 512);
    CHECK(tokens[1].s == "<s>");
    CHECK(types[1].i == 3);
    CHECK(tokens[3].s == "<0x00>");
    CHECK(types[3].i == 6);
    CHECK(tokens[259].s == "\xe2\x96\x81t");  // " t" with SentencePiece's space
    CHECK(types[259].i == 1);
    CHECK(f.find_tensor("output.weight") == nullptr);  // tied: llama.cpp reuses token_embd
    const nn::Checkpoint back = nn::load_gguf_llama(path);
    REQUIRE(back.weights.size() == ck.weights.size());
    for (const auto& [name, w] : ck.weights) {
      CAPTURE(name);
      CHECK(back.weights.at(name).values == w.values);  // llama2.c's rows are llama.cpp's
    }
  }

  nn::write_gguf_llama(path, ck, &tok, nn::gguf_rtn_codec(QuantSpec::parse("q4_0")), "stories260K");
  const io::GgufFile f = io::GgufFile::open(path);
  const nn::Checkpoint back = nn::load_gguf_llama(path);
  fs::remove(path);
  for (const auto& [name, w] : ck.weights) {
    CAPTURE(name);
    const io::GgufTensorInfo& t = f.tensor(*nn::gguf_name_of(name));
    const auto& got = back.weights.at(name).values;
    if (w.shape.size() == 1) {
      CHECK(t.ggml_type == 0);
      CHECK(got == w.values);
    } else if (w.shape[1] % 32 != 0) {  // w2's rows of 172: llama.cpp keeps such a tensor in F16
      CHECK(t.ggml_type == 1);
      std::size_t differ = 0;
      for (std::size_t i = 0; i < got.size(); ++i) differ += got[i] != io::f16_to_f32(io::f32_to_f16(w.values[i]));
      CHECK(differ == 0);
    } else {
      CHECK(t.ggml_type == 2);
      const ConstMatrixView m(w.values.data(), w.shape[0], w.shape[1]);
      const auto bytes = blocks::quantize(blocks::BlockType::q4_0, m, name, nullptr);
      std::vector<float> want(w.values.size());
      blocks::dequantize(blocks::BlockType::q4_0, bytes.data(), MatrixView(want.data(), w.shape[0], w.shape[1]), name);
      CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("gguf llama: a file that is not a llama model is refused by name") {
  const fs::path path = temp_gguf("lowbit_not_llama");
  io::GgufWriter w;
  w.set("general.architecture", io::GgufValue::string("gpt2"));
  w.write(path, std::vector<std::vector<std::uint8_t>>{});
  CHECK_THROWS_WITH_AS(nn::load_gguf_llama(path), doctest::Contains("architecture 'gpt2' is not one lowbit reads"),
                       Error);
  io::GgufWriter v;
  v.set("general.architecture", io::GgufValue::string("llama"));
  v.write(path, std::vector<std::vector<std::uint8_t>>{});
  CHECK_THROWS_WITH_AS(nn::load_gguf_llama(path), doctest::Contains("metadata 'llama.embedding_length' is missing"),
                       Error);
  fs::remove(path);
}
