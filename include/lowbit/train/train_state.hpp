// A resumable training state on disk: step, a key of the run's settings, and for
// every parameter its values and AdamW moments, bit for bit. Written atomically
// (a run killed mid-write keeps the previous state) and checksummed, so a torn or
// edited file is refused with a message instead of resuming from garbage.
//
// Layout (little-endian): "LBTRAIN1", u64 step, u64 run_key, u64 tensor count,
// then per tensor: u32 name length, name bytes, u64 numel, numel f32 values,
// numel f32 first moments, numel f32 second moments; finally u64 FNV-1a 64 of
// every byte before it.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/fnv1a.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"

namespace lowbit::train {

static_assert(std::endian::native == std::endian::little, "train state files are little-endian");

struct TensorState {
  std::string name;
  std::vector<float> values, m, v;
};

struct TrainState {
  std::uint64_t step = 0;     ///< optimizer steps completed
  std::uint64_t run_key = 0;  ///< fingerprint of the settings a resume must share
  std::vector<TensorState> tensors;
};

namespace detail {

inline constexpr std::string_view train_state_magic = "LBTRAIN1";

inline std::uint64_t fnv1a64_bytes(const char* p, std::size_t n) { return lowbit::fnv1a64({p, n}); }

template <class T>
void put(std::string& out, T x) {
  char b[sizeof(T)];
  std::memcpy(b, &x, sizeof(T));
  out.append(b, sizeof(T));
}

/// Reads from a byte buffer, naming the file and the field when it runs short.
class Reader {
 public:
  Reader(std::string_view bytes, std::string source) : bytes_(bytes), source_(std::move(source)) {}
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T x;
    std::memcpy(&x, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return x;
  }
  std::string_view take(std::size_t n, const char* what) {
    need(n, what);
    const auto s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  [[nodiscard]] std::size_t remaining() const { return bytes_.size() - pos_; }

 private:
  void need(std::size_t n, const char* what) const {
    lowbit::detail::check(bytes_.size() - pos_ >= n, "train state '", source_, "': truncated while reading ", what,
                          " (", bytes_.size() - pos_, " bytes left, ", n, " needed)");
  }
  std::string_view bytes_;
  std::string source_;
  std::size_t pos_ = 0;
};

}  // namespace detail

[[nodiscard]] inline std::string encode_train_state(const TrainState& s) {
  std::string out(detail::train_state_magic);
  detail::put(out, s.step);
  detail::put(out, s.run_key);
  detail::put(out, static_cast<std::uint64_t>(s.tensors.size()));
  for (const auto& t : s.tensors) {
    lowbit::detail::check(t.m.size() == t.values.size() && t.v.size() == t.values.size(), "train state: tensor '",
                          t.name, "' has ", t.values.size(), " values but ", t.m.size(), "/", t.v.size(),
                          " moments");
    detail::put(out, static_cast<std::uint32_t>(t.name.size()));
    out += t.name;
    detail::put(out, static_cast<std::uint64_t>(t.values.size()));
    for (const auto* part : {&t.values, &t.m, &t.v})
      out.append(reinterpret_cast<const char*>(part->data()), part->size() * sizeof(float));
  }
  detail::put(out, detail::fnv1a64_bytes(out.data(), out.size()));
  return out;
}

[[nodiscard]] inline TrainState decode_train_state(std::string_view bytes, const std::string& source) {
  lowbit::detail::check(bytes.size() >= detail::train_state_magic.size() + 8 &&
                            bytes.substr(0, detail::train_state_magic.size()) == detail::train_state_magic,
                        "train state '", source, "': not a lowbit training state (no LBTRAIN1 header)");
  std::uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  const std::uint64_t actual = detail::fnv1a64_bytes(bytes.data(), bytes.size() - 8);
  lowbit::detail::check(stored == actual, "train state '", source,
                        "': checksum mismatch (the file is truncated or corrupted); resume from an intact copy "
                        "or start the run again");
  detail::Reader r(bytes.substr(0, bytes.size() - 8), source);
  r.take(detail::train_state_magic.size(), "the header");
  TrainState s;
  s.step = r.get<std::uint64_t>("the step");
  s.run_key = r.get<std::uint64_t>("the run key");
  const auto count = r.get<std::uint64_t>("the tensor count");
  lowbit::detail::check(count <= r.remaining(), "train state '", source, "': tensor count ", count,
                        " exceeds the file");
  for (std::uint64_t i = 0; i < count; ++i) {
    TensorState t;
    const auto len = r.get<std::uint32_t>("a tensor name length");
    t.name = std::string(r.take(len, "a tensor name"));
    const auto n = r.get<std::uint64_t>("a tensor size");
    lowbit::detail::check(n <= r.remaining() / (3 * sizeof(float)), "train state '", source, "': tensor '", t.name,
                          "' claims ", n, " values, more than the file holds");
    for (auto* part : {&t.values, &t.m, &t.v}) {
      part->resize(static_cast<std::size_t>(n));
      const auto raw = r.take(static_cast<std::size_t>(n) * sizeof(float), "tensor values");
      std::memcpy(part->data(), raw.data(), raw.size());
    }
    s.tensors.push_back(std::move(t));
  }
  lowbit::detail::check(r.remaining() == 0, "train state '", source, "': ", r.remaining(),
                        " unexpected bytes after the last tensor");
  return s;
}

inline void write_train_state(const std::filesystem::path& path, const TrainState& s) {
  io::write_file_atomic(path, encode_train_state(s));
}

[[nodiscard]] inline TrainState read_train_state(const std::filesystem::path& path) {
  lowbit::detail::check(std::filesystem::exists(path), "train state '", path.string(), "' does not exist");
  return decode_train_state(io::read_file(path), path.string());
}

}  // namespace lowbit::train
