// A Transformer's linear layers quantized into llama.cpp's block types, by
// round-to-nearest (llama.cpp's own quantizer), round-to-nearest with an importance
// matrix from calibration data (what `llama-imatrix` + `llama-quantize` do), or GPTQ
// onto the block grid — and the result written as a GGUF llama.cpp runs.
//
// Each tensor takes its type from a BlockPlan — one llama.cpp type, or a mixture that
// gives tensors matching a pattern another type (llama-quantize's --tensor-type) — where
// its rows are whole blocks, else llama.cpp's fallback (QuantSpec::fallback_for), else
// F16, as llama-quantize decides. The model's weights
// are replaced by what the file will hold (decoded bit for bit as llama.cpp decodes
// it), so lowbit evaluates the same weights llama.cpp runs. The embedding (which a
// tied classifier shares) is not a registered layer: the GGUF export encodes it with
// llama.cpp's round-to-nearest, whatever the layers' method.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/gptq/gptq.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/nn/calibration.hpp"
#include "lowbit/nn/gguf_model.hpp"
#include "lowbit/nn/rope_rows.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/quant/blocks/codec.hpp"
#include "lowbit/quant/layer_quantizers.hpp"
#include "lowbit/quant/spec.hpp"

namespace lowbit::nn {

/// How the layers' codes are chosen (the scales of a block type are always llama.cpp's).
enum class BlockMethod {
  rtn,          ///< llama.cpp's quantizer without an importance matrix
  rtn_imatrix,  ///< llama.cpp's quantizer with diag(H) of the unquantized model as importance matrix
  gptq,         ///< GPTQ's error feedback onto the grid llama.cpp's quantizer (with diag(H)) fixes
  /// Quantization-aware fine-tuning: the weights are first trained through llama.cpp's
  /// round-to-nearest of their type (study::qaft_to_blocks), then encoded by it —
  /// quantize_to_blocks encodes the trained weights exactly as rtn does.
  qaft,
};

inline constexpr std::array<std::pair<BlockMethod, std::string_view>, 4> block_method_names{{
    {BlockMethod::rtn, "rtn"},
    {BlockMethod::rtn_imatrix, "imatrix"},
    {BlockMethod::gptq, "gptq"},
    {BlockMethod::qaft, "qaft"},
}};

inline std::string_view block_method_name(BlockMethod m) {
  for (const auto& [v, n] : block_method_names)
    if (v == m) return n;
  return "?";
}

/// Whether `m` chooses codes with an importance matrix (diag(H) from calibration data):
/// llama-quantize's presets then protect more of ffn_down (llama_cpp_preset).
inline bool uses_importance(BlockMethod m) { return m == BlockMethod::rtn_imatrix || m == BlockMethod::gptq; }

inline BlockMethod parse_block_method(std::string_view s, std::string_view what = "method") {
  for (const auto& [v, n] : block_method_names)
    if (n == s) return v;
  std::string names;
  for (const auto& [v, n] : block_method_names) names.append(names.empty() ? "" : ", ").append(n);
  lowbit::detail::fail(what, " '", s, "' is not one of ", names);
}

/// Which llama.cpp type each tensor asks for: `base`, or the type of the first override
/// whose pattern (an ECMAScript regular expression) occurs in the tensor's GGUF name,
/// as llama-quantize's --tensor-type PATTERN=TYPE chooses. Printed and parsed as
/// "q4_k,ffn_down=q6_k,attn_v=q6_k".
class BlockPlan {
 public:
  BlockPlan(QuantSpec base) : base_(std::move(base)) {  // NOLINT: a single type is a plan
    lowbit::detail::check(base_.is_block(), "block plan: ", base_.str(), " is not a llama.cpp block format");
  }

  /// Adds "PATTERN=TYPE" (`what` names the flag or field in errors).
  void add(std::string_view pattern_eq_type, std::string_view what = "block plan") {
    const auto eq = pattern_eq_type.rfind('=');
    lowbit::detail::check(eq != std::string_view::npos && eq > 0 && eq + 1 < pattern_eq_type.size(), what, " '",
                          pattern_eq_type, "': expected PATTERN=TYPE, e.g. ffn_down=q6_k");
    const std::string pattern(pattern_eq_type.substr(0, eq));
    const QuantSpec spec = QuantSpec::parse(pattern_eq_type.substr(eq + 1), what);
    lowbit::detail::check(spec.is_block(), what, " '", pattern_eq_type, "': ", spec.str(),
                          " is not a llama.cpp block format");
    try {
      overrides_.push_back({pattern, std::regex(pattern, std::regex::ECMAScript), spec});
    } catch (const std::regex_error& e) {
      lowbit::detail::fail(what, " '", pattern_eq_type, "': '", pattern, "' is not a regular expression (", e.what(), ")");
    }
  }

  /// Appends `later`'s overrides after this plan's (which therefore win).
  void append(const BlockPlan& later) { overrides_.insert(overrides_.end(), later.overrides_.begin(), later.overrides_.end()); }

  [[nodiscard]] const QuantSpec& base() const { return base_; }
  [[nodiscard]] const QuantSpec& spec_for(const std::string& gguf_name) const {
    for (const auto& o : overrides_)
      if (std::regex_search(gguf_name, o.re)) return o.spec;
    return base_;
  }
  /// The type of lowbit tensor `lowbit_name` of an `arch` model, by its GGUF name.
  [[nodiscard]] const QuantSpec& spec_for(Architecture arch, const std::string& lowbit_name) const {
    const auto g = gguf_name_of(arch, lowbit_name);
    lowbit::detail::check(g.has_value(), "block plan: tensor '", lowbit_name, "' has no GGUF name");
    return spec_for(*g);
  }
  [[nodiscard]] std::string str() const {
    std::string s = base_.str();
    for (const auto& o : overrides_) s.append(",").append(o.pattern).append("=").append(o.spec.str());
    return s;
  }

 private:
  struct Override {
    std::string pattern;
    std::regex re;
    QuantSpec spec;
  };
  QuantSpec base_;
  std::vector<Override> overrides_;
};

/// One tensor as an engine stores it.
struct EncodedTensor {
  std::uint32_t ggml_type = 0;
  std::vector<std::uint8_t> bytes;
};

namespace block_detail {

/// diag(H), dead columns (H_dd = 0) as 1 — GPTQ's convention and a valid imatrix.
inline std::vector<float> importance_of(const Hessian& h) {
  std::vector<float> d(static_cast<std::size_t>(h.matrix.cols()));
  for (Index c = 0; c < h.matrix.cols(); ++c) d[static_cast<std::size_t>(c)] = h.matrix(c, c) == 0.0f ? 1.0f : h.matrix(c, c);
  return d;
}

}  // namespace block_detail

/// The block type layer `l` is encoded in under `spec`: the spec, or llama.cpp's
/// fallback where its rows are not whole blocks; nullopt where the layer is stored as
/// F16 (gguf_type_for's rule).
inline std::optional<QuantSpec> fitted_block_spec(const QuantSpec& spec, const LinearLayer& l) {
  const std::uint32_t type = gguf_type_for(spec, l.name, {l.out_features(), l.in_features()});
  if (type == 1) return std::nullopt;
  QuantSpec fit = spec;
  fit.block = *io::ggml_type_info(type)->block;
  return fit;
}

/// The quantizer of every layer that `plan` stores in a block type: llama.cpp's
/// round-to-nearest of that type (what QAFT trains through and rtn encodes with).
inline LayerQuantizers block_quantizers(const Transformer& model, const BlockPlan& plan) {
  LayerQuantizers q;
  for (const auto& l : model.linear_layers())
    if (const auto fit = fitted_block_spec(plan.spec_for(model.config().arch, l.name), l))
      q.set(l.name, SpecQuantizer(*fit));
  return q;
}

/// Replaces every tensor that is not a registered layer (the embedding, an untied
/// classifier) by what write_gguf stores for it — llama.cpp's round-to-nearest of
/// its type, F16 or F32 — so that training or calibration sees the file's values.
inline void round_other_tensors(Transformer& model, const BlockPlan& plan) {
  const auto& c = model.config();
  for (autograd::Parameter* p : model.parameters()) {
    const bool layer = std::any_of(model.linear_layers().begin(), model.linear_layers().end(),
                                   [&](const LinearLayer& l) { return l.weight == p; });
    const auto& s = p->shape();
    if (layer || s.ndim < 2 || !gguf_name_of(c.arch, p->name())) continue;
    const std::vector<std::int64_t> shape(s.dims.begin(), s.dims.begin() + s.ndim);
    const std::uint32_t type = gguf_type_for(plan.spec_for(c.arch, p->name()), p->name(), shape);
    std::span<float> w = p->values();
    if (type == 0) continue;
    if (type == 1) {
      for (float& x : w) x = io::f16_to_f32(io::f32_to_f16(x));
      continue;
    }
    const Index cols = s.last(), rows = static_cast<Index>(w.size()) / cols;
    const auto block = *io::ggml_type_info(type)->block;
    const auto bytes = blocks::quantize(block, ConstMatrixView(w.data(), rows, cols), p->name(), nullptr);
    blocks::dequantize(block, bytes.data(), MatrixView(w.data(), rows, cols), p->name());
  }
}

namespace block_detail {

/// Encodes one layer and overwrites its weight with the decoded values.
inline EncodedTensor encode_layer(const LinearLayer& l, const QuantSpec& spec, BlockMethod method, const Hessian* h,
                                  const GptqOptions& gptq) {
  std::span<float> w = l.weight->values();
  const Index rows = l.out_features(), cols = l.in_features();
  const ConstMatrixView wv(w.data(), rows, cols);
  EncodedTensor e;
  const std::optional<QuantSpec> fitted = fitted_block_spec(spec, l);
  if (!fitted) {  // no block type fits these rows: F16, as llama-quantize keeps them
    e.ggml_type = 1;
    e.bytes = gguf_f16_bytes(w);
    for (float& x : w) x = io::f16_to_f32(io::f32_to_f16(x));
    return e;
  }
  const QuantSpec& fit = *fitted;
  e.ggml_type = static_cast<std::uint32_t>(blocks::info(fit.block).ggml_type);
  if (method == BlockMethod::gptq) {
    lowbit::detail::check(h != nullptr, "quantize_to_blocks: GPTQ needs calibration data");
    GptqOptions options = gptq;
    options.evaluate = false;  // the layer errors are not reported here: skip their two GEMMs and an RTN pass
    SolveResult r = SpecGptq<>(fit, options).quantize(wv, *h, l.name);
    lowbit::detail::check(r.info() == ::Eigen::Success, r.message);
    e.bytes = std::move(r.block_data);
  } else {
    const std::vector<float> imp = method == BlockMethod::rtn_imatrix ? importance_of(*h) : std::vector<float>{};
    e.bytes = blocks::quantize(fit.block, wv, l.name, imp.empty() ? nullptr : imp.data());
  }
  blocks::dequantize(fit.block, e.bytes.data(), MatrixView(w.data(), rows, cols), l.name);
  return e;
}

}  // namespace block_detail

/// Quantizes every registered linear layer of `model` (see the header), returning
/// each layer's encoding by weight name. `calibration` windows are needed for
/// imatrix (one pass of the unquantized model) and GPTQ (true-sequential order).
inline std::map<std::string, EncodedTensor> quantize_to_blocks(
    Transformer& model, const BlockPlan& plan, BlockMethod method,
    const std::vector<std::span<const int>>& calibration = {}, const GptqOptions& gptq = {},
    const std::function<void(std::size_t, std::size_t)>& progress = {}) {
  std::map<std::string, EncodedTensor> out;
  const auto spec = [&](const LinearLayer& l) -> const QuantSpec& {
    return plan.spec_for(model.config().arch, l.name);
  };
  if (method == BlockMethod::rtn || method == BlockMethod::qaft) {
    const auto& layers = model.linear_layers();
    for (std::size_t i = 0; i < layers.size(); ++i) {
      out[layers[i].name] = block_detail::encode_layer(layers[i], spec(layers[i]), method, nullptr, gptq);
      if (progress) progress(i + 1, layers.size());
    }
    return out;
  }
  lowbit::detail::check(!calibration.empty(), "quantize_to_blocks: ", block_method_name(method),
                        " needs calibration windows");
  CalibrationOptions co;
  co.order = method == BlockMethod::gptq ? CalibrationOrder::sequential : CalibrationOrder::parallel;
  quantize_with_calibration(
      model, calibration,
      [&](const LinearLayer& l, const Hessian& h) {
        out[l.name] = block_detail::encode_layer(l, spec(l), method, &h, gptq);
      },
      co, progress);
  return out;
}

/// The model's weights as a Checkpoint (lowbit's names and layout).
inline Checkpoint checkpoint_of(Transformer& model, std::string source = "model") {
  Checkpoint ck;
  ck.config = model.config();
  ck.source = std::move(source);
  for (autograd::Parameter* p : model.parameters()) {
    const auto& s = p->shape();
    const auto v = p->values();
    ck.weights.emplace(p->name(), Weight{std::vector<std::int64_t>(s.dims.begin(), s.dims.begin() + s.ndim),
                                         std::vector<float>(v.begin(), v.end())});
  }
  return ck;
}

/// The codec of a GGUF whose layers hold already-encoded tensors (`find(name)`: the
/// layer's encoding, or null for a tensor that is not a layer) and whose other
/// tensors take the plan's types by llama.cpp's round-to-nearest (norms F32).
inline GgufCodec gguf_encoded_codec(const TransformerConfig& c, const BlockPlan& plan,
                                    std::function<const EncodedTensor*(const std::string&)> find) {
  GgufCodec codec;
  codec.type = [c, plan, find](const std::string& name, const std::vector<std::int64_t>& shape) {
    const EncodedTensor* e = find(name);
    return e ? e->ggml_type : gguf_type_for(plan.spec_for(c.arch, name), name, shape);
  };
  codec.encode = [c, rtn = gguf_rtn_codec(plan.base()), find](const std::string& name, const Weight& w,
                                                              std::uint32_t type) {
    const EncodedTensor* e = find(name);
    if (!e) return rtn.encode(name, w, type);
    // The exporter interleaves a Hugging Face model's q/k rows; the encoded rows move alike.
    const bool q = name.ends_with("q_proj.weight"), k = name.ends_with("k_proj.weight");
    if (!(q || k) || c.arch != Architecture::llama || c.rope_style != autograd::RopeStyle::half) return e->bytes;
    const Index rows = w.shape[0], row_bytes = static_cast<Index>(e->bytes.size()) / rows;
    return permute_rope_rows<std::uint8_t>(e->bytes, rows, row_bytes, c.head_dim(), RopeRows::to_interleaved);
  };
  return codec;
}

/// Writes `model` as a GGUF whose layers hold `encoded` (quantize_to_blocks) and
/// whose other tensors take the plan's types by llama.cpp's round-to-nearest (norms F32).
inline void write_gguf(const std::filesystem::path& path, Transformer& model,
                       const std::map<std::string, EncodedTensor>& encoded, const BlockPlan& plan,
                       const GgufVocab* vocab = nullptr, std::string_view model_name = "lowbit") {
  const GgufCodec codec = gguf_encoded_codec(model.config(), plan, [&encoded](const std::string& name) {
    const auto it = encoded.find(name);
    return it == encoded.end() ? nullptr : &it->second;
  });
  write_gguf(path, checkpoint_of(model, "model"), vocab, codec, model_name);
}

}  // namespace lowbit::nn
