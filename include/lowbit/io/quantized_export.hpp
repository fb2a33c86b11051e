// Quantized and fake-quantized safetensors export (docs/files.md).
//
// Quantized: per weight W (rows × cols) the tensors
//   W.qweight  U8  [rows, row_bytes]   packed codes (docs/formats.md "Packed layout")
//   W.scales   F32 [rows, groups]      ([1] for one scale per tensor)
//   W.zeros    F32 [rows, groups]      asymmetric format only: signed zero z per scale
// and in __metadata__: "lowbit.format_version" = "1", "format" = "pt", and per
// weight "W.lowbit.<key>" for bits, format, granularity, group_size, method, shape,
// qmin, qmax, code_offset. Value = (stored code - code_offset - z) · scale (z = 0
// without W.zeros).
// Fake-quantized: plain F32 or F16 tensors under the original names, which any
// Hugging Face safetensors loader reads.
#pragma once

#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/checked.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/quant/format.hpp"
#include "lowbit/quant/granularity.hpp"
#include "lowbit/quant/packing.hpp"
#include "lowbit/quant/spec.hpp"

namespace lowbit::io {

inline constexpr std::string_view quantized_format_version = "1";

/// The runtime description of a named format ("int", "int_full", "gptq", "asym", "nf4":
/// FormatInfo::name of a QuantSpec's code set) with `bits` bits, equal to that
/// format's F::info().
inline FormatInfo format_info(std::string_view name, int bits) {
  detail::check(bits >= 2 && bits <= 8, "format '", name, "': bits must be 2..8, got ", bits);
  std::string names;
  for (const CodeSet c : grid_code_sets) {
    const FormatInfo f = integer_format(c, bits);
    if (name == f.name) {
      detail::check(f.bits == bits, "format '", name, "' has ", f.bits, " bits, got ", bits);
      return f;
    }
    if (!names.empty()) names += ", ";
    names += f.name;
  }
  detail::fail("unknown quantization format '", name, "' (expected ", names, ")");
}

struct QuantizedWeight {
  PackedTensor packed;
  std::string method;  ///< "rtn", "gptq", "qaft", …
};

/// Adds W.qweight, W.scales and W's metadata to a writer.
inline void add_quantized(SafetensorsWriter& w, const std::string& name, const PackedTensor& p,
                          std::string_view method) {
  const ScaleLayout& l = p.params.layout;
  const FormatInfo& f = p.params.format;
  detail::check(static_cast<Index>(p.data.size()) == l.rows * p.row_bytes &&
                    p.row_bytes == packed_bytes(l.cols, f.bits),
                "add_quantized: weight '", name, "' has ", p.data.size(), " packed bytes for ", l.rows, "x", l.cols,
                " codes of ", f.bits, " bits");
  detail::check(static_cast<Index>(p.params.scales.size()) == l.num_scales(), "add_quantized: weight '", name,
                "' has ", p.params.scales.size(), " scales, its ", l.describe(), " layout needs ", l.num_scales());
  w.add(name + ".qweight", DType::U8, {l.rows, p.row_bytes}, p.data);
  const std::vector<std::int64_t> scale_shape =
      l.kind == ScaleLayout::Kind::tensor ? std::vector<std::int64_t>{1}
                                          : std::vector<std::int64_t>{l.rows, l.groups_per_row()};
  w.add_f32(name + ".scales", scale_shape, p.params.scales);
  detail::check(p.params.zeros.size() == (f.asymmetric() ? p.params.scales.size() : 0), "add_quantized: weight '",
                name, "' has ", p.params.zeros.size(), " zeros for ", p.params.scales.size(), " scales of format ",
                f.name);
  if (f.asymmetric()) w.add_f32(name + ".zeros", scale_shape, p.params.zeros);
  const std::string k = name + ".lowbit.";
  w.set_metadata("lowbit.format_version", std::string(quantized_format_version));
  w.set_metadata("format", "pt");
  w.set_metadata(k + "bits", std::to_string(f.bits));
  w.set_metadata(k + "format", f.name);
  w.set_metadata(k + "granularity", l.kind == ScaleLayout::Kind::tensor    ? "tensor"
                                    : l.kind == ScaleLayout::Kind::channel ? "channel"
                                                                           : "group");
  w.set_metadata(k + "group_size", std::to_string(l.kind == ScaleLayout::Kind::group ? l.group_size : l.cols));
  w.set_metadata(k + "method", std::string(method));
  w.set_metadata(k + "shape", std::to_string(l.rows) + "," + std::to_string(l.cols));
  w.set_metadata(k + "qmin", std::to_string(f.qmin));
  w.set_metadata(k + "qmax", std::to_string(f.qmax));
  w.set_metadata(k + "code_offset", std::to_string(f.code_offset));
}

/// Names of the quantized weights in a file (those with W.lowbit.bits metadata).
inline std::vector<std::string> quantized_names(const SafetensorsFile& f) {
  std::vector<std::string> names;
  static constexpr std::string_view suffix = ".lowbit.bits";
  for (const auto& [key, value] : f.metadata())
    if (key.size() > suffix.size() && key.ends_with(suffix)) names.push_back(key.substr(0, key.size() - suffix.size()));
  return names;
}

/// "rows,cols" with two positive decimal integers, or nullopt.
inline std::optional<std::pair<Index, Index>> parse_shape_2d(std::string_view shape) {
  const auto comma = shape.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  Index rows = 0, cols = 0;
  const auto r1 = std::from_chars(shape.data(), shape.data() + comma, rows);
  const auto r2 = std::from_chars(shape.data() + comma + 1, shape.data() + shape.size(), cols);
  if (r1.ec != std::errc() || r1.ptr != shape.data() + comma || r2.ec != std::errc() ||
      r2.ptr != shape.data() + shape.size() || rows <= 0 || cols <= 0)
    return std::nullopt;
  return std::pair{rows, cols};
}

/// Every stored code of a packed row must decode to qmin..qmax: a narrow int4
/// weight has no code -8, and accepting one would hand out a value the format
/// cannot represent.
inline void check_codes_in_range(const PackedTensor& p, const std::string& where) {
  using lowbit::detail::check;
  const FormatInfo& f = p.params.format;
  const Index rows = p.params.layout.rows, cols = p.params.layout.cols;
  std::vector<std::int8_t> row(static_cast<std::size_t>(cols));
  for (Index r = 0; r < rows; ++r) {
    unpack_codes({p.data.data() + r * p.row_bytes, static_cast<std::size_t>(p.row_bytes)}, f.bits, row);
    for (Index c = 0; c < cols; ++c) {
      const int q = row[static_cast<std::size_t>(c)];
      check(q >= f.qmin && q <= f.qmax, where, ": code ", q, " (stored ", q + f.code_offset, ") at [", r, ", ", c,
            "] is outside ", f.qmin, "..", f.qmax, " of format ", f.name, " with ", f.bits, " bits");
    }
  }
}

/// Reads weight `name` back; every metadata field is checked against the tensors,
/// every size with overflow-checked arithmetic before anything is copied, and every
/// code and scale against the format. Errors name the weight and the file.
inline QuantizedWeight read_quantized(const SafetensorsFile& f, const std::string& name) {
  const std::string where = "quantized weight '" + name + "' in '" + f.path() + "'";
  const auto meta = [&](const std::string& key) -> const std::string& {
    const auto it = f.metadata().find(name + ".lowbit." + key);
    if (it == f.metadata().end()) detail::fail(where, ": metadata key '", name, ".lowbit.", key, "' is missing");
    return it->second;
  };
  const auto integer = [&](const std::string& key) -> Index {
    const std::string& s = meta(key);
    Index v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    detail::check(ec == std::errc() && p == s.data() + s.size(), where, ": metadata ", key, " = '", s,
                  "' is not an integer");
    return v;
  };
  const auto version = f.metadata().find("lowbit.format_version");
  detail::check(version != f.metadata().end() && version->second == quantized_format_version, where,
                ": lowbit.format_version is missing or not ", quantized_format_version);
  const Index bits = integer("bits");
  detail::check(bits >= 2 && bits <= 8, where, ": metadata bits = ", bits, " is not 2..8");
  FormatInfo fmt;
  try {
    fmt = format_info(meta("format"), static_cast<int>(bits));
  } catch (const Error& e) {
    detail::fail(where, ": ", e.what());
  }
  detail::check(integer("qmin") == fmt.qmin && integer("qmax") == fmt.qmax && integer("code_offset") == fmt.code_offset,
                where, ": qmin/qmax/code_offset do not match format ", fmt.name, " with ", fmt.bits, " bits");
  const std::string& shape = meta("shape");
  const auto rc = parse_shape_2d(shape);
  detail::check(rc.has_value(), where, ": shape '", shape, "' is not 'rows,cols' with positive sizes");
  const auto [rows, cols] = *rc;
  const std::string what = where + ": shape " + shape;
  (void)checked_mul(rows, cols, what);  // the unpacked codes must be countable

  const std::string& gran = meta("granularity");
  const Index group = integer("group_size");
  ScaleLayout layout;
  if (gran == "tensor" || gran == "channel") {
    detail::check(group == cols, where, ": group_size ", group, " on a ", gran, "-wise weight must equal its ", cols,
                  " columns");
    layout = gran == "tensor" ? PerTensor{}.layout(rows, cols) : PerChannel{}.layout(rows, cols);
  } else if (gran == "group") {
    detail::check(group > 0 && group <= cols, where, ": group_size ", group, " does not fit a row of ", cols,
                  " columns");
    layout = detail::group_layout(group, rows, cols);
  } else {
    detail::fail(where, ": unknown granularity '", gran, "' (tensor, channel or group)");
  }

  QuantizedWeight q;
  q.method = meta("method");
  q.packed.params.format = fmt;
  q.packed.params.layout = layout;
  q.packed.row_bytes = packed_bytes(cols, fmt.bits);
  const Index packed_total = checked_mul(rows, q.packed.row_bytes, what);
  const Index scale_total = layout.kind == ScaleLayout::Kind::tensor ? 1 : checked_mul(rows, layout.groups_per_row(), what);
  const auto has = [&](const std::string& t) {
    detail::check(f.contains(t), where, ": tensor '", t, "' is missing");
    return f.info(t);
  };
  const TensorInfo qw = has(name + ".qweight");
  detail::check(qw.dtype == DType::U8 && qw.shape == std::vector<std::int64_t>{rows, q.packed.row_bytes}, where,
                ": qweight must be U8 [", rows, ", ", q.packed.row_bytes, "] (", packed_total, " bytes)");
  const TensorInfo sc = has(name + ".scales");
  detail::check(sc.dtype == DType::F32 && static_cast<Index>(sc.numel()) == scale_total, where,
                ": scales must be F32 with ", scale_total, " values");
  const auto bytes = f.bytes(name + ".qweight");
  q.packed.data.assign(bytes.begin(), bytes.end());
  q.packed.params.scales = f.to_float(name + ".scales");
  for (const float s : q.packed.params.scales)
    detail::check(std::isfinite(s) && s > 0.0f, where, ": scale ", s, " is not finite and positive");
  if (fmt.asymmetric()) {  // one signed zero per scale, an integer code qmin..qmax
    const TensorInfo zi = has(name + ".zeros");
    detail::check(zi.dtype == DType::F32 && static_cast<Index>(zi.numel()) == scale_total, where,
                  ": zeros must be F32 with ", scale_total, " values");
    q.packed.params.zeros = f.to_float(name + ".zeros");
    for (const float z : q.packed.params.zeros)
      detail::check(z == std::nearbyint(z) && z >= fmt.qmin && z <= fmt.qmax, where, ": zero ", z,
                    " is not an integer code in ", fmt.qmin, "..", fmt.qmax);
  }
  // Unused high bits of each row's last byte must be zero (docs/formats.md).
  const int used = static_cast<int>((cols % 8) * fmt.bits % 8);
  if (used != 0)
    for (Index r = 0; r < rows; ++r)
      detail::check((q.packed.data[static_cast<std::size_t>(r * q.packed.row_bytes + q.packed.row_bytes - 1)] >> used) == 0,
                    where, ": row ", r, " has non-zero padding bits");
  check_codes_in_range(q.packed, where);
  return q;
}

/// Writes float tensors (name → shape, values) as F32 or F16 safetensors that Hugging
/// Face loaders read (metadata "format" = "pt").
struct FloatExportTensor {
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};
inline void write_float_safetensors(const std::filesystem::path& path,
                                    const std::map<std::string, FloatExportTensor>& tensors, DType dtype = DType::F32,
                                    const std::map<std::string, std::string>& metadata = {}) {
  detail::check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, "write_float_safetensors('",
                path.string(), "'): dtype ", dtype_name(dtype), " is not F32, F16 or BF16");
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  for (const auto& [k, v] : metadata) w.set_metadata(k, v);
  for (const auto& [name, t] : tensors) {
    if (dtype == DType::F32) w.add_f32(name, t.shape, t.values);
    else if (dtype == DType::F16) w.add_f16(name, t.shape, t.values);
    else w.add_bf16(name, t.shape, t.values);
  }
  w.write(path);
}

}  // namespace lowbit::io
