// Loading a model's weights from Hugging Face safetensors (GPT-2, Llama), a GGUF file
// or a llama2.c checkpoint into one name → tensor map in lowbit's canonical layout.
//
// Canonical layout: every linear weight is [out_features, in_features] (nn.Linear).
// GPT-2's Conv1D weights are stored [in, out] in HF files and are transposed here;
// the exporter transposes them back. GPT-2 names are kept as HF writes them for
// GPT2LMHeadModel ("transformer.h.0.attn.c_attn.weight"); files saved from
// GPT2Model (no "transformer." prefix) are accepted too. Llama names are HF's
// ("model.layers.0.self_attn.q_proj.weight"); llama2.c checkpoints map to them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/llama2c.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/safetensors_shards.hpp"
#include "lowbit/nn/config.hpp"
#include "lowbit/nn/gguf_names.hpp"

namespace lowbit::nn {

struct Weight {
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

namespace detail {

/// GPT-2's Conv1D weights, stored [in, out] in Hugging Face files.
inline bool is_conv1d_weight(const std::string& name) {
  for (const char* s : {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight"})
    if (name.size() > std::string(s).size() && name.compare(name.size() - std::string(s).size(), std::string::npos, s) == 0)
      return true;
  return false;
}

inline Weight transposed(const Weight& w) {
  const auto rows = w.shape.at(0), cols = w.shape.at(1);
  Weight t{{cols, rows}, std::vector<float>(w.values.size())};
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      t.values[static_cast<std::size_t>(c * rows + r)] = w.values[static_cast<std::size_t>(r * cols + c)];
  return t;
}

}  // namespace detail

/// Tensors that stay in their (memory-mapped) files until asked for: shapes without
/// reading any values, values widened to fp32 one tensor at a time.
class TensorFiles {
 public:
  virtual ~TensorFiles() = default;
  [[nodiscard]] virtual std::vector<std::string> names() const = 0;
  /// The shape as stored, outermost dimension first.
  [[nodiscard]] virtual std::vector<std::int64_t> shape(const std::string& stored) const = 0;
  [[nodiscard]] virtual std::vector<float> to_float(const std::string& stored) const = 0;
  [[nodiscard]] virtual std::string source() const = 0;
  [[nodiscard]] virtual std::size_t file_count() const = 0;
  /// The stored tensor is a GPT-2 Conv1D weight kept as [in, out] (Hugging Face's
  /// files), which Checkpoint::get transposes into lowbit's [out, in].
  [[nodiscard]] virtual bool conv1d_stored(const std::string& /*stored*/) const { return false; }
};

/// safetensors, one file or shards (F32, F16, BF16 stay in the stored type); `gpt2`:
/// a GPT-2 folder, whose Conv1D weights are stored [in, out].
class SafetensorsFiles final : public TensorFiles {
 public:
  SafetensorsFiles(io::SafetensorsShards shards, bool gpt2) : shards_(std::move(shards)), gpt2_(gpt2) {}
  std::vector<std::string> names() const override { return shards_.names(); }
  std::vector<std::int64_t> shape(const std::string& stored) const override { return shards_.info(stored).shape; }
  std::vector<float> to_float(const std::string& stored) const override { return shards_.to_float(stored); }
  std::string source() const override { return shards_.source(); }
  std::size_t file_count() const override { return shards_.shard_count(); }
  bool conv1d_stored(const std::string& stored) const override { return gpt2_ && detail::is_conv1d_weight(stored); }

 private:
  io::SafetensorsShards shards_;
  bool gpt2_ = false;
};

/// A GGUF file: any tensor type lowbit decodes (F32, F16, BF16 and llama.cpp's block
/// formats) is dequantized when asked for, so a quantized model streams as well.
class GgufFiles final : public TensorFiles {
 public:
  explicit GgufFiles(io::GgufFile file, std::string source) : file_(std::move(file)), source_(std::move(source)) {}
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& t : file_.tensors()) out.push_back(t.name);
    return out;
  }
  std::vector<std::int64_t> shape(const std::string& stored) const override {
    const io::GgufTensorInfo& t = file_.tensor(stored);
    return {t.ne.rbegin(), t.ne.rend()};  // ne lists the innermost dimension first
  }
  std::vector<float> to_float(const std::string& stored) const override { return file_.to_float(stored); }
  std::string source() const override { return source_; }
  std::size_t file_count() const override { return 1; }
  [[nodiscard]] const io::GgufFile& file() const { return file_; }

 private:
  io::GgufFile file_;
  std::string source_;
};

/// A model's config and its tensors by canonical name. Tensors of a Hugging Face
/// folder stay in their (memory-mapped) files in the stored type and are widened —
/// GPT-2's Conv1D weights transposed — one at a time, when get() asks for them;
/// so do a GGUF file's (open_gguf), dequantized when asked for; tensors read otherwise
/// (llama2.c, load_gguf, built in code) are held in `weights`.
struct Checkpoint {
  TransformerConfig config;
  std::map<std::string, Weight> weights;  ///< tensors held in memory, by canonical name
  std::string source;                     ///< file or folder, for messages
  /// Tensors still in their files: canonical name → stored name.
  std::shared_ptr<const TensorFiles> files;
  std::map<std::string, std::string> stored;

  /// Every tensor's canonical name, sorted.
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, w] : weights) out.push_back(name);
    for (const auto& [name, in_file] : stored)
      if (!weights.count(name)) out.push_back(name);
    std::sort(out.begin(), out.end());
    return out;
  }
  [[nodiscard]] bool contains(const std::string& name) const { return weights.count(name) || stored.count(name); }

  /// The tensor's shape in canonical layout, without reading its values.
  [[nodiscard]] std::vector<std::int64_t> shape(const std::string& name) const {
    if (const auto it = weights.find(name); it != weights.end()) return it->second.shape;
    const auto it = stored.find(name);
    if (it == stored.end()) lowbit::detail::fail("checkpoint '", source, "' has no tensor '", name, "'");
    std::vector<std::int64_t> s = files->shape(it->second);
    if (transposed_in_file(name)) std::reverse(s.begin(), s.end());
    return s;
  }

  /// The tensor in fp32, canonical layout (a copy).
  [[nodiscard]] Weight get(const std::string& name) const {
    if (const auto it = weights.find(name); it != weights.end()) return it->second;
    const auto it = stored.find(name);
    if (it == stored.end()) lowbit::detail::fail("checkpoint '", source, "' has no tensor '", name, "'");
    Weight w{files->shape(it->second), files->to_float(it->second)};
    if (transposed_in_file(name)) {
      lowbit::detail::check(w.shape.size() == 2, "checkpoint '", source, "': Conv1D weight '", name, "' is not 2-D");
      w = detail::transposed(w);
    }
    return w;
  }

  /// The weight `name`, checked against the shape the model expects and for finiteness.
  [[nodiscard]] Weight get(const std::string& name, const std::vector<std::int64_t>& want) const {
    if (!contains(name)) lowbit::detail::fail("checkpoint '", source, "' has no tensor '", name, "'");
    if (const auto got = shape(name); got != want) {
      std::string w, g;
      for (auto d : want) w += std::to_string(d) + " ";
      for (auto d : got) g += std::to_string(d) + " ";
      lowbit::detail::fail("checkpoint '", source, "': tensor '", name, "' has shape [ ", g, "] but the config needs [ ",
                           w, "]");
    }
    Weight out = get(name);
    for (std::size_t i = 0; i < out.values.size(); ++i)
      if (!std::isfinite(out.values[i]))
        lowbit::detail::fail("checkpoint '", source, "': tensor '", name, "' has a non-finite value at flat index ", i);
    return out;
  }

 private:
  [[nodiscard]] bool transposed_in_file(const std::string& name) const {
    if (weights.count(name)) return false;
    const auto it = stored.find(name);
    return it != stored.end() && files->conv1d_stored(it->second);
  }
};

/// `ck` with every tensor widened into `weights` and its files let go: what load_gguf
/// and load_gptq_checkpoint return from their lazy counterparts.
inline Checkpoint held_in_memory(Checkpoint ck) {
  for (const std::string& name : ck.names()) ck.weights.emplace(name, ck.get(name));
  ck.files.reset();
  ck.stored.clear();
  return ck;
}

/// A Hugging Face folder: config.json + model.safetensors, or sharded shards with
/// model.safetensors.index.json. Nothing is widened here (see Checkpoint).
inline Checkpoint load_hf_checkpoint(const std::filesystem::path& dir) {
  const auto cfg_path = dir / "config.json";
  lowbit::detail::check(std::filesystem::exists(cfg_path), "model folder '", dir.string(), "' has no config.json");
  // A quantized folder's linears are packed integers, not float tensors: say so.
  const io::Json cfg = io::Json::parse(io::read_file(cfg_path), cfg_path.string());
  if (cfg.is_object())
    if (const io::Json* q = cfg.find("quantization_config"); q && !q->is_null())
      lowbit::detail::fail("model folder '", dir.string(), "' is a quantized checkpoint (config.json has a "
                           "quantization_config): read a GPTQ checkpoint with nn::load_gptq_checkpoint, "
                           "or nn::open_gptq_checkpoint to stream it (lowbit/nn/gptq_export.hpp)");
  Checkpoint ck;
  ck.config = config_from_hf_json(cfg, cfg_path.string());
  ck.files = std::make_shared<const SafetensorsFiles>(io::SafetensorsShards::open_folder(dir),
                                                      ck.config.arch == Architecture::gpt2);
  ck.source = ck.files->source();
  for (const std::string& stored : ck.files->names()) {
    std::string name = stored;
    if (ck.config.arch == Architecture::gpt2) {
      if (name.rfind("transformer.", 0) != 0 && name.rfind("lm_head.", 0) != 0) name = "transformer." + name;
      if (name.find(".attn.bias") != std::string::npos || name.find(".attn.masked_bias") != std::string::npos)
        continue;  // causal-mask buffers some versions save
    }
    lowbit::detail::check(ck.stored.emplace(name, stored).second, "checkpoint '", ck.source, "': tensor '", name,
                          "' appears twice (with and without the 'transformer.' prefix)");
  }
  return ck;
}

/// A llama2.c checkpoint (.bin).
inline Checkpoint load_llama2c_checkpoint(const std::filesystem::path& path) {
  const io::Llama2cCheckpoint raw = io::load_llama2c(path);
  Checkpoint ck;
  ck.config = config_from_llama2c(raw.config, path.string());
  ck.source = path.string();
  for (const auto& t : raw.tensors) {
    const auto v = raw.values(t.name);
    ck.weights.emplace(t.name, Weight{t.shape, std::vector<float>(v.begin(), v.end())});
  }
  return ck;
}

/// A GGUF of arch `llama` or `gpt2` (lowbit's names and layout; a Llama is
/// RopeStyle::interleaved), its tensors left in the memory-mapped file and decoded
/// one at a time when asked for — F32, F16, BF16 or any block type lowbit decodes.
inline Checkpoint open_gguf(const std::filesystem::path& path) {
  auto files = std::make_shared<const GgufFiles>(io::GgufFile::open(path), path.string());
  const io::GgufFile& f = files->file();
  const GgufArch* arch = &gguf_file_arch(f, path);
  const std::string a(arch->name);
  const auto get = [&](const char* key) { return static_cast<int>(f.integer(a + "." + key, 1, 1 << 24)); };
  const auto real = [&](const char* key, float fallback) {
    const io::GgufValue* v = f.find(a + "." + key);
    if (v == nullptr) return fallback;
    lowbit::detail::check(v->type == io::GgufType::f32, "GGUF file '", path.string(), "': metadata '", a, ".", key,
                          "' must be f32");
    return static_cast<float>(v->f);
  };
  Checkpoint ck;
  ck.source = path.string();
  TransformerConfig& c = ck.config;
  c.arch = arch->arch;
  c.dim = get("embedding_length");
  c.hidden = get("feed_forward_length");
  c.layers = get("block_count");
  c.heads = get("attention.head_count");
  c.kv_heads = f.find(a + ".attention.head_count_kv") ? get("attention.head_count_kv") : c.heads;
  c.context = get("context_length");
  if (c.arch == Architecture::gpt2) {
    lowbit::detail::check(c.kv_heads == c.heads, "GGUF file '", path.string(), "': gpt2.attention.head_count_kv ",
                          c.kv_heads, " differs from the head count ", c.heads, " (GPT-2 has no grouped-query attention)");
    c.norm_eps = real("attention.layer_norm_epsilon", 1e-5f);
  } else {
    c.norm_eps = real("attention.layer_norm_rms_epsilon", 1e-5f);
    c.rope_theta = real("rope.freq_base", 10000.0f);
    c.rope_style = autograd::RopeStyle::interleaved;
    if (f.find("llama.rope.dimension_count") != nullptr && c.heads > 0 && c.dim % c.heads == 0)
      lowbit::detail::check(get("rope.dimension_count") == c.dim / c.heads, "GGUF file '", path.string(),
                            "': llama.rope.dimension_count must equal the head size ", c.dim / c.heads,
                            " (partial RoPE is not supported)");
  }
  const io::GgufTensorInfo& embed = f.tensor("token_embd.weight");
  c.vocab = static_cast<int>(std::min<std::uint64_t>(embed.rows(), 1 << 24));
  c.tied_head = f.find_tensor("output.weight") == nullptr;
  c.validate(ck.source);
  for (const auto& t : f.tensors()) {
    const auto name = lowbit_name_of(c.arch, t.name);
    lowbit::detail::check(name.has_value(), "GGUF file '", path.string(), "': tensor '", t.name,
                          "' is not part of a ", a, " model lowbit knows");
    ck.stored.emplace(*name, t.name);
  }
  ck.files = std::move(files);
  return ck;
}

/// A folder with config.json (Hugging Face), a .gguf file (open_gguf) or a llama2.c
/// .bin file.
inline Checkpoint load_checkpoint(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return load_hf_checkpoint(path);
  lowbit::detail::check(std::filesystem::exists(path, ec), "model '", path.string(), "' does not exist");
  if (path.extension() == ".safetensors") return load_hf_checkpoint(path.parent_path());
  if (path.extension() == ".gguf") return open_gguf(path);
  return load_llama2c_checkpoint(path);
}

}  // namespace lowbit::nn
