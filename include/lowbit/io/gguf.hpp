// GGUF, llama.cpp's model file (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
// a validating reader and a streaming, atomic writer of the container — metadata
// key/values, tensor infos, aligned tensor data. Which keys and tensor names an
// architecture needs is the exporters' business (issue #13); this header knows the
// layout only.
//
// Layout (little-endian): u32 magic "GGUF", u32 version (2 or 3; lowbit writes 3),
// u64 tensor count, u64 key/value count; each key/value: string key, u32 value type,
// value (a string is u64 length + bytes; an array is u32 element type, u64 count,
// elements); each tensor info: string name, u32 n_dims, u64 ne[n_dims] (ne[0] the
// contiguous dimension), u32 ggml type, u64 offset from the data section. The data
// section starts at the first multiple of `general.alignment` (default 32) after the
// infos, and every tensor's offset is a multiple of it.
//
// The reader checks everything before a tensor byte is touched: every length against
// the bytes left, counts against what the file could hold, sizes with overflow-checked
// arithmetic, each tensor's type (one lowbit decodes), row length (whole blocks) and
// byte range (inside the file, no overlaps), duplicate keys and names. Errors are
// lowbit::Error naming the file and the key, tensor or field.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "lowbit/core/checked.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/quant/blocks/codec.hpp"

namespace lowbit::io {

static_assert(std::endian::native == std::endian::little, "lowbit's GGUF code reads little-endian data in place");

inline constexpr std::uint32_t gguf_magic = 0x46554747u;  // "GGUF" read as a little-endian u32
inline constexpr std::uint32_t gguf_version = 3;
inline constexpr std::uint32_t gguf_default_alignment = 32;
inline constexpr std::size_t gguf_max_name = 63;  ///< ggml's GGML_MAX_NAME (64) less the NUL
inline constexpr std::uint32_t gguf_max_dims = 4;  ///< ggml's GGML_MAX_DIMS

/// Value types of GGUF metadata.
enum class GgufType : std::uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};

inline constexpr std::string_view gguf_type_name(GgufType t) {
  constexpr std::string_view names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<std::uint32_t>(t);
  return i < std::size(names) ? names[i] : std::string_view("unknown");
}

/// Bytes of one scalar of type t (0 for string and array).
inline constexpr std::size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::u8: case GgufType::i8: case GgufType::boolean: return 1;
    case GgufType::u16: case GgufType::i16: return 2;
    case GgufType::u32: case GgufType::i32: case GgufType::f32: return 4;
    case GgufType::u64: case GgufType::i64: case GgufType::f64: return 8;
    case GgufType::string: case GgufType::array: return 0;
  }
  return 0;
}

/// One metadata value: a scalar, a string, or an array of scalars or strings (GGUF
/// allows nested arrays; llama.cpp's reader does not, and neither does lowbit's).
struct GgufValue {
  GgufType type = GgufType::u32;
  GgufType elem = GgufType::u8;  ///< an array's element type
  std::uint64_t u = 0;           ///< unsigned integers and bool
  std::int64_t i = 0;            ///< signed integers
  double f = 0.0;                ///< f32 and f64 (an f32 exactly)
  std::string s;                 ///< string
  std::vector<GgufValue> items;  ///< array elements (each of type `elem`)

  static GgufValue unsigned_of(GgufType t, std::uint64_t v) {
    GgufValue x;
    x.type = t;
    x.u = v;
    return x;
  }
  static GgufValue u32(std::uint32_t v) { return unsigned_of(GgufType::u32, v); }
  static GgufValue u64(std::uint64_t v) { return unsigned_of(GgufType::u64, v); }
  static GgufValue boolean(bool v) { return unsigned_of(GgufType::boolean, v ? 1 : 0); }
  static GgufValue i32(std::int32_t v) {
    GgufValue x;
    x.type = GgufType::i32;
    x.i = v;
    return x;
  }
  static GgufValue f32(float v) {
    GgufValue x;
    x.type = GgufType::f32;
    x.f = v;
    return x;
  }
  static GgufValue string(std::string v) {
    GgufValue x;
    x.type = GgufType::string;
    x.s = std::move(v);
    return x;
  }
  static GgufValue array(GgufType elem, std::vector<GgufValue> items) {
    GgufValue x;
    x.type = GgufType::array;
    x.elem = elem;
    x.items = std::move(items);
    return x;
  }
  static GgufValue strings(const std::vector<std::string>& v) {
    std::vector<GgufValue> items;
    items.reserve(v.size());
    for (const auto& s : v) items.push_back(string(s));
    return array(GgufType::string, std::move(items));
  }
  static GgufValue f32s(std::span<const float> v) {
    std::vector<GgufValue> items;
    items.reserve(v.size());
    for (const float f : v) items.push_back(f32(f));
    return array(GgufType::f32, std::move(items));
  }
  static GgufValue i32s(std::span<const std::int32_t> v) {
    std::vector<GgufValue> items;
    items.reserve(v.size());
    for (const std::int32_t k : v) items.push_back(i32(k));
    return array(GgufType::i32, std::move(items));
  }

  [[nodiscard]] bool is_unsigned() const {
    return type == GgufType::u8 || type == GgufType::u16 || type == GgufType::u32 || type == GgufType::u64;
  }
  [[nodiscard]] bool is_signed() const {
    return type == GgufType::i8 || type == GgufType::i16 || type == GgufType::i32 || type == GgufType::i64;
  }
};

/// A tensor's entry: ne[0] is the row length (contiguous), the rest multiply to rows.
struct GgufTensorInfo {
  std::string name;
  std::vector<std::uint64_t> ne;
  std::uint32_t ggml_type = 0;
  std::uint64_t offset = 0;  ///< from the start of the data section
  std::uint64_t nbytes = 0;

  [[nodiscard]] std::uint64_t cols() const { return ne.empty() ? 0 : ne[0]; }
  [[nodiscard]] std::uint64_t rows() const {
    std::uint64_t r = 1;
    for (std::size_t d = 1; d < ne.size(); ++d) r *= ne[d];
    return r;
  }
};

/// The ggml tensor types lowbit reads and writes: F32, F16, BF16 and every block type
/// of quant/blocks/block_type.hpp.
struct GgmlTypeInfo {
  std::uint32_t id;
  std::string_view name;
  std::uint64_t block_elems;
  std::uint64_t block_bytes;
  std::optional<blocks::BlockType> block;
};

inline std::optional<GgmlTypeInfo> ggml_type_info(std::uint32_t id) {
  if (id == 0) return GgmlTypeInfo{0, "f32", 1, 4, std::nullopt};
  if (id == 1) return GgmlTypeInfo{1, "f16", 1, 2, std::nullopt};
  if (id == 30) return GgmlTypeInfo{30, "bf16", 1, 2, std::nullopt};
  for (const auto& b : blocks::block_types)
    if (static_cast<std::uint32_t>(b.ggml_type) == id)
      return GgmlTypeInfo{id, b.name, static_cast<std::uint64_t>(b.block_elems),
                          static_cast<std::uint64_t>(b.block_bytes), b.type};
  return std::nullopt;
}

inline std::string ggml_type_names() {
  std::string s = "f32, f16, bf16";
  for (const auto& b : blocks::block_types) {
    s += ", ";
    s += b.name;
  }
  return s;
}

/// Bytes of a tensor of type `type` with dimensions ne; an Error naming `what` when
/// the type is unknown, the row is not whole blocks, or the size overflows.
inline std::uint64_t gguf_tensor_bytes(std::uint32_t type, std::span<const std::uint64_t> ne, std::string_view what) {
  const auto t = ggml_type_info(type);
  detail::check(t.has_value(), what, ": ggml type ", type, " is not one lowbit reads (", ggml_type_names(), ")");
  detail::check(!ne.empty() && ne.size() <= gguf_max_dims, what, ": ", ne.size(), " dimensions (1 to ",
                gguf_max_dims, " allowed)");
  for (std::size_t d = 0; d < ne.size(); ++d)
    detail::check(ne[d] >= 1, what, ": dimension ", d, " is 0 (lowbit reads no empty tensors)");
  detail::check(ne[0] % t->block_elems == 0, what, ": a row of ", ne[0], " weights is not a whole number of ",
                t->name, " blocks of ", t->block_elems);
  std::uint64_t n = checked_mul(ne[0] / t->block_elems, t->block_bytes, what);
  for (std::size_t d = 1; d < ne.size(); ++d) n = checked_mul(n, ne[d], what);
  return n;
}

inline std::uint64_t gguf_align(std::uint64_t x, std::uint64_t a, std::string_view what) {
  return checked_add(x, (a - x % a) % a, what);
}

namespace gguf_detail {

/// A bounds-checked little-endian cursor over the file's bytes.
class Cursor {
 public:
  Cursor(std::span<const std::uint8_t> b, std::string where) : b_(b), where_(std::move(where)) {}

  template <class T>
  T scalar(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string string(std::string_view what) {
    const auto n = scalar<std::uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }

  /// Refuses a count of items of at least `min_bytes` each that the rest of the file
  /// could not hold (before anything is allocated for them).
  void check_count(std::uint64_t count, std::uint64_t min_bytes, std::string_view what) const {
    detail::check(min_bytes == 0 || count <= left() / min_bytes, where_, ": ", what, ": ", count,
                  " entries cannot fit in the ", left(), " bytes left");
  }

  [[nodiscard]] std::uint64_t left() const { return b_.size() - pos_; }
  [[nodiscard]] std::uint64_t pos() const { return pos_; }
  [[nodiscard]] const std::string& where() const { return where_; }

 private:
  void need(std::uint64_t n, std::string_view what) const {
    detail::check(n <= left(), where_, ": ", what, " needs ", n, " bytes at offset ", pos_, " but only ", left(),
                  " are left");
  }
  std::span<const std::uint8_t> b_;
  std::string where_;
  std::size_t pos_ = 0;
};

inline GgufValue read_scalar(Cursor& c, GgufType t, const std::string& what) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufType::u8: v.u = c.scalar<std::uint8_t>(what); break;
    case GgufType::i8: v.i = c.scalar<std::int8_t>(what); break;
    case GgufType::u16: v.u = c.scalar<std::uint16_t>(what); break;
    case GgufType::i16: v.i = c.scalar<std::int16_t>(what); break;
    case GgufType::u32: v.u = c.scalar<std::uint32_t>(what); break;
    case GgufType::i32: v.i = c.scalar<std::int32_t>(what); break;
    case GgufType::u64: v.u = c.scalar<std::uint64_t>(what); break;
    case GgufType::i64: v.i = c.scalar<std::int64_t>(what); break;
    case GgufType::f32: v.f = c.scalar<float>(what); break;
    case GgufType::f64: v.f = c.scalar<double>(what); break;
    case GgufType::boolean: {
      const auto b = c.scalar<std::uint8_t>(what);
      detail::check(b <= 1, c.where(), ": ", what, ": a bool must be 0 or 1, got ", static_cast<int>(b));
      v.u = b;
      break;
    }
    case GgufType::string: v.s = c.string(what); break;
    case GgufType::array: detail::fail(c.where(), ": ", what, ": arrays of arrays are not supported");
  }
  return v;
}

inline GgufType read_type(Cursor& c, const std::string& what) {
  const auto t = c.scalar<std::uint32_t>(what);
  detail::check(t <= static_cast<std::uint32_t>(GgufType::f64), c.where(), ": ", what, ": value type ", t,
                " is not a GGUF type (0..12)");
  return static_cast<GgufType>(t);
}

inline GgufValue read_value(Cursor& c, const std::string& what) {
  const GgufType t = read_type(c, what + " (type)");
  if (t != GgufType::array) return read_scalar(c, t, what);
  GgufValue v;
  v.type = GgufType::array;
  v.elem = read_type(c, what + " (array element type)");
  const auto n = c.scalar<std::uint64_t>(what + " (array length)");
  const std::uint64_t min_bytes = v.elem == GgufType::string ? 8 : std::max<std::uint64_t>(gguf_scalar_size(v.elem), 1);
  c.check_count(n, min_bytes, what);
  v.items.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t k = 0; k < n; ++k) v.items.push_back(read_scalar(c, v.elem, what));
  return v;
}

}  // namespace gguf_detail

/// A parsed GGUF: metadata in file order, tensor infos, and the data section.
struct GgufHeader {
  std::uint32_t version = gguf_version;
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::vector<GgufTensorInfo> tensors;
  std::uint64_t alignment = gguf_default_alignment;
  std::uint64_t data_start = 0;  ///< file offset of the data section
};

/// Validates and parses a whole GGUF held in `file`; `label` names it in errors.
inline GgufHeader parse_gguf(std::span<const std::uint8_t> file, std::string_view label) {
  using gguf_detail::Cursor;
  Cursor c(file, "GGUF file '" + std::string(label) + "'");
  const std::string& where = c.where();
  GgufHeader h;
  detail::check(file.size() >= 4 && c.scalar<std::uint32_t>("the magic") == gguf_magic, where,
                ": does not start with the magic 'GGUF'");
  h.version = c.scalar<std::uint32_t>("the version");
  detail::check(h.version == 2 || h.version == 3, where, ": version ", h.version, " is not supported (2 or 3)");
  const auto n_tensors = c.scalar<std::uint64_t>("the tensor count");
  const auto n_kv = c.scalar<std::uint64_t>("the metadata count");
  c.check_count(n_kv, 8 + 4 + 1, "the metadata count");  // key length, type, a byte of value
  c.check_count(n_tensors, 8 + 4 + 8 + 4 + 8, "the tensor count");  // name length, n_dims, ne[0], type, offset

  std::unordered_set<std::string> keys;
  h.metadata.reserve(static_cast<std::size_t>(n_kv));
  for (std::uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.string("metadata key " + std::to_string(k));
    detail::check(keys.insert(key).second, where, ": metadata key '", key, "' appears twice");
    GgufValue v = gguf_detail::read_value(c, "metadata '" + key + "'");
    h.metadata.emplace_back(std::move(key), std::move(v));
  }
  for (const auto& [key, v] : h.metadata)
    if (key == "general.alignment") {
      detail::check(v.type == GgufType::u32, where, ": general.alignment must be u32, got ", gguf_type_name(v.type));
      detail::check(v.u != 0 && std::has_single_bit(v.u), where, ": general.alignment ", v.u,
                    " is not a power of two");
      h.alignment = v.u;
    }

  std::unordered_set<std::string> names;
  h.tensors.reserve(static_cast<std::size_t>(n_tensors));
  for (std::uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.string("tensor " + std::to_string(k) + "'s name");
    const std::string what = where + ": tensor '" + t.name + "'";
    detail::check(t.name.size() <= gguf_max_name, what, ": the name has ", t.name.size(), " bytes (at most ",
                  gguf_max_name, ")");
    detail::check(names.insert(t.name).second, what, ": the name appears twice");
    const auto n_dims = c.scalar<std::uint32_t>("tensor '" + t.name + "'s dimension count");
    detail::check(n_dims >= 1 && n_dims <= gguf_max_dims, what, ": ", n_dims, " dimensions (1 to ", gguf_max_dims,
                  " allowed)");
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      t.ne.push_back(c.scalar<std::uint64_t>("tensor '" + t.name + "'s dimensions"));
      detail::check(t.ne.back() <= static_cast<std::uint64_t>(INT64_MAX), what, ": dimension ", d, " = ",
                    t.ne.back(), " exceeds INT64_MAX");
    }
    t.ggml_type = c.scalar<std::uint32_t>("tensor '" + t.name + "'s type");
    t.offset = c.scalar<std::uint64_t>("tensor '" + t.name + "'s offset");
    t.nbytes = gguf_tensor_bytes(t.ggml_type, t.ne, what);
    detail::check(t.offset % h.alignment == 0, what, ": offset ", t.offset, " is not a multiple of the alignment ",
                  h.alignment);
    h.tensors.push_back(std::move(t));
  }

  h.data_start = gguf_align(c.pos(), h.alignment, where);
  detail::check(h.data_start <= file.size() || h.tensors.empty(), where, ": the data section would start at ",
                h.data_start, ", past the end of the file (", file.size(), " bytes)");
  const std::uint64_t data = file.size() > h.data_start ? file.size() - h.data_start : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : h.tensors) {
    const std::uint64_t end = checked_add(t.offset, t.nbytes, where + ": tensor '" + t.name + "'");
    detail::check(end <= data, where, ": tensor '", t.name, "' spans bytes ", t.offset, "..", end,
                  " of a data section of ", data);
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (std::size_t k = 1; k < by_offset.size(); ++k)
    detail::check(by_offset[k - 1]->offset + by_offset[k - 1]->nbytes <= by_offset[k]->offset, where, ": tensors '",
                  by_offset[k - 1]->name, "' and '", by_offset[k]->name, "' overlap");
  return h;
}

/// A GGUF file, memory-mapped (or held in memory) and validated on open.
class GgufFile {
 public:
  static GgufFile open(const std::filesystem::path& path) {
    GgufFile f;
    f.map_ = MappedFile(path);
    f.bytes_ = f.map_.bytes();
    f.label_ = path.string();
    f.init();
    return f;
  }
  static GgufFile from_bytes(std::vector<std::uint8_t> bytes, std::string label) {
    GgufFile f;
    f.owned_ = std::move(bytes);
    f.bytes_ = f.owned_;
    f.label_ = std::move(label);
    f.init();
    return f;
  }
  GgufFile(GgufFile&& o) noexcept { *this = std::move(o); }
  GgufFile& operator=(GgufFile&& o) noexcept {
    map_ = std::move(o.map_);
    owned_ = std::move(o.owned_);
    bytes_ = owned_.empty() ? map_.bytes() : std::span<const std::uint8_t>(owned_);
    label_ = std::move(o.label_);
    header_ = std::move(o.header_);
    index_ = std::move(o.index_);
    return *this;
  }

  [[nodiscard]] const GgufHeader& header() const { return header_; }
  [[nodiscard]] const std::vector<GgufTensorInfo>& tensors() const { return header_.tensors; }
  [[nodiscard]] const std::string& label() const { return label_; }

  [[nodiscard]] const GgufValue* find(std::string_view key) const {
    for (const auto& [k, v] : header_.metadata)
      if (k == key) return &v;
    return nullptr;
  }
  /// The value of `key`, which must exist: an Error naming the file and key otherwise.
  [[nodiscard]] const GgufValue& at(std::string_view key) const {
    const GgufValue* v = find(key);
    detail::check(v != nullptr, "GGUF file '", label_, "': metadata '", key, "' is missing");
    return *v;
  }
  [[nodiscard]] const std::string& string(std::string_view key) const {
    const GgufValue& v = at(key);
    detail::check(v.type == GgufType::string, "GGUF file '", label_, "': metadata '", key, "' must be a string, got ",
                  gguf_type_name(v.type));
    return v.s;
  }
  /// An integer value of any integer type, checked to fit [lo, hi].
  [[nodiscard]] std::int64_t integer(std::string_view key, std::int64_t lo = INT64_MIN, std::int64_t hi = INT64_MAX) const {
    const GgufValue& v = at(key);
    detail::check(v.is_unsigned() || v.is_signed(), "GGUF file '", label_, "': metadata '", key,
                  "' must be an integer, got ", gguf_type_name(v.type));
    detail::check(v.is_signed() || v.u <= static_cast<std::uint64_t>(INT64_MAX), "GGUF file '", label_,
                  "': metadata '", key, "' = ", v.u, " is out of range");
    const std::int64_t x = v.is_signed() ? v.i : static_cast<std::int64_t>(v.u);
    detail::check(x >= lo && x <= hi, "GGUF file '", label_, "': metadata '", key, "' = ", x, " is outside ", lo,
                  "..", hi);
    return x;
  }

  [[nodiscard]] const GgufTensorInfo* find_tensor(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &header_.tensors[it->second];
  }
  [[nodiscard]] const GgufTensorInfo& tensor(std::string_view name) const {
    const GgufTensorInfo* t = find_tensor(name);
    detail::check(t != nullptr, "GGUF file '", label_, "': tensor '", name, "' is missing");
    return *t;
  }
  [[nodiscard]] std::span<const std::uint8_t> bytes(std::string_view name) const {
    const GgufTensorInfo& t = tensor(name);
    return bytes_.subspan(static_cast<std::size_t>(header_.data_start + t.offset), static_cast<std::size_t>(t.nbytes));
  }

  /// The tensor decoded to float32, row-major (rows × ne[0]): F32 copied, F16 and
  /// BF16 widened, block types decoded bit for bit as llama.cpp decodes them.
  [[nodiscard]] std::vector<float> to_float(std::string_view name) const {
    const GgufTensorInfo& t = tensor(name);
    const auto type = *ggml_type_info(t.ggml_type);
    const std::uint64_t count = checked_mul(t.rows(), t.cols(), "GGUF tensor '" + std::string(name) + "'");
    std::vector<float> out(static_cast<std::size_t>(count));
    const auto b = bytes(name);
    if (type.block) {
      blocks::dequantize(*type.block, b.data(),
                         MatrixView(out.data(), static_cast<Index>(t.rows()), static_cast<Index>(t.cols())), name);
    } else if (type.id == 0) {
      std::memcpy(out.data(), b.data(), b.size());
    } else {
      for (std::size_t k = 0; k < out.size(); ++k) {
        const auto h = static_cast<std::uint16_t>(b[2 * k] | (b[2 * k + 1] << 8));
        out[k] = type.id == 1 ? f16_to_f32(h) : bf16_to_f32(h);
      }
    }
    return out;
  }

 private:
  GgufFile() = default;
  void init() {
    header_ = parse_gguf(bytes_, label_);
    for (std::size_t k = 0; k < header_.tensors.size(); ++k) index_.emplace(header_.tensors[k].name, k);
  }
  MappedFile map_;
  std::vector<std::uint8_t> owned_;
  std::span<const std::uint8_t> bytes_;
  std::string label_;
  GgufHeader header_;
  std::unordered_map<std::string, std::size_t> index_;
};

/// Writes a GGUF v3 as a stream: metadata and tensor infos are declared first (so
/// the header is written from shapes and types alone), then write() asks for each
/// tensor's bytes in declaration order, one at a time — memory stays at one tensor.
/// The file appears complete under its name or not at all (io::AtomicFile).
class GgufWriter {
 public:
  /// Sets (or replaces, keeping its place) a metadata key.
  void set(std::string key, GgufValue v) {
    detail::check(!key.empty(), "GGUF writer: an empty metadata key");
    if (key == "general.alignment") {
      detail::check(v.type == GgufType::u32 && v.u != 0 && std::has_single_bit(v.u),
                    "GGUF writer: general.alignment must be a u32 power of two");
      alignment_ = v.u;
    }
    for (auto& [k, old] : metadata_)
      if (k == key) {
        old = std::move(v);
        return;
      }
    metadata_.emplace_back(std::move(key), std::move(v));
  }

  /// Declares a tensor of ggml type `type` with dimensions ne (ne[0] the row length);
  /// returns its index. Errors name the tensor.
  std::size_t add_tensor(std::string name, std::vector<std::uint64_t> ne, std::uint32_t type) {
    const std::string what = "GGUF writer: tensor '" + name + "'";
    detail::check(!name.empty() && name.size() <= gguf_max_name, what, ": names have 1 to ", gguf_max_name, " bytes");
    for (const auto& t : tensors_) detail::check(t.name != name, what, " is declared twice");
    GgufTensorInfo t;
    t.nbytes = gguf_tensor_bytes(type, ne, what);
    t.name = std::move(name);
    t.ne = std::move(ne);
    t.ggml_type = type;
    tensors_.push_back(std::move(t));
    return tensors_.size() - 1;
  }

  [[nodiscard]] const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  /// Writes the file. `source(k, out)` fills `out` with tensor k's bytes (exactly
  /// its nbytes; checked), k in declaration order.
  void write(const std::filesystem::path& path,
             const std::function<void(std::size_t, std::vector<std::uint8_t>&)>& source) const {
    std::vector<GgufTensorInfo> infos = tensors_;
    std::uint64_t offset = 0;
    for (auto& t : infos) {
      t.offset = offset;
      offset = gguf_align(checked_add(offset, t.nbytes, "GGUF writer"), alignment_, "GGUF writer");
    }
    std::vector<std::uint8_t> head = header_bytes(infos);
    head.resize(static_cast<std::size_t>(gguf_align(head.size(), alignment_, "GGUF writer")), 0);
    AtomicFile out(path);
    out.write(head);
    std::vector<std::uint8_t> data;
    for (std::size_t k = 0; k < infos.size(); ++k) {
      data.clear();
      source(k, data);
      detail::check(data.size() == infos[k].nbytes, "GGUF writer: tensor '", infos[k].name, "' has ", data.size(),
                    " bytes, its type and shape need ", infos[k].nbytes);
      data.resize(static_cast<std::size_t>(gguf_align(data.size(), alignment_, "GGUF writer")), 0);
      out.write(data);
    }
    out.commit();
  }

  /// Writes the file from tensors held in memory (in declaration order).
  void write(const std::filesystem::path& path, const std::vector<std::vector<std::uint8_t>>& data) const {
    detail::check(data.size() == tensors_.size(), "GGUF writer: ", data.size(), " tensors' bytes for ",
                  tensors_.size(), " declared tensors");
    write(path, [&](std::size_t k, std::vector<std::uint8_t>& out) { out = data[k]; });
  }

 private:
  std::vector<std::uint8_t> header_bytes(const std::vector<GgufTensorInfo>& infos) const {
    std::vector<std::uint8_t> b;
    const auto put = [&b](const void* p, std::size_t n) {
      const auto* c = static_cast<const std::uint8_t*>(p);
      b.insert(b.end(), c, c + n);
    };
    const auto u32 = [&](std::uint32_t v) { put(&v, 4); };
    const auto u64 = [&](std::uint64_t v) { put(&v, 8); };
    const auto str = [&](const std::string& s) {
      u64(s.size());
      put(s.data(), s.size());
    };
    u32(gguf_magic);
    u32(gguf_version);
    u64(infos.size());
    u64(metadata_.size());
    for (const auto& [key, v] : metadata_) {
      str(key);
      u32(static_cast<std::uint32_t>(v.type));
      if (v.type != GgufType::array) {
        put_scalar(b, v, key);
        continue;
      }
      u32(static_cast<std::uint32_t>(v.elem));
      u64(v.items.size());
      for (const auto& item : v.items) {
        detail::check(item.type == v.elem, "GGUF writer: metadata '", key, "': an array of ", gguf_type_name(v.elem),
                      " holds a ", gguf_type_name(item.type));
        put_scalar(b, item, key);
      }
    }
    for (const auto& t : infos) {
      str(t.name);
      u32(static_cast<std::uint32_t>(t.ne.size()));
      for (const auto d : t.ne) u64(d);
      u32(t.ggml_type);
      u64(t.offset);
    }
    return b;
  }

  static void put_scalar(std::vector<std::uint8_t>& b, const GgufValue& v, const std::string& key) {
    const auto put = [&b](auto x) {
      const auto* c = reinterpret_cast<const std::uint8_t*>(&x);
      b.insert(b.end(), c, c + sizeof x);
    };
    switch (v.type) {
      case GgufType::u8: put(static_cast<std::uint8_t>(v.u)); break;
      case GgufType::i8: put(static_cast<std::int8_t>(v.i)); break;
      case GgufType::u16: put(static_cast<std::uint16_t>(v.u)); break;
      case GgufType::i16: put(static_cast<std::int16_t>(v.i)); break;
      case GgufType::u32: put(static_cast<std::uint32_t>(v.u)); break;
      case GgufType::i32: put(static_cast<std::int32_t>(v.i)); break;
      case GgufType::u64: put(v.u); break;
      case GgufType::i64: put(v.i); break;
      case GgufType::f32: put(static_cast<float>(v.f)); break;
      case GgufType::f64: put(v.f); break;
      case GgufType::boolean: put(static_cast<std::uint8_t>(v.u != 0)); break;
      case GgufType::string:
        put(static_cast<std::uint64_t>(v.s.size()));
        b.insert(b.end(), v.s.begin(), v.s.end());
        break;
      case GgufType::array: detail::fail("GGUF writer: metadata '", key, "': arrays of arrays are not supported");
    }
  }

  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::uint64_t alignment_ = gguf_default_alignment;
};

}  // namespace lowbit::io
