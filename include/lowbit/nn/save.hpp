// Writing a Transformer as a Hugging Face folder (config.json + model.safetensors)
// that lowbit's loader and Hugging Face's GPT2LMHeadModel / LlamaForCausalLM read.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/io/half.hpp"
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

/// Whether parameter `name` is a GPT-2 Conv1D weight, which the Hugging Face file
/// stores transposed ([in, out]).
inline bool hf_transposed(const TransformerConfig& c, const std::string& name, std::size_t ndim) {
  return c.arch == Architecture::gpt2 && ndim == 2 &&
         (name.ends_with("c_attn.weight") || name.ends_with("c_proj.weight") || name.ends_with("c_fc.weight"));
}

/// Whether weight `name` of a llama2.c model has its rows in another order in the
/// Hugging Face file (q/k rows: adjacent-pair RoPE there, rotate_half here).
inline bool hf_rope_rows_differ(const TransformerConfig& c, const std::string& name) {
  return c.arch == Architecture::llama && c.rope_style == autograd::RopeStyle::interleaved &&
         (name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight"));
}

/// Parameter `name`'s values in the Hugging Face file's layout: GPT-2's Conv1D
/// weights back to [in, out] (`shape` swapped), a llama2.c model's q/k rows permuted
/// to rotate_half order. Returns `values` itself when nothing moves, else a view of
/// `moved`.
inline std::span<const float> hf_layout(const TransformerConfig& c, const std::string& name,
                                        std::vector<std::int64_t>& shape, std::span<const float> values,
                                        std::vector<float>& moved) {
  if (hf_transposed(c, name, shape.size())) {
    moved = detail::transpose(values, shape[0], shape[1]);
    std::swap(shape[0], shape[1]);
    return moved;
  }
  if (hf_rope_rows_differ(c, name)) {
    moved = permute_rope_rows<float>(values, shape[0], shape[1], c.head_dim(), RopeRows::to_half);
    return moved;
  }
  return values;
}

/// The file's dtype for a SaveDType.
inline io::DType io_dtype(SaveDType d) {
  return d == SaveDType::f32 ? io::DType::F32 : d == SaveDType::f16 ? io::DType::F16 : io::DType::BF16;
}

/// values in `dtype` (F16 and BF16 rounded to nearest, ties to even) into `out`,
/// which holds exactly their bytes.
inline void store_as(std::span<const float> values, SaveDType dtype, std::span<std::uint8_t> out) {
  lowbit::detail::check(out.size() == values.size() * io::dtype_size(io_dtype(dtype)), "store_as: ", out.size(),
                        " bytes for ", values.size(), " values");
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (dtype == SaveDType::f32) {
      std::memcpy(out.data() + 4 * i, &values[i], 4);
      continue;
    }
    const std::uint16_t h = dtype == SaveDType::f16 ? io::f32_to_f16(values[i]) : io::f32_to_bf16(values[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
}

/// Adds a tensor in `dtype` (what every Hugging Face writer here stores floats in).
inline void add_as(io::SafetensorsWriter& out, const std::string& name, std::vector<std::int64_t> shape,
                   std::span<const float> values, SaveDType dtype) {
  switch (dtype) {
    case SaveDType::f32: out.add_f32(name, std::move(shape), values); break;
    case SaveDType::f16: out.add_f16(name, std::move(shape), values); break;
    case SaveDType::bf16: out.add_bf16(name, std::move(shape), values); break;
  }
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
    add_as(out, name, shape, hf_layout(c, name, shape, p->values(), moved), dtype);
  }
  io::Json cfg = config_to_hf_json(c);
  io::write_file_atomic(dir / "config.json", cfg.dump() + "\n");
  out.write(dir / "model.safetensors");
}

}  // namespace lowbit::nn
