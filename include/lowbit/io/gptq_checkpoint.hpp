// One linear layer in the layout of a GPTQ checkpoint as Hugging Face stores it
// (AutoGPTQ's QuantLinear, checkpoint_format "gptq", also called v1: what
// transformers, optimum, vLLM, AutoGPTQ and GPTQModel load), and the
// quantize_config.json / quantization_config that describes it (docs/files.md).
//
// Per linear NAME (the module name, e.g. "model.layers.0.self_attn.q_proj"):
//   NAME.qweight  I32 [in·bits/32, out]    codes packed down the input dimension
//   NAME.qzeros   I32 [groups, out·bits/32] zero points − 1 packed along the output
//   NAME.scales   F16 [groups, out]
//   NAME.g_idx    I32 [in]                  group of each input column
// W[o, i] = scales[g, o] · (q[i, o] − (qzeros[g, o] + 1)), g = g_idx[i].
//
// Packing: along the packed dimension, value k occupies the bits [k·bits, k·bits +
// bits) of a little-endian stream of 32-bit words (bit j is bit j mod 32 of word
// j / 32). For 2, 4, 8 bits that is 32/bits values per word, the first in the low
// bits; for 3 bits 32 values fill 3 words, values 10 and 21 straddling two words —
// the order AutoGPTQ's QuantLinear.pack writes and its kernels read.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/checked.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/quant/quant_params.hpp"

namespace lowbit::io {

/// QuantLinear's buffers are sized in // 32 · bits and out // 32 · bits, so both
/// dimensions must be whole multiples of 32.
inline constexpr Index gptq_pack_unit = 32;

/// The packed tensors of one linear (see the header). Words are the I32 tensors'
/// bits, held unsigned so that shifts are well defined.
struct GptqLinear {
  int bits = 0;
  Index in = 0, out = 0, groups = 0;
  std::vector<std::uint32_t> qweight;  ///< [in·bits/32, out]
  std::vector<std::uint32_t> qzeros;   ///< [groups, out·bits/32], stored zero point − 1
  std::vector<float> scales;           ///< [groups, out], each exactly a float16
  std::vector<std::int32_t> g_idx;     ///< [in], values in 0 .. groups − 1

  [[nodiscard]] Index qweight_rows() const { return in / gptq_pack_unit * bits; }
  [[nodiscard]] Index qzeros_cols() const { return out / gptq_pack_unit * bits; }
};

namespace gptq_detail {

inline bool packable_bits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

/// ORs value k (below 2^bits) into the stream of words w[0], w[stride], w[2·stride], …
inline void put_value(std::uint32_t* w, Index stride, Index k, int bits, std::uint32_t v) {
  const Index bit = k * bits, word = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  w[word * stride] |= v << shift;
  if (shift + bits > 32) w[(word + 1) * stride] |= v >> (32 - shift);  // 3 bits: the straddling values
}

inline std::uint32_t get_value(const std::uint32_t* w, Index stride, Index k, int bits) {
  const Index bit = k * bits, word = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  std::uint32_t v = w[word * stride] >> shift;
  if (shift + bits > 32) v |= w[(word + 1) * stride] << (32 - shift);
  return v & ((1u << bits) - 1u);
}

/// Whether a float32 survives the round trip through float16 unchanged.
inline bool is_f16(float s) { return std::isfinite(s) && f16_to_f32(f32_to_f16(s)) == s; }

}  // namespace gptq_detail

/// Packs one linear from lowbit's integer form: signed codes row-major [out, in]
/// (stored code = code + code_offset), `params` (scales and, for an asymmetric
/// format, signed zeros z, zero point = z + code_offset; a symmetric format's
/// zero point is code_offset) and the per-input-column group index (SolveResult::
/// group_index; c / group_size for natural groups, one group for per-channel and
/// per-tensor scales). Nothing is rounded: a scale that is not exactly a float16,
/// a code or zero that does not fit, or a zero point of 0 (v1 stores zero − 1
/// unsigned, so it cannot) is an Error naming `name`.
inline GptqLinear pack_gptq_linear(std::string_view name, const QuantParams& params, std::span<const std::int8_t> codes,
                                   std::span<const Index> g_idx) {
  using lowbit::detail::check;
  const FormatInfo& f = params.format;
  const ScaleLayout& l = params.layout;
  const std::string where = "GPTQ checkpoint: tensor '" + std::string(name) + "'";
  check(!f.non_uniform(), where, ": format ", f.name, " decodes through a level table; a GPTQ checkpoint stores "
        "integer grids only (int<B>:...:gptq or :asym schemes)");
  check(!params.scales.empty(), where, ": no scales (a llama.cpp block format keeps them in its encoded rows and "
        "cannot be written as a GPTQ checkpoint)");
  check(gptq_detail::packable_bits(f.bits), where, ": ", f.bits, " bits; QuantLinear packs 2, 3, 4 or 8 bits");
  const Index out = l.rows, in = l.cols;
  check(out > 0 && in > 0 && in % gptq_pack_unit == 0 && out % gptq_pack_unit == 0, where, ": shape [", out, ", ",
        in, "] (out, in): QuantLinear needs both dimensions to be multiples of 32");
  check(static_cast<Index>(params.scales.size()) == l.num_scales(), where, ": ", params.scales.size(),
        " scales for a ", l.describe(), " layout that needs ", l.num_scales());
  check(params.zeros.size() == (f.asymmetric() ? params.scales.size() : 0), where, ": ", params.zeros.size(),
        " zeros for ", params.scales.size(), " scales of format ", f.name);
  check(static_cast<Index>(codes.size()) == out * in, where, ": ", codes.size(), " codes for ", out, "x", in);
  check(static_cast<Index>(g_idx.size()) == in, where, ": g_idx has ", g_idx.size(), " entries for ", in,
        " input columns");

  GptqLinear p;
  p.bits = f.bits;
  p.in = in;
  p.out = out;
  p.groups = l.kind == ScaleLayout::Kind::group ? l.groups_per_row() : 1;
  const auto per_row = l.kind == ScaleLayout::Kind::group ? p.groups : 1;
  const std::uint32_t maxq = (1u << f.bits) - 1u;

  p.g_idx.resize(static_cast<std::size_t>(in));
  for (Index c = 0; c < in; ++c) {
    const Index g = g_idx[static_cast<std::size_t>(c)];
    check(g >= 0 && g < p.groups, where, ": g_idx[", c, "] = ", g, " is outside 0 .. ", p.groups - 1);
    p.g_idx[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(g);
  }

  // scales and zero points, transposed to [groups, out]
  p.scales.resize(static_cast<std::size_t>(p.groups * out));
  p.qzeros.assign(static_cast<std::size_t>(p.groups * p.qzeros_cols()), 0u);
  for (Index o = 0; o < out; ++o)
    for (Index g = 0; g < p.groups; ++g) {
      const auto k = static_cast<std::size_t>(l.kind == ScaleLayout::Kind::tensor ? 0 : o * per_row + g);
      const float s = params.scales[k];
      check(gptq_detail::is_f16(s) && s > 0.0f, where, ": scale ", s, " of row ", o, ", group ", g,
            " is not a positive float16 exactly; GPTQ checkpoints store float16 scales: quantize with a ':f16' "
            "scheme (e.g. int4:g128:gptq:f16)");
      p.scales[static_cast<std::size_t>(g * out + o)] = s;
      const float zf = static_cast<float>(f.code_offset) + params.zero(k);
      check(zf == std::nearbyint(zf) && zf >= 1.0f && zf <= static_cast<float>(maxq), where, ": zero point ", zf,
            " of row ", o, ", group ", g, " cannot be stored in a v1 (checkpoint_format \"gptq\") qzeros, which holds "
            "zero point − 1 in ", f.bits, " unsigned bits (1 .. ", maxq, "); GPTQModel's gptq_v2 can, lowbit does not "
            "write it yet");
      gptq_detail::put_value(p.qzeros.data() + g * p.qzeros_cols(), 1, o, f.bits, static_cast<std::uint32_t>(zf) - 1u);
    }

  // codes, transposed to [in, out] and packed down the input dimension
  p.qweight.assign(static_cast<std::size_t>(p.qweight_rows() * out), 0u);
  for (Index o = 0; o < out; ++o)
    for (Index c = 0; c < in; ++c) {
      const int u = codes[static_cast<std::size_t>(o * in + c)] + f.code_offset;
      check(u >= 0 && static_cast<std::uint32_t>(u) <= maxq, where, ": code ",
            static_cast<int>(codes[static_cast<std::size_t>(o * in + c)]), " at [", o, ", ", c, "] is outside 0 .. ",
            maxq, " once stored (+", f.code_offset, ")");
      gptq_detail::put_value(p.qweight.data() + o, out, c, f.bits, static_cast<std::uint32_t>(u));
    }
  return p;
}

/// The float32 weight [out, in] (lowbit's layout) a packed linear stands for:
/// scales[g, o] · (q[i, o] − (qzeros[g, o] + 1)) with g = g_idx[i]. Exact: a float16
/// times a small integer is a float32.
inline std::vector<float> dequantize_gptq_linear(const GptqLinear& p) {
  std::vector<float> w(static_cast<std::size_t>(p.out * p.in));
  std::vector<int> zero(static_cast<std::size_t>(p.groups * p.out));
  for (Index g = 0; g < p.groups; ++g)
    for (Index o = 0; o < p.out; ++o)
      zero[static_cast<std::size_t>(g * p.out + o)] =
          static_cast<int>(gptq_detail::get_value(p.qzeros.data() + g * p.qzeros_cols(), 1, o, p.bits)) + 1;
  for (Index o = 0; o < p.out; ++o)
    for (Index c = 0; c < p.in; ++c) {
      const auto g = static_cast<std::size_t>(p.g_idx[static_cast<std::size_t>(c)]);
      const int q = static_cast<int>(gptq_detail::get_value(p.qweight.data() + o, p.out, c, p.bits));
      const auto k = g * static_cast<std::size_t>(p.out) + static_cast<std::size_t>(o);
      w[static_cast<std::size_t>(o * p.in + c)] = p.scales[k] * static_cast<float>(q - zero[k]);
    }
  return w;
}

/// Adds NAME.qweight, NAME.qzeros, NAME.scales (F16) and NAME.g_idx to a writer.
inline void add_gptq_linear(SafetensorsWriter& w, const std::string& name, const GptqLinear& p) {
  const auto bytes = [](const auto& v) {
    return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(v[0]));
  };
  w.add(name + ".qweight", DType::I32, {p.qweight_rows(), p.out}, bytes(p.qweight));
  w.add(name + ".qzeros", DType::I32, {p.groups, p.qzeros_cols()}, bytes(p.qzeros));
  w.add_f16(name + ".scales", {p.groups, p.out}, p.scales);  // exact: pack_gptq_linear checked every scale
  w.add(name + ".g_idx", DType::I32, {p.in}, bytes(p.g_idx));
}

/// Reads NAME's four tensors back, checking dtypes, every shape against the others
/// and against `groups` (ceil(in / group_size), QuantLinear's count; group_size ≤ 0
/// means one group), and every g_idx value. Errors name the tensor and the file.
inline GptqLinear read_gptq_linear(const SafetensorsFile& f, const std::string& name, int bits, Index group_size) {
  using lowbit::detail::check;
  const std::string where = "GPTQ checkpoint '" + f.path() + "': tensor '" + name;
  check(gptq_detail::packable_bits(bits), where, "': bits = ", bits, " (QuantLinear packs 2, 3, 4 or 8 bits)");
  const auto tensor = [&](const char* suffix, DType dtype, std::size_t ndim) -> const TensorInfo& {
    const std::string t = name + suffix;
    check(f.contains(t), where, suffix, "' is missing");
    const TensorInfo& info = f.info(t);
    check(info.dtype == dtype || (dtype == DType::F16 && (info.dtype == DType::BF16 || info.dtype == DType::F32)),
          where, suffix, "' has dtype ", dtype_name(info.dtype), ", expected ", dtype_name(dtype));
    check(info.shape.size() == ndim, where, suffix, "' has ", info.shape.size(), " dimensions, expected ", ndim);
    return info;
  };
  const TensorInfo& qw = tensor(".qweight", DType::I32, 2);
  const TensorInfo& qz = tensor(".qzeros", DType::I32, 2);
  const TensorInfo& sc = tensor(".scales", DType::F16, 2);
  const TensorInfo& gi = tensor(".g_idx", DType::I32, 1);

  GptqLinear p;
  p.bits = bits;
  p.in = gi.shape[0];
  p.out = qw.shape[1];
  check(p.in > 0 && p.in % gptq_pack_unit == 0, where, ".g_idx' has ", p.in,
        " entries: in_features must be a positive multiple of 32");
  check(p.out > 0 && p.out % gptq_pack_unit == 0, where, ".qweight' has ", p.out,
        " columns: out_features must be a positive multiple of 32");
  check(qw.shape[0] == p.qweight_rows(), where, ".qweight' has ", qw.shape[0], " rows, but ", p.in,
        " input features of ", bits, " bits need ", p.qweight_rows());
  p.groups = group_size > 0 ? p.in / group_size + (p.in % group_size != 0 ? 1 : 0) : 1;
  check(sc.shape[0] == p.groups && sc.shape[1] == p.out, where, ".scales' has shape [", sc.shape[0], ", ",
        sc.shape[1], "], expected [", p.groups, ", ", p.out, "] (groups of ", group_size > 0 ? group_size : p.in,
        " over ", p.in, " inputs)");
  check(qz.shape[0] == p.groups && qz.shape[1] == p.qzeros_cols(), where, ".qzeros' has shape [", qz.shape[0], ", ",
        qz.shape[1], "], expected [", p.groups, ", ", p.qzeros_cols(), "]");

  const auto words = [&](const char* suffix) {
    const auto raw = f.bytes(name + suffix);
    std::vector<std::uint32_t> v(raw.size() / 4);
    if (!v.empty()) std::memcpy(v.data(), raw.data(), v.size() * 4);
    return v;
  };
  p.qweight = words(".qweight");
  p.qzeros = words(".qzeros");
  const std::vector<std::uint32_t> g = words(".g_idx");
  p.g_idx.resize(g.size());
  for (std::size_t c = 0; c < g.size(); ++c) {
    const auto v = static_cast<std::int32_t>(g[c]);
    check(v >= 0 && v < p.groups, where, ".g_idx'[", c, "] = ", v, " is outside 0 .. ", p.groups - 1);
    p.g_idx[c] = v;
  }
  p.scales = f.to_float(name + ".scales");
  // A scale times any code difference (|q − z| ≤ 2^bits) must stay finite: an F32 or
  // BF16 scales tensor can hold values a float16 one cannot.
  const float span = static_cast<float>(1u << bits);
  for (std::size_t k = 0; k < p.scales.size(); ++k)
    check(std::isfinite(p.scales[k] * span), where, ".scales' has ", p.scales[k], " at [",
          static_cast<Index>(k) / p.out, ", ", static_cast<Index>(k) % p.out, "], which is not finite or overflows ",
          "float32 once multiplied by a ", bits, "-bit code");
  return p;
}

// ---- quantize_config.json ---------------------------------------------------------

/// AutoGPTQ's BaseQuantizeConfig as quantize_config.json and config.json's
/// quantization_config hold it (transformers' GPTQConfig reads the same keys).
struct GptqQuantizeConfig {
  int bits = 4;
  int group_size = -1;  ///< columns per group; -1: one group (per-channel or per-tensor scales)
  double damp_percent = 0.01;
  bool desc_act = false;  ///< act-order: g_idx is not c / group_size
  bool static_groups = false;
  bool sym = true;
  bool true_sequential = true;
  std::string checkpoint_format = "gptq";
  std::string model_name_or_path;    ///< empty: null
  std::string model_file_base_name;  ///< empty: null
  /// transformers / optimum: the linears of a block that are quantized, by stage
  /// (the others stay float). Empty: every linear of every block (absent from JSON).
  std::vector<std::vector<std::string>> modules_in_block_to_quantize;

  /// The dict in AutoGPTQ's key order.
  [[nodiscard]] Json to_json() const {
    Json j = Json::object();
    const auto text_or_null = [](const std::string& s) { return s.empty() ? Json::null() : Json::string(s); };
    j.set("bits", Json::number(static_cast<std::int64_t>(bits)));
    j.set("group_size", Json::number(static_cast<std::int64_t>(group_size)));
    j.set("damp_percent", Json::parse(shortest(damp_percent)));
    j.set("desc_act", Json::boolean(desc_act));
    j.set("static_groups", Json::boolean(static_groups));
    j.set("sym", Json::boolean(sym));
    j.set("true_sequential", Json::boolean(true_sequential));
    j.set("model_name_or_path", text_or_null(model_name_or_path));
    j.set("model_file_base_name", text_or_null(model_file_base_name));
    j.set("quant_method", Json::string("gptq"));
    j.set("checkpoint_format", Json::string(checkpoint_format));
    if (!modules_in_block_to_quantize.empty()) {
      Json stages = Json::array();
      for (const auto& stage : modules_in_block_to_quantize) {
        Json names = Json::array();
        for (const auto& n : stage) names.push_back(Json::string(n));
        stages.push_back(std::move(names));
      }
      j.set("modules_in_block_to_quantize", std::move(stages));
    }
    return j;
  }

 private:
  /// The shortest decimal that reads back as v (0.01, not 0.010000000000000000).
  static std::string shortest(double v) {
    lowbit::detail::check(std::isfinite(v), "GPTQ quantize config: damp_percent must be finite");
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return {buf, r.ptr};
  }
};

/// Reads quantize_config.json or config.json's quantization_config. Only what
/// lowbit decodes is accepted: quant_method "gptq", checkpoint_format "gptq"
/// (absent means "gptq", as AutoGPTQ infers), bits 2, 3, 4, 8, group_size −1 or
/// positive. Errors name `source` and the field.
inline GptqQuantizeConfig gptq_config_from_json(const Json& j, const std::string& source) {
  using lowbit::detail::check;
  check(j.is_object(), source, ": the GPTQ quantization config must be a JSON object");
  GptqQuantizeConfig c;
  const auto integer = [&](const char* key, bool required, int fallback) {
    const Json* v = j.find(key);
    if (!v || v->is_null()) {
      check(!required, source, ": '", key, "' is missing");
      return fallback;
    }
    check(v->is_number(), source, ": '", key, "' must be an integer, got a ", Json::type_name(v->type()));
    std::int64_t x = 0;
    try {
      x = v->as_int64();
    } catch (const Error&) {
      lowbit::detail::fail(source, ": '", key, "' = ", v->number_text(), " is not an integer");
    }
    check(x >= -1 && x <= (std::int64_t{1} << 30), source, ": '", key, "' = ", x, " is out of range");
    return static_cast<int>(x);
  };
  const auto boolean = [&](const char* key, bool fallback) {
    const Json* v = j.find(key);
    if (!v || v->is_null()) return fallback;
    check(v->is_bool(), source, ": '", key, "' must be true or false, got a ", Json::type_name(v->type()));
    return v->as_bool();
  };
  const auto text = [&](const char* key) -> std::string {
    const Json* v = j.find(key);
    if (!v || v->is_null()) return {};
    check(v->is_string(), source, ": '", key, "' must be a string, got a ", Json::type_name(v->type()));
    return v->as_string();
  };
  const std::string method = text("quant_method");
  check(method.empty() || method == "gptq", source, ": quant_method '", method, "' is not \"gptq\"");
  c.checkpoint_format = text("checkpoint_format");
  if (c.checkpoint_format.empty()) c.checkpoint_format = "gptq";
  check(c.checkpoint_format != "gptq_v2", source, ": checkpoint_format 'gptq_v2' (GPTQModel's v2, zero points "
        "stored without the − 1) is not supported yet; only \"gptq\" (v1)");
  check(c.checkpoint_format == "gptq", source, ": checkpoint_format '", c.checkpoint_format,
        "' is not supported; only \"gptq\" (v1)");
  c.bits = integer("bits", true, 0);
  check(gptq_detail::packable_bits(c.bits), source, ": 'bits' = ", c.bits,
        " is not supported (QuantLinear packs 2, 3, 4 or 8 bits)");
  c.group_size = integer("group_size", false, -1);
  check(c.group_size == -1 || c.group_size > 0, source, ": 'group_size' = ", c.group_size,
        " must be -1 (one group) or positive");
  if (const Json* d = j.find("damp_percent"); d && !d->is_null()) {
    check(d->is_number(), source, ": 'damp_percent' must be a number");
    c.damp_percent = d->as_double();
  }
  c.desc_act = boolean("desc_act", false);
  c.static_groups = boolean("static_groups", false);
  c.sym = boolean("sym", true);
  c.true_sequential = boolean("true_sequential", true);
  c.model_name_or_path = text("model_name_or_path");
  c.model_file_base_name = text("model_file_base_name");
  if (const Json* m = j.find("modules_in_block_to_quantize"); m && !m->is_null()) {
    check(m->is_array(), source, ": 'modules_in_block_to_quantize' must be a list of lists of names");
    for (const Json& stage : m->items()) {
      check(stage.is_array(), source, ": 'modules_in_block_to_quantize' must be a list of lists of names");
      auto& names = c.modules_in_block_to_quantize.emplace_back();
      for (const Json& n : stage.items()) {
        check(n.is_string(), source, ": 'modules_in_block_to_quantize' holds a ", Json::type_name(n.type()),
              ", not a name");
        names.push_back(n.as_string());
      }
    }
  }
  return c;
}

}  // namespace lowbit::io
