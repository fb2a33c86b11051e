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

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/llama2c.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/config.hpp"

namespace lowbit::nn {

struct Weight {
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

struct Checkpoint {
  TransformerConfig config;
  std::map<std::string, Weight> weights;
  std::string source;  ///< file or folder, for messages

  /// The weight `name`, checked against the shape the model expects.
  [[nodiscard]] const Weight& get(const std::string& name, const std::vector<std::int64_t>& shape) const {
    const auto it = weights.find(name);
    if (it == weights.end()) lowbit::detail::fail("checkpoint '", source, "' has no tensor '", name, "'");
    if (it->second.shape != shape) {
      std::string want, got;
      for (auto d : shape) want += std::to_string(d) + " ";
      for (auto d : it->second.shape) got += std::to_string(d) + " ";
      lowbit::detail::fail("checkpoint '", source, "': tensor '", name, "' has shape [ ", got, "] but the config needs [ ",
                   want, "]");
    }
    for (std::size_t i = 0; i < it->second.values.size(); ++i)
      if (!std::isfinite(it->second.values[i]))
        lowbit::detail::fail("checkpoint '", source, "': tensor '", name, "' has a non-finite value at flat index ", i);
    return it->second;
  }
};

namespace detail {

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
    for (std::int64_t c = 0; c < cols; ++c) t.values[static_cast<std::size_t>(c * rows + r)] = w.values[static_cast<std::size_t>(r * cols + c)];
  return t;
}

}  // namespace detail

/// A Hugging Face folder: config.json + model.safetensors.
inline Checkpoint load_hf_checkpoint(const std::filesystem::path& dir) {
  const auto cfg_path = dir / "config.json";
  const auto st_path = dir / "model.safetensors";
  lowbit::detail::check(std::filesystem::exists(cfg_path), "model folder '", dir.string(), "' has no config.json");
  lowbit::detail::check(std::filesystem::exists(st_path), "model folder '", dir.string(),
                        "' has no model.safetensors (sharded checkpoints are not supported)");
  Checkpoint ck{config_from_hf_file(cfg_path), {}, st_path.string()};
  // A quantized folder's linears are packed integers, not float tensors: say so.
  const io::Json cfg = io::Json::parse(io::read_file(cfg_path), cfg_path.string());
  if (const io::Json* q = cfg.find("quantization_config"); q && !q->is_null())
    lowbit::detail::fail("model folder '", dir.string(), "' is a quantized checkpoint (config.json has a "
                         "quantization_config): read a GPTQ checkpoint with nn::load_gptq_checkpoint "
                         "(lowbit/nn/gptq_export.hpp)");
  const auto file = io::SafetensorsFile::open(st_path);
  for (const auto& info : file.tensors()) {
    std::string name = info.name;
    if (ck.config.arch == Architecture::gpt2) {
      if (name.rfind("transformer.", 0) != 0 && name.rfind("lm_head.", 0) != 0) name = "transformer." + name;
      if (name.find(".attn.bias") != std::string::npos || name.find(".attn.masked_bias") != std::string::npos)
        continue;  // causal-mask buffers some versions save
    }
    Weight w{info.shape, file.to_float(info.name)};
    if (ck.config.arch == Architecture::gpt2 && detail::is_conv1d_weight(name)) {
      lowbit::detail::check(w.shape.size() == 2, "checkpoint '", ck.source, "': Conv1D weight '", name, "' is not 2-D");
      w = detail::transposed(w);
    }
    lowbit::detail::check(ck.weights.emplace(name, std::move(w)).second, "checkpoint '", ck.source,
                          "': tensor '", name, "' appears twice (with and without the 'transformer.' prefix)");
  }
  return ck;
}

/// A llama2.c checkpoint (.bin).
inline Checkpoint load_llama2c_checkpoint(const std::filesystem::path& path) {
  const io::Llama2cCheckpoint raw = io::load_llama2c(path);
  Checkpoint ck{config_from_llama2c(raw.config, path.string()), {}, path.string()};
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
