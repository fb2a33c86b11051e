// A Transformer quantized onto an integer grid (GPTQ or round-to-nearest) and
// written as a GPTQ checkpoint in the Hugging Face layout — config.json with
// quantization_config, quantize_config.json, model.safetensors with every quantized
// linear as NAME.qweight / qzeros / scales / g_idx (io/gptq_checkpoint.hpp) — and
// such a folder read back into float weights (docs/files.md).
//
// Only what the layout holds exactly is written: scales must be float16 (a ':f16'
// scheme), zero points 1 .. 2^B − 1, and both dimensions of a quantized linear
// multiples of 32 (QuantLinear's buffers). A layer whose shape does not fit is left
// unquantized and float; the config then lists the quantized ones in
// modules_in_block_to_quantize, which transformers / optimum honour.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/gptq/gptq.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/gptq_checkpoint.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/calibration.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/rope_rows.hpp"
#include "lowbit/nn/save.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/quant/layer_quantizers.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"

namespace lowbit::nn {

enum class GptqExportMethod { rtn, gptq };

/// One quantized linear in integer form, in the model's own row order: signed codes
/// [out, in], scales (and zeros) in the QuantParams layout, and each input column's
/// group (g_idx; not c / group_size with act-order's dynamic groups).
struct GptqLayer {
  QuantParams params;
  std::vector<std::int8_t> codes;
  std::vector<Index> group_index;
};

/// What quantize_for_gptq_checkpoint did: the layers by weight name, and how.
struct GptqExport {
  QuantSpec spec;
  GptqExportMethod method = GptqExportMethod::gptq;
  GptqOptions options;
  bool true_sequential = true;
  std::map<std::string, GptqLayer> layers;  ///< by weight name ("model.layers.0.self_attn.q_proj.weight")
  std::vector<std::string> kept_float;      ///< linears whose shape QuantLinear cannot hold
};

struct GptqWriteOptions {
  SaveDType dtype = SaveDType::f16;  ///< embeddings, norms, biases and float-kept linears
  std::string model_name_or_path;    ///< quantize_config's field (empty: null)
  /// A model folder whose tokenizer files (gptq_tokenizer_files) go beside the
  /// weights, so that transformers loads the checkpoint with its tokenizer (empty: none).
  std::filesystem::path tokenizer_from;
};

/// The files a Hugging Face folder's tokenizer and generation settings live in, and
/// lowbit's compact vocabulary (pd-* models), copied as they are when present.
inline constexpr std::array<const char*, 9> gptq_tokenizer_files{
    "tokenizer.json",     "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",     "vocab.json",
    "merges.txt",         "added_tokens.json",     "generation_config.json",  "compact_vocab.json"};

namespace gptq_export_detail {

inline bool fits_quant_linear(const LinearLayer& l) {
  return l.in_features() % io::gptq_pack_unit == 0 && l.out_features() % io::gptq_pack_unit == 0;
}

/// A scheme the layout stores without rounding anything again.
inline void check_spec(const QuantSpec& spec) {
  using lowbit::detail::check;
  check(!spec.is_block(), "GPTQ checkpoint: ", spec.str(), " is a llama.cpp block format; a GPTQ checkpoint "
        "stores integer grids (e.g. int4:g128:gptq:f16); write block formats as GGUF");
  check(!spec.is_nf4(), "GPTQ checkpoint: ", spec.str(), " is NormalFloat (a level table, bitsandbytes' format), "
        "not an integer grid a GPTQ checkpoint can store");
  check(io::gptq_detail::packable_bits(spec.bits), "GPTQ checkpoint: ", spec.str(), " has ", spec.bits,
        " bits; QuantLinear packs 2, 3, 4 or 8 bits");
  check(spec.storage == ScaleStorage::f16, "GPTQ checkpoint: ", spec.str(), " keeps ",
        spec.storage == ScaleStorage::f32 ? "float32" : "bfloat16", " scales, but the checkpoint stores float16 ones: "
        "use a ':f16' scheme (e.g. int4:g128:gptq:f16) so that the scales are rounded before the weights are");
}

inline std::vector<Index> natural_groups(const ScaleLayout& l) {
  std::vector<Index> g(static_cast<std::size_t>(l.cols), 0);
  if (l.kind == ScaleLayout::Kind::group)
    for (Index c = 0; c < l.cols; ++c) g[static_cast<std::size_t>(c)] = c / l.group_size;
  return g;
}

/// Round-to-nearest: codes from W, then W replaced by its fake-quantized values.
inline GptqLayer rtn_layer(const LinearLayer& l, const QuantSpec& spec) {
  std::span<float> w = l.weight->values();
  const MatrixView wv(w.data(), l.out_features(), l.in_features());
  GptqLayer out;
  out.params = SpecQuantizer(spec).params(ConstMatrixView(wv), l.name);
  out.codes = out.params.codes(ConstMatrixView(wv));
  out.params.apply(ConstMatrixView(wv), wv);
  out.group_index = natural_groups(out.params.layout);
  return out;
}

inline GptqLayer gptq_layer(const LinearLayer& l, const QuantSpec& spec, GptqOptions options, const Hessian& h) {
  std::span<float> w = l.weight->values();
  const ConstMatrixView wv(w.data(), l.out_features(), l.in_features());
  options.evaluate = false;  // the layer errors are not kept: skip their two GEMMs and an RTN pass
  SolveResult r = SpecGptq<>(spec, options).quantize(wv, h, l.name);
  lowbit::detail::check(r.info() == ::Eigen::Success, r.message);
  std::copy(r.weights.data(), r.weights.data() + r.weights.size(), w.begin());
  return {std::move(r.params), std::move(r.codes), std::move(r.group_index)};
}

/// The rows of a [rows, cols] row-major array of one value per (row, k), moved like
/// a llama2.c model's q/k rows into Hugging Face's rotate_half order.
template <class T>
std::vector<T> rope_rows(const std::vector<T>& v, Index rows, Index head_dim) {
  return permute_rope_rows<T>(v, rows, static_cast<Index>(v.size()) / rows, head_dim, RopeRows::to_half);
}

/// Layer `name`'s integer form in the Hugging Face file's row order.
inline GptqLayer hf_rows(const TransformerConfig& c, const std::string& name, const GptqLayer& l) {
  if (!hf_rope_rows_differ(c, name)) return l;
  GptqLayer out = l;
  const Index rows = l.params.layout.rows, hd = c.head_dim();
  out.codes = rope_rows(l.codes, rows, hd);
  if (l.params.layout.kind != ScaleLayout::Kind::tensor) {  // one scale (and zero) per row, or per row and group
    out.params.scales = rope_rows(l.params.scales, rows, hd);
    if (!l.params.zeros.empty()) out.params.zeros = rope_rows(l.params.zeros, rows, hd);
  }
  return out;
}

/// "model.layers.3." / "transformer.h.3.": the prefix of block b's module names.
inline std::string block_prefix(const TransformerConfig& c, int b) {
  std::string p = c.arch == Architecture::llama ? "model.layers." : "transformer.h.";
  p += std::to_string(b);
  p += '.';
  return p;
}

/// The weight names of the linears `ex` quantized.
inline std::set<std::string> quantized_names(const GptqExport& ex) {
  std::set<std::string> out;
  for (const auto& [name, layer] : ex.layers) out.insert(name);
  return out;
}

/// modules_in_block_to_quantize for a model some of whose linears stay float: the
/// quantized ones, by stage, relative to their block; the same in every block.
inline std::vector<std::vector<std::string>> quantized_modules(const Transformer& model, const GptqExport& ex,
                                                               const std::set<std::string>& quantized) {
  if (ex.kept_float.empty()) return {};
  std::vector<std::vector<std::string>> first;
  for (int b = 0; b < model.config().layers; ++b) {
    std::map<int, std::vector<std::string>> by_stage;
    const std::string prefix = block_prefix(model.config(), b);
    for (const LinearLayer& l : model.linear_layers()) {
      if (l.block != b || !quantized.count(l.name)) continue;
      lowbit::detail::check(l.name.starts_with(prefix) && l.name.ends_with(".weight"), "GPTQ checkpoint: layer '",
                            l.name, "' is not named '", prefix, "….weight'");
      by_stage[l.stage].push_back(l.name.substr(prefix.size(), l.name.size() - prefix.size() - 7));
    }
    std::vector<std::vector<std::string>> stages;
    for (auto& [stage, names] : by_stage) stages.push_back(std::move(names));
    if (b == 0) first = stages;
    lowbit::detail::check(stages == first, "GPTQ checkpoint: block ", b, " quantizes other linears than block 0; "
                          "modules_in_block_to_quantize can only name the same ones in every block");
  }
  lowbit::detail::check(!first.empty(), "GPTQ checkpoint: no linear layer of the model could be quantized (every "
                        "one has a dimension that is not a multiple of 32)");
  return first;
}

inline io::GptqQuantizeConfig quantize_config(const Transformer& model, const GptqExport& ex,
                                              const std::set<std::string>& quantized, const GptqWriteOptions& options) {
  io::GptqQuantizeConfig q;
  q.bits = ex.spec.bits;
  q.group_size = ex.spec.granularity == ScaleLayout::Kind::group ? static_cast<int>(ex.spec.group_size) : -1;
  q.damp_percent = ex.options.percdamp;
  q.desc_act = ex.method == GptqExportMethod::gptq && ex.options.act_order;
  q.static_groups = ex.method == GptqExportMethod::gptq && ex.options.static_groups;
  q.sym = !ex.spec.format().asymmetric();
  q.true_sequential = ex.true_sequential;
  q.model_name_or_path = options.model_name_or_path;
  q.model_file_base_name = "model";
  q.modules_in_block_to_quantize = quantized_modules(model, ex, quantized);
  return q;
}

/// "model.layers.0.self_attn.q_proj" for "model.layers.0.self_attn.q_proj.weight".
inline std::string module_of(const std::string& weight) {
  return weight.substr(0, weight.size() - std::string_view(".weight").size());
}

/// The weight the packed layer stands for must be the one lowbit has in the model:
/// otherwise the file would hold other weights than the ones lowbit evaluated.
inline void check_model_holds(const LinearLayer& l, const std::vector<float>& decoded, const std::string& hf_name,
                              const TransformerConfig& c) {
  std::vector<float> expect(l.weight->values().begin(), l.weight->values().end());
  std::vector<std::int64_t> shape{l.out_features(), l.in_features()};
  std::vector<float> moved;
  if (hf_rope_rows_differ(c, hf_name))
    expect = permute_rope_rows<float>(expect, shape[0], shape[1], c.head_dim(), RopeRows::to_half);
  for (std::size_t k = 0; k < expect.size(); ++k)
    lowbit::detail::check(expect[k] == decoded[k], "GPTQ checkpoint: weight '", l.name, "' holds ", expect[k],
                          " at flat index ", k, " but its codes decode to ", decoded[k],
                          ": the model changed after it was quantized");
}

/// Layer `l`'s integer form packed as QuantLinear stores it, checked to decode to
/// the weights the model now holds.
inline io::GptqLinear packed_layer(const LinearLayer& l, const GptqLayer& layer, const TransformerConfig& c) {
  const GptqLayer hf = hf_rows(c, l.name, layer);
  io::GptqLinear packed = io::pack_gptq_linear(module_of(l.name), hf.params, hf.codes, hf.group_index);
  check_model_holds(l, io::dequantize_gptq_linear(packed), l.name, c);
  return packed;
}

/// config.json with quantization_config, quantize_config.json and the weights'
/// file, each atomically, config.json last (a folder with one is complete).
inline void write_files(const std::filesystem::path& dir, const TransformerConfig& c, const io::GptqQuantizeConfig& qc,
                        const io::SafetensorsWriter& weights, const GptqWriteOptions& options) {
  io::Json cfg = config_to_hf_json(c);
  cfg.set("torch_dtype", io::Json::string(options.dtype == SaveDType::f32    ? "float32"
                                          : options.dtype == SaveDType::bf16 ? "bfloat16"
                                                                             : "float16"));
  cfg.set("quantization_config", qc.to_json());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  lowbit::detail::check(std::filesystem::is_directory(dir), "GPTQ checkpoint: cannot create the output folder '",
                        dir.string(), "'", ec ? ": " + ec.message() : std::string());
  weights.write(dir / "model.safetensors");
  if (!options.tokenizer_from.empty())
    for (const char* name : gptq_tokenizer_files)
      if (std::filesystem::is_regular_file(options.tokenizer_from / name))
        io::write_file_atomic(dir / name, io::read_file(options.tokenizer_from / name));
  io::write_file_atomic(dir / "quantize_config.json", qc.to_json().dump() + "\n");
  io::write_file_atomic(dir / "config.json", cfg.dump() + "\n");
}

}  // namespace gptq_export_detail

/// Throws a lowbit::Error saying why when a GPTQ checkpoint cannot hold `spec` exactly
/// (a block format, NF4, bits other than 2, 3, 4, 8, scales not float16).
inline void check_gptq_checkpoint_scheme(const QuantSpec& spec) { gptq_export_detail::check_spec(spec); }

/// The quantizer of every layer a GPTQ checkpoint holds in `spec` (those whose
/// dimensions are multiples of 32): what QAFT trains through before an rtn export.
inline LayerQuantizers gptq_checkpoint_quantizers(const Transformer& model, const QuantSpec& spec) {
  gptq_export_detail::check_spec(spec);
  LayerQuantizers q;
  for (const LinearLayer& l : model.linear_layers())
    if (gptq_export_detail::fits_quant_linear(l)) q.set(l.name, SpecQuantizer(spec));
  return q;
}

/// Quantizes every registered linear layer of `model` whose dimensions are multiples
/// of 32 onto `spec`'s grid, by GPTQ (true-sequential order over `calibration`, with
/// `options`, act-order included) or round-to-nearest, keeping each layer's codes,
/// scales and g_idx; the model's weights become the fake-quantized ones the
/// checkpoint will hold. Other layers are left as they are and listed in kept_float.
inline GptqExport quantize_for_gptq_checkpoint(Transformer& model, const QuantSpec& spec, GptqExportMethod method,
                                               const std::vector<std::span<const int>>& calibration = {},
                                               const GptqOptions& options = {},
                                               const std::function<void(std::size_t, std::size_t)>& progress = {}) {
  gptq_export_detail::check_spec(spec);
  GptqExport ex;
  ex.spec = spec;
  ex.method = method;
  ex.options = options;
  for (const LinearLayer& l : model.linear_layers())
    if (!gptq_export_detail::fits_quant_linear(l)) ex.kept_float.push_back(l.name);
  if (method == GptqExportMethod::rtn) {
    ex.true_sequential = false;
    const auto& layers = model.linear_layers();
    for (std::size_t i = 0; i < layers.size(); ++i) {
      if (gptq_export_detail::fits_quant_linear(layers[i]))
        ex.layers[layers[i].name] = gptq_export_detail::rtn_layer(layers[i], spec);
      if (progress) progress(i + 1, layers.size());
    }
    return ex;
  }
  lowbit::detail::check(!calibration.empty(), "quantize_for_gptq_checkpoint: GPTQ needs calibration windows");
  quantize_with_calibration(
      model, calibration,
      [&](const LinearLayer& l, const Hessian& h) {
        if (gptq_export_detail::fits_quant_linear(l))
          ex.layers[l.name] = gptq_export_detail::gptq_layer(l, spec, options, h);
      },
      CalibrationOptions{}, progress);
  return ex;
}

/// Writes `dir`/model.safetensors, quantize_config.json and config.json (each
/// atomically, config.json last; everything is packed and checked before the first
/// file is written). The quantized linears of `ex` become NAME.qweight / qzeros /
/// scales / g_idx in Hugging Face's names and row order (a llama2.c model's q/k rows
/// permuted to rotate_half, codes, scales and zeros alike; GPT-2's Conv1D packed
/// like a Linear, as AutoGPTQ packs its transpose); every other parameter is written
/// as save_hf writes it, in `options.dtype`. `model` must still hold the weights
/// quantize_for_gptq_checkpoint left in it (checked).
inline void write_gptq_checkpoint(const std::filesystem::path& dir, Transformer& model, const GptqExport& ex,
                                  const GptqWriteOptions& options = {}) {
  using lowbit::detail::check;
  gptq_export_detail::check_spec(ex.spec);
  const TransformerConfig& c = model.config();
  for (const auto& [name, layer] : ex.layers) {
    (void)model.linear(name);  // an Error naming it when the model has no such layer
    check(layer.group_index.size() == static_cast<std::size_t>(layer.params.layout.cols) &&
              ((ex.method == GptqExportMethod::gptq && ex.options.act_order) ||
               layer.group_index == gptq_export_detail::natural_groups(layer.params.layout)),
          "GPTQ checkpoint: layer '", name, "' has a reordered g_idx but desc_act (act-order) is off");
  }
  const io::GptqQuantizeConfig qc =
      gptq_export_detail::quantize_config(model, ex, gptq_export_detail::quantized_names(ex), options);

  io::SafetensorsWriter out;
  out.set_metadata("format", "pt");
  for (autograd::Parameter* p : model.parameters()) {
    const std::string& name = p->name();
    const auto it = ex.layers.find(name);
    if (it != ex.layers.end()) {
      const LinearLayer& l = model.linear(name);
      io::add_gptq_linear(out, gptq_export_detail::module_of(name), gptq_export_detail::packed_layer(l, it->second, c));
      continue;
    }
    const auto& s = p->shape();
    std::vector<std::int64_t> shape(s.dims.begin(), s.dims.begin() + s.ndim);
    std::vector<float> moved;
    add_as(out, name, shape, hf_layout(c, name, shape, p->values(), moved), options.dtype);
  }
  gptq_export_detail::write_files(dir, c, qc, out, options);
}

/// The GPTQ config of a folder: config.json's quantization_config, cross-checked
/// against quantize_config.json when that exists (AutoGPTQ reads the one,
/// transformers the other; a checkpoint where they disagree loads differently).
inline io::GptqQuantizeConfig read_gptq_quantize_config(const std::filesystem::path& dir) {
  using lowbit::detail::check;
  const auto cfg_path = dir / "config.json";
  check(std::filesystem::exists(cfg_path), "GPTQ checkpoint '", dir.string(), "' has no config.json");
  const io::Json cfg = io::Json::parse(io::read_file(cfg_path), cfg_path.string());
  check(cfg.is_object(), cfg_path.string(), ": expected a JSON object");
  const io::Json* qj = cfg.find("quantization_config");
  check(qj != nullptr && !qj->is_null(), cfg_path.string(), ": 'quantization_config' is missing: not a quantized "
        "checkpoint (nn::load_hf_checkpoint reads float folders)");
  io::GptqQuantizeConfig q = io::gptq_config_from_json(*qj, cfg_path.string() + ": quantization_config");
  const auto qc_path = dir / "quantize_config.json";
  if (std::filesystem::exists(qc_path)) {
    const io::GptqQuantizeConfig other =
        io::gptq_config_from_json(io::Json::parse(io::read_file(qc_path), qc_path.string()), qc_path.string());
    const auto same = [&](bool eq, const char* field) {
      check(eq, "GPTQ checkpoint '", dir.string(), "': '", field, "' differs between config.json's "
            "quantization_config and quantize_config.json");
    };
    same(q.bits == other.bits, "bits");
    same(q.group_size == other.group_size, "group_size");
    same(q.sym == other.sym, "sym");
    same(q.desc_act == other.desc_act, "desc_act");
    same(q.checkpoint_format == other.checkpoint_format, "checkpoint_format");
  }
  return q;
}

/// A GPTQ checkpoint's model.safetensors as lazily widened tensors: each module's
/// qweight / qzeros / scales / g_idx is one stored tensor MODULE.weight [out, in],
/// dequantized when asked for; every other tensor is read as stored.
class GptqFiles final : public TensorFiles {
 public:
  GptqFiles(const std::filesystem::path& st_path, int bits, Index group_size, bool gpt2)
      : file_(io::SafetensorsFile::open(st_path)), bits_(bits), group_size_(group_size), gpt2_(gpt2) {
    using lowbit::detail::check;
    for (const auto& info : file_.tensors())
      if (info.name.ends_with(".qweight")) packed_.insert(info.name.substr(0, info.name.size() - 8));
    for (const auto& info : file_.tensors()) {
      const std::string& name = info.name;
      bool part = false;
      for (const char* suffix : {".qweight", ".qzeros", ".scales", ".g_idx"})
        if (name.ends_with(suffix)) {
          const std::string module = name.substr(0, name.size() - std::string_view(suffix).size());
          check(packed_.count(module), "GPTQ checkpoint '", file_.path(), "': tensor '", name, "' has no '", module,
                ".qweight' beside it");
          part = true;
        }
      if (!part) names_.push_back(name);
    }
    for (const std::string& module : packed_) names_.push_back(module + ".weight");
  }
  std::vector<std::string> names() const override { return names_; }
  std::vector<std::int64_t> shape(const std::string& stored) const override {
    if (const std::string m = module_of(stored); !m.empty()) {
      const auto& q = file_.info(m + ".qweight").shape;  // [in·bits/32, out]
      lowbit::detail::check(q.size() == 2, "GPTQ checkpoint '", file_.path(), "': '", m, ".qweight' is not 2-D");
      return {q[1], q[0] * 32 / bits_};
    }
    return file_.info(stored).shape;
  }
  std::vector<float> to_float(const std::string& stored) const override {
    if (const std::string m = module_of(stored); !m.empty())
      return io::dequantize_gptq_linear(io::read_gptq_linear(file_, m, bits_, group_size_));
    return file_.to_float(stored);
  }
  std::string source() const override { return file_.path(); }
  std::size_t file_count() const override { return 1; }
  bool conv1d_stored(const std::string& stored) const override {
    return gpt2_ && module_of(stored).empty() && detail::is_conv1d_weight(stored);
  }

 private:
  /// The packed module `stored` names (MODULE.weight), or empty.
  [[nodiscard]] std::string module_of(const std::string& stored) const {
    if (!stored.ends_with(".weight")) return {};
    std::string m = stored.substr(0, stored.size() - 7);
    return packed_.count(m) ? m : std::string{};
  }

  io::SafetensorsFile file_;
  int bits_ = 0;
  Index group_size_ = 0;
  bool gpt2_ = false;
  std::set<std::string> packed_;
  std::vector<std::string> names_;
};

/// A GPTQ checkpoint folder (checkpoint_format "gptq") with its tensors left in the
/// memory-mapped model.safetensors: each NAME.qweight / qzeros / scales / g_idx
/// becomes NAME.weight [out, in], dequantized when asked for, every other tensor
/// is read as load_hf_checkpoint reads it (GPT-2's float Conv1D weights transposed,
/// names given their "transformer." prefix). The q/k rows stay in Hugging Face's
/// order, with the config saying rotate_half, as for any HF folder. A streaming
/// Transformer over it evaluates a quantized model block by block.
inline Checkpoint open_gptq_checkpoint(const std::filesystem::path& dir) {
  const io::GptqQuantizeConfig q = read_gptq_quantize_config(dir);
  const auto st_path = dir / "model.safetensors";
  lowbit::detail::check(std::filesystem::exists(st_path), "GPTQ checkpoint '", dir.string(),
                        "' has no model.safetensors (sharded checkpoints are not supported)");
  Checkpoint ck;
  ck.config = config_from_hf_file(dir / "config.json");
  ck.source = st_path.string();
  const bool gpt2 = ck.config.arch == Architecture::gpt2;
  auto files = std::make_shared<const GptqFiles>(st_path, q.bits, q.group_size, gpt2);
  for (const std::string& stored : files->names()) {
    std::string name = stored;
    if (gpt2 && name.rfind("transformer.", 0) != 0 && name.rfind("lm_head.", 0) != 0) name = "transformer." + name;
    if (gpt2 && (name.find(".attn.bias") != std::string::npos || name.find(".attn.masked_bias") != std::string::npos))
      continue;  // causal-mask buffers some versions save
    lowbit::detail::check(ck.stored.emplace(name, stored).second, "GPTQ checkpoint '", ck.source, "': tensor '", name,
                          "' appears twice");
  }
  ck.files = std::move(files);
  return ck;
}

/// A GPTQ checkpoint folder as float weights held in memory (open_gptq_checkpoint,
/// every tensor widened).
inline Checkpoint load_gptq_checkpoint(const std::filesystem::path& dir) {
  return held_in_memory(open_gptq_checkpoint(dir));
}

}  // namespace lowbit::nn
