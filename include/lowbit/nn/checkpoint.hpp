// Loading a model's weights from Hugging Face safetensors (GPT-2, Llama) or a
// llama2.c checkpoint into one name → tensor map in lowbit's canonical layout.
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
#include "lowbit/io/safetensors_shards.hpp"
#include "lowbit/nn/config.hpp"

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

/// A model's config and its tensors by canonical name. Tensors of a Hugging Face
/// folder stay in their (memory-mapped) files in the stored type and are widened —
/// GPT-2's Conv1D weights transposed — one at a time, when get() asks for them;
/// tensors read otherwise (llama2.c, GGUF, built in code) are held in `weights`.
struct Checkpoint {
  TransformerConfig config;
  std::map<std::string, Weight> weights;  ///< tensors held in memory, by canonical name
  std::string source;                     ///< file or folder, for messages
  /// Tensors still in their files: canonical name → stored name.
  std::shared_ptr<const io::SafetensorsShards> files;
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
    std::vector<std::int64_t> s = files->info(it->second).shape;
    if (transposed_in_file(name)) std::reverse(s.begin(), s.end());
    return s;
  }

  /// The tensor in fp32, canonical layout (a copy).
  [[nodiscard]] Weight get(const std::string& name) const {
    if (const auto it = weights.find(name); it != weights.end()) return it->second;
    const auto it = stored.find(name);
    if (it == stored.end()) lowbit::detail::fail("checkpoint '", source, "' has no tensor '", name, "'");
    Weight w{files->info(it->second).shape, files->to_float(it->second)};
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
    return config.arch == Architecture::gpt2 && !weights.count(name) && detail::is_conv1d_weight(name);
  }
};

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
                           "quantization_config): read a GPTQ checkpoint with nn::load_gptq_checkpoint "
                           "(lowbit/nn/gptq_export.hpp)");
  Checkpoint ck;
  ck.config = config_from_hf_json(cfg, cfg_path.string());
  ck.files = std::make_shared<const io::SafetensorsShards>(io::SafetensorsShards::open_folder(dir));
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

/// A folder with config.json (Hugging Face) or a llama2.c .bin file.
inline Checkpoint load_checkpoint(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return load_hf_checkpoint(path);
  lowbit::detail::check(std::filesystem::exists(path, ec), "model '", path.string(), "' does not exist");
  if (path.extension() == ".safetensors") return load_hf_checkpoint(path.parent_path());
  return load_llama2c_checkpoint(path);
}

}  // namespace lowbit::nn
