// A vocabulary's ids by token text (bytes), for the lookups an encoder makes per
// symbol or per word: one flat open-addressing table whose slots keep each key's hash
// and its place in one string holding every key back to back. The node-based
// std::unordered_map it replaces cost a bucket and a node (two cache misses) per
// lookup, which on a 128,000-token vocabulary was a tenth of a tokenizer.json encode.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"

namespace lowbit::text {

/// FNV-1a, 64-bit, the high bits folded into the low ones (which pick a slot): tokens
/// and pre-tokens are a few bytes, where a byte loop beats block hashes' setup.
inline std::uint64_t piece_hash(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h ^ (h >> 29);
}

class TokenIndex {
 public:
  // 16-byte slots at most 60 % full, as MergeTable: Llama 3's 128,256 tokens take
  // 4 MB instead of 6 MB (24-byte slots, half full).
  void reserve(std::size_t n) {
    if (5 * n > 3 * slots_.size()) rehash(std::bit_ceil(5 * n / 3 + 1));
  }

  /// Adds token → id (id >= 0); false, and no change, if the token is there already.
  bool insert(std::string_view token, int id) {
    lowbit::detail::check(bytes_.size() + token.size() < (std::size_t{1} << 32), "TokenIndex: more than 4 GiB of tokens");
    if (5 * (size_ + 1) > 3 * slots_.size()) rehash(slots_.empty() ? 1024 : 2 * slots_.size());
    const std::uint64_t h = piece_hash(token);
    std::size_t i = h & mask();
    for (; slots_[i].id >= 0; i = (i + 1) & mask())
      if (matches(slots_[i], h, token)) return false;
    slots_[i] = {static_cast<std::uint32_t>(h >> 32), static_cast<std::uint32_t>(bytes_.size()),
                 static_cast<std::uint32_t>(token.size()), id};
    bytes_.append(token);
    ++size_;
    return true;
  }

  /// The token's id, or -1.
  [[nodiscard]] int find(std::string_view token) const {
    if (slots_.empty()) return -1;
    const std::uint64_t h = piece_hash(token);
    for (std::size_t i = h & mask(); slots_[i].id >= 0; i = (i + 1) & mask())
      if (matches(slots_[i], h, token)) return slots_[i].id;
    return -1;
  }

  /// f(token) for every token, in no particular order.
  template <class F>
  void for_each_token(F&& f) const {
    for (const Slot& s : slots_)
      if (s.id >= 0) f(std::string_view(bytes_).substr(s.offset, s.size));
  }

  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  struct Slot {
    std::uint32_t hash = 0;    // the top half of the token's hash (the bottom picks the slot)
    std::uint32_t offset = 0;  // of the token's bytes in bytes_
    std::uint32_t size = 0;
    int id = -1;  // -1: empty
  };

  [[nodiscard]] bool matches(const Slot& s, std::uint64_t h, std::string_view token) const {
    return s.hash == static_cast<std::uint32_t>(h >> 32) && s.size == token.size() && std::memcmp(bytes_.data() + s.offset, token.data(), s.size) == 0;
  }
  [[nodiscard]] std::size_t mask() const { return slots_.size() - 1; }

  void rehash(std::size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    for (const Slot& s : old) {
      if (s.id < 0) continue;
      std::size_t i = piece_hash(std::string_view(bytes_).substr(s.offset, s.size)) & mask();
      while (slots_[i].id >= 0) i = (i + 1) & mask();
      slots_[i] = s;
    }
  }

  std::string bytes_;  // every token's bytes, back to back
  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace lowbit::text
