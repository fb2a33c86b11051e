// llama2.c "v0" checkpoint reader (karpathy/llama2.c run.c layout).
//
// File: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len), then float32 weights in run.c's order. A positive vocab_size means the
// classifier shares the token embedding; a negative one means a separate classifier
// follows. The RoPE frequency block (seq_len · head_size floats, the legacy
// freq_cis_real + freq_cis_imag) sits between the final norm and the classifier and
// is skipped. The file size must match the header exactly.
//
// Tensor names follow Hugging Face's Llama (all [out, in] row-major, as run.c's
// matmul reads them), so loaders for both sources can share a mapping:
//   model.embed_tokens.weight            [vocab, dim]
//   model.layers.N.input_layernorm.weight          [dim]        (rms_att_weight)
//   model.layers.N.self_attn.q_proj.weight         [heads·hs, dim]     (wq)
//   model.layers.N.self_attn.k_proj.weight         [kv_heads·hs, dim]  (wk)
//   model.layers.N.self_attn.v_proj.weight         [kv_heads·hs, dim]  (wv)
//   model.layers.N.self_attn.o_proj.weight         [dim, heads·hs]     (wo)
//   model.layers.N.post_attention_layernorm.weight [dim]        (rms_ffn_weight)
//   model.layers.N.mlp.gate_proj.weight            [hidden, dim]       (w1)
//   model.layers.N.mlp.down_proj.weight            [dim, hidden]       (w2)
//   model.layers.N.mlp.up_proj.weight              [hidden, dim]       (w3)
//   model.norm.weight                    [dim]                  (rms_final_weight)
//   lm_head.weight                       [vocab, dim]  only when not shared
// Caution: the q/k weights are in llama2.c's rotary convention (RoPE rotates
// adjacent pairs (2i, 2i+1) of each head), not HF's rotate_half layout.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/core/checked.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"

namespace lowbit::io {

struct Llama2cConfig {
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;  ///< absolute value of the header's
  int seq_len = 0;
  bool shared_classifier = true;  ///< header vocab_size > 0
  [[nodiscard]] int head_size() const { return dim / n_heads; }
};

struct NamedTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::size_t offset = 0;  ///< in floats, into Llama2cCheckpoint::data
  [[nodiscard]] std::size_t numel() const {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
};

struct Llama2cCheckpoint {
  Llama2cConfig config;
  std::vector<float> data;           ///< all weights, RoPE block removed
  std::vector<NamedTensor> tensors;  ///< in file order
  std::string path;

  [[nodiscard]] bool contains(const std::string& name) const { return find(name) != nullptr; }
  [[nodiscard]] const NamedTensor* find(const std::string& name) const {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  [[nodiscard]] const NamedTensor& info(const std::string& name) const {
    const NamedTensor* t = find(name);
    if (!t) detail::fail("llama2.c checkpoint '", path, "' has no tensor '", name, "'");
    return *t;
  }
  [[nodiscard]] std::span<const float> values(const std::string& name) const {
    const NamedTensor& t = info(name);
    return {data.data() + t.offset, t.numel()};
  }
  /// The classifier: lm_head.weight, or the embedding when shared.
  [[nodiscard]] std::span<const float> classifier() const {
    return values(config.shared_classifier ? "model.embed_tokens.weight" : "lm_head.weight");
  }
};

/// Floats the file must hold after the header for config `c` (RoPE block included),
/// computed with overflow checks: a header whose sizes wrap 2^64 is refused here,
/// before anything proportional to it is allocated.
inline std::uint64_t llama2c_floats_in_file(const Llama2cConfig& c, const std::string& where) {
  using u64 = std::uint64_t;
  const std::string what = where + ": the header's tensor sizes";
  const u64 dim = static_cast<u64>(c.dim), hid = static_cast<u64>(c.hidden_dim), hs = static_cast<u64>(c.head_size());
  const u64 q_out = static_cast<u64>(c.n_heads) * hs, kv_out = static_cast<u64>(c.n_kv_heads) * hs;
  const u64 V = static_cast<u64>(c.vocab_size);
  // one layer: two norms, wq, wk, wv, wo, w1, w2, w3
  u64 layer = checked_mul<u64>(2, dim, what);
  layer = checked_add(layer, checked_mul(q_out, dim, what), what);
  layer = checked_add(layer, checked_product<u64>({2, kv_out, dim}, what), what);
  layer = checked_add(layer, checked_mul(dim, q_out, what), what);
  layer = checked_add(layer, checked_product<u64>({3, hid, dim}, what), what);
  u64 total = checked_mul(V, dim, what);  // embedding
  total = checked_add(total, checked_mul(static_cast<u64>(c.n_layers), layer, what), what);
  total = checked_add(total, dim, what);  // final norm
  total = checked_add(total, checked_mul(static_cast<u64>(c.seq_len), hs, what), what);  // RoPE block
  if (!c.shared_classifier) total = checked_add(total, checked_mul(V, dim, what), what);
  return total;
}

/// Parses and validates a llama2.c checkpoint held in memory; `label` names it in
/// messages. The header's sizes are checked against the byte count before any
/// tensor is listed or copied, so a hostile header costs nothing to refuse.
inline Llama2cCheckpoint parse_llama2c(std::string_view bytes, const std::string& label) {
  const auto where = [&] { return "llama2.c checkpoint '" + label + "'"; };
  detail::check(bytes.size() >= 28, where(), ": ", bytes.size(), " bytes is too short for the 28-byte header");
  std::int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof h);
  Llama2cCheckpoint ck;
  ck.path = label;
  Llama2cConfig& c = ck.config;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  detail::check(h[5] != 0 && h[5] != INT32_MIN, where(), ": vocab_size ", h[5], " is invalid");
  c.vocab_size = h[5] > 0 ? h[5] : -h[5];
  c.seq_len = h[6];
  const auto positive = [&](int v, const char* what) {
    detail::check(v > 0 && v <= (1 << 24), where(), ": header ", what, " = ", v, " is not in [1, 2^24]");
  };
  positive(c.dim, "dim");
  positive(c.hidden_dim, "hidden_dim");
  positive(c.n_layers, "n_layers");
  positive(c.n_heads, "n_heads");
  positive(c.n_kv_heads, "n_kv_heads");
  positive(c.seq_len, "seq_len");
  detail::check(c.dim % c.n_heads == 0, where(), ": dim ", c.dim, " is not a multiple of n_heads ", c.n_heads);
  detail::check(c.n_heads % c.n_kv_heads == 0, where(), ": n_heads ", c.n_heads,
                " is not a multiple of n_kv_heads ", c.n_kv_heads);
  detail::check(c.head_size() % 2 == 0, where(), ": head size ", c.head_size(), " is odd (RoPE needs pairs)");

  const std::uint64_t floats_in_file = llama2c_floats_in_file(c, where());
  const std::uint64_t file_floats = (bytes.size() - 28) / 4;
  detail::check((bytes.size() - 28) % 4 == 0 && floats_in_file == file_floats, where(), ": the header (dim=", c.dim,
                " hidden_dim=", c.hidden_dim, " n_layers=", c.n_layers, " n_heads=", c.n_heads, " n_kv_heads=",
                c.n_kv_heads, " vocab_size=", h[5], " seq_len=", c.seq_len, ") implies ", floats_in_file,
                " floats after the 28-byte header but the file has ", bytes.size(), " bytes");

  // From here every size is bounded by the file's own size.
  const std::int64_t dim = c.dim, hid = c.hidden_dim, L = c.n_layers, hs = c.head_size();
  const std::int64_t q_out = c.n_heads * hs, kv_out = c.n_kv_heads * hs, V = c.vocab_size;
  std::size_t offset = 0;
  const auto add = [&](std::string name, std::vector<std::int64_t> shape) {
    NamedTensor t{std::move(name), std::move(shape), offset};
    offset += t.numel();
    ck.tensors.push_back(std::move(t));
  };
  // run.c stores each weight kind for all layers together: collect per kind.
  const auto per_layer = [&](const std::string& suffix, std::vector<std::int64_t> shape) {
    for (std::int64_t l = 0; l < L; ++l) add("model.layers." + std::to_string(l) + "." + suffix, shape);
  };
  add("model.embed_tokens.weight", {V, dim});
  per_layer("input_layernorm.weight", {dim});
  per_layer("self_attn.q_proj.weight", {q_out, dim});
  per_layer("self_attn.k_proj.weight", {kv_out, dim});
  per_layer("self_attn.v_proj.weight", {kv_out, dim});
  per_layer("self_attn.o_proj.weight", {dim, q_out});
  per_layer("post_attention_layernorm.weight", {dim});
  per_layer("mlp.gate_proj.weight", {hid, dim});
  per_layer("mlp.down_proj.weight", {dim, hid});
  per_layer("mlp.up_proj.weight", {hid, dim});
  add("model.norm.weight", {dim});
  const std::size_t before_rope = offset;
  const std::size_t rope = static_cast<std::size_t>(c.seq_len) * static_cast<std::size_t>(hs);
  if (!c.shared_classifier) {
    add("lm_head.weight", {V, dim});  // in the file it follows the skipped RoPE block
  }
  detail::check(offset + rope == floats_in_file, where(), ": internal size mismatch");
  ck.data.resize(offset);
  std::memcpy(ck.data.data(), bytes.data() + 28, before_rope * 4);
  if (!c.shared_classifier)
    std::memcpy(ck.data.data() + before_rope, bytes.data() + 28 + 4 * (before_rope + rope),
                static_cast<std::size_t>(V * dim) * 4);
  return ck;
}

/// Reads and validates a llama2.c checkpoint file.
inline Llama2cCheckpoint load_llama2c(const std::filesystem::path& path) {
  return parse_llama2c(read_file(path), path.string());
}

}  // namespace lowbit::io
