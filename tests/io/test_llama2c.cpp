// llama2.c checkpoints: the real stories260K file against the header facts in
// ../shared/README.md, and hand-made files (separate classifier, corrupt headers).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/io/llama2c.hpp"
#include "shared_data.hpp"

using lowbit::Error;
namespace io = lowbit::io;
namespace fs = std::filesystem;

namespace {
// Writes a checkpoint whose i-th float (after the header) is i, so the reader's
// offsets can be checked against positions computed here from run.c's order.
fs::path write_checkpoint(const char* name, std::vector<std::int32_t> header, std::size_t floats) {
  const auto p = fs::temp_directory_path() / (std::string(name) + "_" + std::to_string(::getpid()) + ".bin");
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size() * 4));
  for (std::size_t i = 0; i < floats; ++i) {
    const float v = static_cast<float>(i);
    out.write(reinterpret_cast<const char*>(&v), 4);
  }
  return p;
}
}  // namespace

TEST_CASE("llama2c: stories260K header, tensor shapes and sizes") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const auto ck = io::load_llama2c(data / "stories260K" / "stories260K.bin");
  const auto& c = ck.config;
  CHECK(c.dim == 64);
  CHECK(c.hidden_dim == 172);
  CHECK(c.n_layers == 5);
  CHECK(c.n_heads == 8);
  CHECK(c.n_kv_heads == 4);
  CHECK(c.vocab_size == 512);
  CHECK(c.seq_len == 512);
  CHECK(c.shared_classifier);
  // 264,128 floats in the file, of which seq_len * head_size = 4,096 are the RoPE block.
  CHECK(ck.data.size() == 264128 - 4096);
  CHECK(ck.tensors.size() == 1 + 9 * 5 + 1);
  CHECK(!ck.contains("lm_head.weight"));
  CHECK(ck.info("model.layers.4.self_attn.k_proj.weight").shape == std::vector<std::int64_t>{32, 64});
  CHECK(ck.info("model.layers.0.mlp.down_proj.weight").shape == std::vector<std::int64_t>{64, 172});
  CHECK(ck.classifier().data() == ck.values("model.embed_tokens.weight").data());
  // RMSNorm gains of a trained model are positive and near 1; a shifted offset would
  // land in projection weights instead.
  for (const char* n : {"model.norm.weight", "model.layers.2.input_layernorm.weight"}) {
    double mean = 0;
    for (float v : ck.values(n)) mean += v;
    mean /= 64.0;
    INFO(n, " mean ", mean);
    CHECK(mean > 0.2);
    CHECK(mean < 5.0);
  }
  // The final norm is the 64 floats right before the RoPE block in the file.
  const std::string raw = io::read_file(data / "stories260K" / "stories260K.bin");
  std::vector<float> expect(64);
  std::memcpy(expect.data(), raw.data() + 28 + 4 * (259968), 64 * 4);
  const auto norm = ck.values("model.norm.weight");
  CHECK(std::vector<float>(norm.begin(), norm.end()) == expect);
}

TEST_CASE("llama2c: separate classifier after the skipped RoPE block, every offset") {
  // dim 4, hidden 6, 2 layers, 2 heads, 1 kv head, vocab -5 (separate classifier), seq 3.
  const int dim = 4, hid = 6, L = 2, hs = 2, V = 5, seq = 3;
  const std::size_t kv = 1 * hs;
  std::size_t pos = 0;
  std::vector<std::pair<std::string, std::size_t>> starts;  // run.c order
  const auto take = [&](const std::string& n, std::size_t count) { starts.emplace_back(n, pos); pos += count; };
  take("model.embed_tokens.weight", V * dim);
  for (int l = 0; l < L; ++l) take("model.layers." + std::to_string(l) + ".input_layernorm.weight", dim);
  for (int l = 0; l < L; ++l) take("model.layers." + std::to_string(l) + ".self_attn.q_proj.weight", dim * dim);
  for (int l = 0; l < L; ++l) take("model.layers." + std::to_string(l) + ".self_attn.k_proj.weight", dim * kv);
  for (int l = 0; l < L; ++l) take("model.layers." + std::to_string(l) + ".self_attn.v_proj.weight", dim * kv);
  for (int l = 0; l < L; ++l) take("model.layers." + std::to_string(l) + ".self_attn.o_proj.weight", dim * dim);
  for (int l = 0; l < L; ++l) take("model.layers." + std::to_string(l) + ".post_attention_layernorm.weight", dim);
  for (int l = 0; l < L; ++l) take("model.layers." + std::to_string(l) + ".mlp.gate_proj.weight", dim * hid);
  for (int l = 0; l < L; ++l) take("model.layers." + std::to_string(l) + ".mlp.down_proj.weight", dim * hid);
  for (int l = 0; l < L; ++l) take("model.layers." + std::to_string(l) + ".mlp.up_proj.weight", dim * hid);
  take("model.norm.weight", dim);
  pos += seq * hs;  // freq_cis_real + freq_cis_imag
  take("lm_head.weight", V * dim);
  const auto p = write_checkpoint("lowbit_l2c", {dim, hid, L, 2, 1, -V, seq}, pos);
  const auto ck = io::load_llama2c(p);
  CHECK(!ck.config.shared_classifier);
  CHECK(ck.config.vocab_size == V);
  REQUIRE(ck.tensors.size() == starts.size());
  for (const auto& [name, start] : starts) {
    INFO(name);
    const auto v = ck.values(name);
    CHECK(v.front() == static_cast<float>(start));
    CHECK(v.back() == static_cast<float>(start + v.size() - 1));
  }
  CHECK(ck.classifier().front() == static_cast<float>(starts.back().second));

  // One float too many or too few: the size must match the header exactly.
  const auto longer = write_checkpoint("lowbit_l2c_long", {dim, hid, L, 2, 1, -V, seq}, pos + 1);
  CHECK_THROWS_WITH_AS((void)io::load_llama2c(longer), doctest::Contains("implies"), Error);
  const auto shorter = write_checkpoint("lowbit_l2c_short", {dim, hid, L, 2, 1, -V, seq}, pos - 1);
  CHECK_THROWS_WITH_AS((void)io::load_llama2c(shorter), doctest::Contains(shorter.string().c_str()), Error);
  const auto bad_heads = write_checkpoint("lowbit_l2c_heads", {dim, hid, L, 3, 1, -V, seq}, pos);
  CHECK_THROWS_WITH_AS((void)io::load_llama2c(bad_heads), doctest::Contains("n_heads"), Error);
  const auto zero = write_checkpoint("lowbit_l2c_zero", {dim, hid, 0, 2, 1, -V, seq}, pos);
  CHECK_THROWS_WITH_AS((void)io::load_llama2c(zero), doctest::Contains("n_layers"), Error);
  const auto tiny = write_checkpoint("lowbit_l2c_tiny", {dim, hid}, 0);
  CHECK_THROWS_WITH_AS((void)io::load_llama2c(tiny), doctest::Contains("28-byte header"), Error);
  for (const auto& f : {p, longer, shorter, bad_heads, zero, tiny}) fs::remove(f);
  CHECK_THROWS_AS((void)io::load_llama2c("/nonexistent/model.bin"), Error);
}

namespace {
std::string header_bytes(std::vector<std::int32_t> header, std::size_t extra_bytes) {
  std::string b(header.size() * 4 + extra_bytes, '\0');
  std::memcpy(b.data(), header.data(), header.size() * 4);
  return b;
}
}  // namespace

// Regression (issue #17): these sizes make 28 + 4·floats wrap past 2^64 to exactly
// 36, so a 36-byte file used to pass the size check and hand out tensors far
// outside its buffer (a segfault on the first read).
TEST_CASE("llama2c: a header whose sizes wrap 64-bit arithmetic is refused") {
  const std::vector<std::int32_t> h = {1 << 24, 16383, 1 << 24, 1 << 23, 1 << 23, (1 << 24) - 1, 1};
  CHECK_THROWS_WITH_AS((void)io::parse_llama2c(header_bytes(h, 8), "wrap.bin"),
                       doctest::Contains("wrap.bin': the header's tensor sizes"), Error);
  CHECK_THROWS_WITH_AS((void)io::parse_llama2c(header_bytes(h, 8), "wrap.bin"), doctest::Contains("overflows"),
                       Error);
}

// Regression (issue #17): a 28-byte header claiming 2^24 layers used to build the
// whole tensor list (gigabytes) before comparing with the file size. Now the size
// is checked first; the list is never built.
TEST_CASE("llama2c: a huge layer count in a bare header is refused before any allocation") {
  const std::vector<std::int32_t> h = {4, 6, 1 << 24, 2, 1, 5, 3};
  CHECK_THROWS_WITH_AS((void)io::parse_llama2c(header_bytes(h, 0), "huge.bin"),
                       doctest::Contains("but the file has 28 bytes"), Error);
  // A file whose tail is not whole floats is refused the same way.
  CHECK_THROWS_WITH_AS((void)io::parse_llama2c(header_bytes({4, 6, 1, 2, 1, 5, 3}, 3), "odd.bin"),
                       doctest::Contains("'odd.bin': the header"), Error);
  CHECK_THROWS_WITH_AS((void)io::parse_llama2c(header_bytes({4, 6, 1, 2, 1, 5, 3}, 3), "odd.bin"),
                       doctest::Contains("but the file has 31 bytes"), Error);
}
