// safetensors reader (memory-mapped, zero-copy for aligned F32) and writer (atomic).
//
// File layout (https://github.com/huggingface/safetensors): 8-byte little-endian
// header length N, N bytes of UTF-8 JSON starting with '{' (trailing spaces allowed),
// then the byte buffer. The JSON maps each tensor name to {"dtype", "shape",
// "data_offsets": [begin, end]} (offsets relative to the buffer) and may hold a
// "__metadata__" map of string to string. The whole header is validated before any
// tensor byte is touched: length, JSON syntax, dtype names, shape vs byte range,
// ranges inside the file, no overlaps, no unindexed bytes (the format requires the
// buffer to be fully indexed), no duplicate names. Every failure is a lowbit::Error
// naming the file and, where there is one, the tensor.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/io/json.hpp"

namespace lowbit::io {

static_assert(std::endian::native == std::endian::little,
              "lowbit's safetensors code reads little-endian data in place");

enum class DType { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

inline constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::BOOL: case DType::U8: case DType::I8: case DType::F8_E5M2: case DType::F8_E4M3: return 1;
    case DType::I16: case DType::U16: case DType::F16: case DType::BF16: return 2;
    case DType::I32: case DType::U32: case DType::F32: return 4;
    case DType::F64: case DType::I64: case DType::U64: return 8;
  }
  return 0;
}

inline constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::BOOL: return "BOOL";
    case DType::U8: return "U8";
    case DType::I8: return "I8";
    case DType::F8_E5M2: return "F8_E5M2";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I16: return "I16";
    case DType::U16: return "U16";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::U32: return "U32";
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::U64: return "U64";
  }
  return "?";
}

inline std::optional<DType> parse_dtype(std::string_view s) {
  for (int i = 0; i <= static_cast<int>(DType::U64); ++i)
    if (dtype_name(static_cast<DType>(i)) == s) return static_cast<DType>(i);
  return std::nullopt;
}

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  ///< byte offsets in the data buffer
  std::uint64_t end = 0;
  [[nodiscard]] std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  [[nodiscard]] std::uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::uint64_t data_start = 0;  ///< 8 + header length: file offset of the buffer
  std::vector<TensorInfo> tensors;  ///< in header order
  std::map<std::string, std::string> metadata;
};

/// Largest header accepted (the reference implementation's limit).
inline constexpr std::uint64_t max_safetensors_header = 100'000'000;

/// Validates and parses the header of a complete safetensors file held in `file`
/// (only the first 8 + N bytes are read; the buffer's size is checked against the
/// offsets). `label` names the file in errors.
inline SafetensorsHeader parse_safetensors_header(std::span<const std::uint8_t> file, std::string_view label) {
  const auto where = [&] { return std::string("safetensors file '") + std::string(label) + "'"; };
  detail::check(file.size() >= 8, where(), ": ", file.size(),
                " bytes is too short to hold the 8-byte header length");
  std::uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  detail::check(n <= max_safetensors_header, where(), ": header length ", n, " exceeds the limit of ",
                max_safetensors_header, " bytes");
  detail::check(n <= file.size() - 8, where(), ": header length ", n, " runs past the end of the file (",
                file.size(), " bytes)");
  detail::check(n >= 2, where(), ": header length ", n, " is too short for a JSON object");
  const std::string_view text(reinterpret_cast<const char*>(file.data() + 8), static_cast<std::size_t>(n));
  detail::check(text[0] == '{', where(), ": the header must start with '{'");
  const Json root = Json::parse(text, where() + " header");
  detail::check(root.is_object(), where(), ": the header is not a JSON object");

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const std::uint64_t buffer = file.size() - h.data_start;
  for (std::size_t i = 0; i < root.size(); ++i) {
    const std::string& name = root.keys()[i];
    const Json& v = root.value_at(i);
    if (name == "__metadata__") {
      detail::check(v.is_object(), where(), ": __metadata__ must be an object of strings");
      for (std::size_t k = 0; k < v.size(); ++k) {
        detail::check(v.value_at(k).is_string(), where(), ": __metadata__ entry '", v.keys()[k],
                      "' is not a string");
        h.metadata.emplace(v.keys()[k], v.value_at(k).as_string());
      }
      continue;
    }
    const auto bad = [&](const auto&... what) { detail::fail(where(), ", tensor '", name, "': ", what...); };
    if (!v.is_object()) bad("entry is not an object");
    for (const auto& key : v.keys())
      if (key != "dtype" && key != "shape" && key != "data_offsets") bad("unknown field '", key, "'");
    const Json* dt = v.find("dtype");
    const Json* shape = v.find("shape");
    const Json* offsets = v.find("data_offsets");
    if (!dt || !shape || !offsets) bad("needs dtype, shape and data_offsets");
    if (!dt->is_string()) bad("dtype is not a string");
    const auto dtype = parse_dtype(dt->as_string());
    if (!dtype) bad("unknown dtype '", dt->as_string(), "'");
    TensorInfo t;
    t.name = name;
    t.dtype = *dtype;
    if (!shape->is_array()) bad("shape is not an array");
    // Element count with overflow checks: numel · size must not wrap.
    std::uint64_t numel = 1;
    bool overflow = false;
    for (const Json& d : shape->items()) {
      if (!d.is_number()) bad("shape holds a non-number");
      std::uint64_t dim = 0;
      try {
        dim = d.as_uint64();
      } catch (const Error&) {
        bad("shape entry ", d.number_text(), " is not a non-negative integer");
      }
      if (dim > static_cast<std::uint64_t>(INT64_MAX)) bad("shape entry ", dim, " is too large");
      t.shape.push_back(static_cast<std::int64_t>(dim));
      if (dim != 0 && numel > UINT64_MAX / dim) overflow = true;
      numel *= dim;
    }
    const std::uint64_t esize = dtype_size(*dtype);
    if (!overflow && numel > UINT64_MAX / esize) overflow = true;
    if (!offsets->is_array() || offsets->size() != 2) bad("data_offsets must be an array [begin, end]");
    try {
      t.begin = (*offsets)[0].as_uint64();
      t.end = (*offsets)[1].as_uint64();
    } catch (const Error&) {
      bad("data_offsets must be two non-negative integers");
    }
    if (t.end < t.begin) bad("data_offsets [", t.begin, ", ", t.end, "] end before they begin");
    if (overflow || numel * esize != t.end - t.begin)
      bad("shape and dtype ", dtype_name(*dtype), " need ", overflow ? std::string("more than 2^64") :
          std::to_string(numel * esize), " bytes but data_offsets [", t.begin, ", ", t.end, "] span ",
          t.end - t.begin);
    if (t.end > buffer)
      bad("data_offsets [", t.begin, ", ", t.end, "] run past the end of the data buffer (", buffer,
          " bytes)");
    h.tensors.push_back(std::move(t));
  }
  // Names are unique because the JSON parser refuses duplicate keys. Ranges: sorted
  // by offset they must tile [0, buffer) exactly.
  std::vector<const TensorInfo*> order;
  order.reserve(h.tensors.size());
  for (const auto& t : h.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : order) {
    if (t->begin < cursor)
      detail::fail(where(), ", tensor '", t->name, "': bytes [", t->begin, ", ", t->end,
                   ") overlap tensor '", prev->name, "' [", prev->begin, ", ", prev->end, ")");
    if (t->begin > cursor)
      detail::fail(where(), ", tensor '", t->name, "': bytes [", cursor, ", ", t->begin,
                   ") before it belong to no tensor (the buffer must be fully indexed)");
    cursor = t->end;
    prev = t;
  }
  detail::check(cursor == buffer, where(), ": the last ", buffer - cursor,
                " bytes of the data buffer belong to no tensor (the buffer must be fully indexed)");
  return h;
}

/// Float values of one tensor: a zero-copy view into the map when the tensor is F32
/// and 4-byte aligned in memory, else an owned converted copy.
class FloatTensor {
 public:
  FloatTensor(std::vector<std::int64_t> shape, std::span<const float> view)
      : shape_(std::move(shape)), view_(view), zero_copy_(true) {}
  FloatTensor(std::vector<std::int64_t> shape, std::vector<float> owned)
      : shape_(std::move(shape)), owned_(std::move(owned)) {}

  [[nodiscard]] std::span<const float> values() const { return zero_copy_ ? view_ : std::span<const float>(owned_); }
  [[nodiscard]] const std::vector<std::int64_t>& shape() const { return shape_; }
  /// True when values() points into the memory-mapped file (valid while it lives).
  [[nodiscard]] bool zero_copy() const { return zero_copy_; }

 private:
  std::vector<std::int64_t> shape_;
  std::vector<float> owned_;
  std::span<const float> view_;
  bool zero_copy_ = false;
};

class SafetensorsFile {
 public:
  /// Memory-maps and validates `path`.
  static SafetensorsFile open(const std::filesystem::path& path) {
    SafetensorsFile f;
    f.label_ = path.string();
    f.map_ = MappedFile(path);
    f.bytes_ = f.map_.bytes();
    f.init();
    return f;
  }
  /// Validates an in-memory file (tests, fuzzing); `label` names it in errors.
  static SafetensorsFile from_bytes(std::vector<std::uint8_t> bytes, std::string label) {
    SafetensorsFile f;
    f.label_ = std::move(label);
    f.owned_ = std::move(bytes);
    f.bytes_ = f.owned_;
    f.init();
    return f;
  }

  [[nodiscard]] const std::string& path() const { return label_; }
  [[nodiscard]] const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  [[nodiscard]] bool contains(std::string_view name) const { return index_.count(std::string(name)) != 0; }

  [[nodiscard]] const TensorInfo& info(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    if (it == index_.end()) detail::fail("safetensors file '", label_, "' has no tensor '", name, "'");
    return header_.tensors[it->second];
  }

  /// The tensor's raw little-endian bytes.
  [[nodiscard]] std::span<const std::uint8_t> bytes(std::string_view name) const {
    const TensorInfo& t = info(name);
    return bytes_.subspan(static_cast<std::size_t>(header_.data_start + t.begin), static_cast<std::size_t>(t.nbytes()));
  }

  /// Float values: F32 zero-copy when aligned, F16/BF16/F64 converted, F32 copied
  /// when the data offset is not 4-byte aligned (safetensors does not promise it).
  [[nodiscard]] FloatTensor load_float(std::string_view name) const {
    const TensorInfo& t = info(name);
    const auto raw = bytes(name);
    if (t.dtype == DType::F32 && reinterpret_cast<std::uintptr_t>(raw.data()) % alignof(float) == 0)
      return FloatTensor(t.shape, std::span<const float>(reinterpret_cast<const float*>(raw.data()),
                                                         static_cast<std::size_t>(t.numel())));
    return FloatTensor(t.shape, to_float(name));
  }

  /// Float values as an owned vector (always a copy).
  [[nodiscard]] std::vector<float> to_float(std::string_view name) const {
    const TensorInfo& t = info(name);
    const auto raw = bytes(name);
    const auto n = static_cast<std::size_t>(t.numel());
    std::vector<float> out(n);
    switch (t.dtype) {
      case DType::F32:
        if (n) std::memcpy(out.data(), raw.data(), n * 4);
        break;
      case DType::F16:
      case DType::BF16:
        for (std::size_t i = 0; i < n; ++i) {
          std::uint16_t h = 0;
          std::memcpy(&h, raw.data() + 2 * i, 2);
          out[i] = t.dtype == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
        break;
      case DType::F64:
        for (std::size_t i = 0; i < n; ++i) {
          double d = 0;
          std::memcpy(&d, raw.data() + 8 * i, 8);
          out[i] = static_cast<float>(d);
        }
        break;
      default:
        detail::fail("safetensors file '", label_, "', tensor '", name, "': dtype ", dtype_name(t.dtype),
                     " is not a float type (F32, F16, BF16 or F64)");
    }
    return out;
  }

 private:
  SafetensorsFile() = default;
  void init() {
    header_ = parse_safetensors_header(bytes_, label_);
    for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
  }

  std::string label_;
  MappedFile map_;
  std::vector<std::uint8_t> owned_;
  std::span<const std::uint8_t> bytes_;
  SafetensorsHeader header_;
  std::unordered_map<std::string, std::size_t> index_;
};

/// Collects tensors and metadata, then writes a safetensors file atomically.
/// Tensors are laid out by element size (largest first), then by name, as the
/// reference writer does, so every tensor is aligned to its element size once the
/// header is padded (with spaces) to a multiple of 8 bytes.
class SafetensorsWriter {
 public:
  /// Adds raw little-endian bytes (copied).
  void add(std::string name, DType dtype, std::vector<std::int64_t> shape, std::span<const std::uint8_t> data) {
    const std::uint64_t n = checked_bytes(name, dtype, shape);
    detail::check(n == data.size(), "SafetensorsWriter: tensor '", name, "' of dtype ", dtype_name(dtype), " needs ",
                  n, " bytes, got ", data.size());
    tensors_.push_back({std::move(name), dtype, std::move(shape), {data.begin(), data.end()}, n, {}});
  }
  /// Writes one deferred tensor's bytes into the span it is given (its exact size).
  using Fill = std::function<void(std::span<std::uint8_t>)>;
  /// Adds a tensor whose bytes `fill` produces only when the file is written: write()
  /// then holds one such tensor in memory at a time, so a file bigger than RAM (a
  /// model written from its shards and a work folder) streams to disk.
  void add_deferred(std::string name, DType dtype, std::vector<std::int64_t> shape, Fill fill) {
    const std::uint64_t n = checked_bytes(name, dtype, shape);
    tensors_.push_back({std::move(name), dtype, std::move(shape), {}, n, std::move(fill)});
  }
  void add_f32(std::string name, std::vector<std::int64_t> shape, std::span<const float> v) {
    add(std::move(name), DType::F32, std::move(shape),
        {reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * 4});
  }
  /// Stores v rounded to F16 (nearest, ties to even).
  void add_f16(std::string name, std::vector<std::int64_t> shape, std::span<const float> v) {
    std::vector<std::uint16_t> h(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
    add(std::move(name), DType::F16, std::move(shape), {reinterpret_cast<const std::uint8_t*>(h.data()), h.size() * 2});
  }
  void add_bf16(std::string name, std::vector<std::int64_t> shape, std::span<const float> v) {
    std::vector<std::uint16_t> h(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) h[i] = f32_to_bf16(v[i]);
    add(std::move(name), DType::BF16, std::move(shape), {reinterpret_cast<const std::uint8_t*>(h.data()), h.size() * 2});
  }
  void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

  /// The complete file's bytes.
  [[nodiscard]] std::string serialize() const {
    const auto order = layout();
    std::string out = head(order);
    std::vector<std::uint8_t> buffer;
    for (const Entry* t : order) {
      const auto b = bytes_of(*t, buffer);
      out.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    return out;
  }

  /// Writes atomically (temporary file + rename); a failure leaves `path` as it was.
  /// Deferred tensors are produced one at a time, straight into the file.
  void write(const std::filesystem::path& path) const {
    const auto order = layout();
    AtomicFile out(path);
    out.write(head(order));
    std::vector<std::uint8_t> buffer;
    for (const Entry* t : order) {
      const auto b = bytes_of(*t, buffer);
      out.write(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    }
    out.commit();
  }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> data;  // empty for a deferred tensor
    std::uint64_t size = 0;          // bytes
    Fill fill;                       // set for a deferred tensor
  };

  /// The tensor's byte count, after checking its name and shape.
  [[nodiscard]] std::uint64_t checked_bytes(const std::string& name, DType dtype,
                                            const std::vector<std::int64_t>& shape) const {
    detail::check(!name.empty(), "SafetensorsWriter: empty tensor name");
    detail::check(name != "__metadata__", "SafetensorsWriter: '__metadata__' cannot name a tensor");
    for (const auto& t : tensors_)
      detail::check(t.name != name, "SafetensorsWriter: tensor '", name, "' added twice");
    std::uint64_t numel = 1;
    for (auto d : shape) {
      detail::check(d >= 0, "SafetensorsWriter: tensor '", name, "' has negative dimension ", d);
      numel *= static_cast<std::uint64_t>(d);
    }
    return numel * dtype_size(dtype);
  }

  /// Tensors by element size (largest first), then by name.
  [[nodiscard]] std::vector<const Entry*> layout() const {
    std::vector<const Entry*> order;
    for (const auto& t : tensors_) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
      const auto sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
      return sa != sb ? sa > sb : a->name < b->name;
    });
    return order;
  }

  /// The header's length (8 bytes, little-endian) and the header, padded with spaces.
  [[nodiscard]] std::string head(const std::vector<const Entry*>& order) const {
    Json root = Json::object();
    if (!metadata_.empty()) {
      Json m = Json::object();
      for (const auto& [k, v] : metadata_) m.set(k, Json::string(v));
      root.set("__metadata__", std::move(m));
    }
    std::uint64_t offset = 0;
    for (const Entry* t : order) {
      Json e = Json::object();
      e.set("dtype", Json::string(std::string(dtype_name(t->dtype))));
      Json shape = Json::array();
      for (auto d : t->shape) shape.push_back(Json::number(static_cast<std::int64_t>(d)));
      e.set("shape", std::move(shape));
      Json offs = Json::array();
      offs.push_back(Json::number_u64(offset));
      offs.push_back(Json::number_u64(offset + t->size));
      e.set("data_offsets", std::move(offs));
      root.set(t->name, std::move(e));
      offset += t->size;
    }
    std::string header = root.dump();
    header.append((8 - header.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    const std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    return out + header;
  }

  /// A tensor's bytes: its own, or what its fill writes into `buffer`.
  static std::span<const std::uint8_t> bytes_of(const Entry& t, std::vector<std::uint8_t>& buffer) {
    if (!t.fill) return t.data;
    buffer.assign(t.size, 0);
    t.fill(buffer);
    return buffer;
  }

  std::vector<Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace lowbit::io
