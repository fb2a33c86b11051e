// Writing a Transformer as a Hugging Face folder (config.json + model.safetensors)
// that lowbit's loader and Hugging Face's GPT2LMHeadModel / LlamaForCausalLM read.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/rope_rows.hpp"
#include "lowbit/nn/transformer.hpp"

namespace lowbit::nn {

enum class SaveDType { f32, f16, bf16 };

namespace detail {

inline std::vector<float> transpose(std::span<const float> w, Index rows, Index cols) {
  std::vector<float> out(w.size());
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < cols; ++c) out[static_cast<std::size_t>(c * rows + r)] = w[static_cast<std::size_t>(r * cols + c)];
  return out;
}

}  // namespace detail

/// Parameter `name`'s values in the Hugging Face file's layout: GPT-2's Conv1D
/// weights back to [in, out] (`shape` swapped), a llama2.c model's q/k rows permuted
/// to rotate_half order. Returns `values` itself when nothing moves, else a view of
/// `moved`.
inline std::span<const float> hf_layout(const TransformerConfig& c, const std::string& name,
                                        std::vector<std::int64_t>& shape, std::span<const float> values,
                                        std::vector<float>& moved) {
  const auto ends_with = [&](std::string_view suf) {
    return name.size() >= suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  if (c.arch == Architecture::gpt2 && shape.size() == 2 &&
      (ends_with("c_attn.weight") || ends_with("c_proj.weight") || ends_with("c_fc.weight"))) {
    moved = detail::transpose(values, shape[0], shape[1]);
    std::swap(shape[0], shape[1]);
    return moved;
  }
  if (c.arch == Architecture::llama && c.rope_style == autograd::RopeStyle::interleaved &&
      (ends_with("q_proj.weight") || ends_with("k_proj.weight"))) {
    moved = permute_rope_rows<float>(values, shape[0], shape[1], c.head_dim(), RopeRows::to_half);
    return moved;
  }
  return values;
}

/// Writes `dir`/config.json and `dir`/model.safetensors (each atomically: a failure
/// leaves earlier files intact). GPT-2's linear weights go back to Conv1D's [in, out];
/// a llama2.c model's q/k rows are permuted to HF's RoPE layout. `metadata` lands in
/// the safetensors header's __metadata__.
inline void save_hf(Transformer& model, const std::filesystem::path& dir, SaveDType dtype = SaveDType::f32,
                    const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  lowbit::detail::check(std::filesystem::is_directory(dir), "save_hf: cannot create the output folder '",
                        dir.string(), "'", ec ? ": " + ec.message() : std::string());
  const TransformerConfig& c = model.config();
  io::SafetensorsWriter out;
  for (const auto& [k, v] : metadata) out.set_metadata(k, v);
  out.set_metadata("format", "pt");
  for (autograd::Parameter* p : model.parameters()) {
    const auto& s = p->shape();
    std::vector<std::int64_t> shape(s.dims.begin(), s.dims.begin() + s.ndim);
    std::vector<float> moved;
    const std::string& name = p->name();
    const std::span<const float> values = hf_layout(c, name, shape, p->values(), moved);
    switch (dtype) {
      case SaveDType::f32: out.add_f32(name, shape, values); break;
      case SaveDType::f16: out.add_f16(name, shape, values); break;
      case SaveDType::bf16: out.add_bf16(name, shape, values); break;
    }
  }
  io::Json cfg = config_to_hf_json(c);
  io::write_file_atomic(dir / "config.json", cfg.dump() + "\n");
  out.write(dir / "model.safetensors");
}

}  // namespace lowbit::nn
