// A vocabulary's ids by token text (bytes), for the lookups an encoder makes per
// symbol or per word: one flat open-addressing table whose slots keep each key's first
// bytes and its place in one string holding every key back to back. The node-based
// std::unordered_map it replaces cost a bucket and a node (two cache misses) per
// lookup, which on a 128,000-token vocabulary was a tenth of a tokenizer.json encode.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <functional>
#include <unordered_map>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/huge_page_allocator.hpp"
#include "lowbit/text/piece_key.hpp"

namespace lowbit::text {

class TokenIndex {
 public:
  // 16-byte slots at most 60 % full, as MergeTable: Llama 3's 128,256 tokens take
  // 4 MB. A slot holds the token's first eight bytes (piece_key.hpp), so a lookup
  // of a token of at most eight bytes reads nothing but its slot: an encoder with
  // ignore_merges asks for every new word, and the second miss into bytes_ had been
  // most of that (perf, Llama 3 on WikiText-2).
  void reserve(std::size_t n) {
    if (5 * n > 3 * slots_.size()) rehash(std::bit_ceil(5 * n / 3 + 1));
  }

  /// Adds token → id (id >= 0); false, and no change, if the token is there already.
  bool insert(std::string_view token, int id) {
    lowbit::detail::check(bytes_.size() + token.size() < (std::size_t{1} << 32), "TokenIndex: more than 4 GiB of tokens");
    lowbit::detail::check(id >= 0 && id < max_id, "TokenIndex: token id ", id, " is outside 0..", max_id - 1,
                          " (the ids a slot holds)");
    const PieceKey k = piece_key(token);
    if (find(token, k) >= 0) return false;
    if (token.size() >= long_size) {
      long_.emplace(std::string(token), id);
      ++size_;
      return true;
    }
    if (5 * (size_ + 1) > 3 * slots_.size()) rehash(slots_.empty() ? 1024 : 2 * slots_.size());
    std::size_t i = k.hash & mask();
    while (!is_empty(slots_[i])) i = (i + 1) & mask();
    slots_[i] = {k.prefix, static_cast<std::uint32_t>(bytes_.size()),
                 static_cast<std::uint32_t>(id) << size_bits | static_cast<std::uint32_t>(token.size())};
    bytes_.append(token);
    ++size_;
    return true;
  }

  /// The token's id, or -1.
  [[nodiscard]] int find(std::string_view token) const { return find(token, piece_key(token)); }

  /// The same with the token's key already computed (piece_key(token)).
  [[nodiscard]] int find(std::string_view token, const PieceKey& k) const {
    if (token.size() >= long_size) {
      const auto it = long_.find(token);
      return it == long_.end() ? -1 : it->second;
    }
    if (slots_.empty()) return -1;
    for (std::size_t i = k.hash & mask(); !is_empty(slots_[i]); i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (s.prefix != k.prefix || (s.size_id & size_mask) != token.size()) continue;
      if (token.size() <= 8 || std::memcmp(bytes_.data() + s.offset + 8, token.data() + 8, token.size() - 8) == 0)
        return static_cast<int>(s.size_id >> size_bits);
    }
    return -1;
  }

  /// Starts loading the slot where a lookup of the piece keyed `k` begins.
  void prefetch(const PieceKey& k) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[k.hash & mask()]);
  }

  /// f(token) for every token, in no particular order.
  template <class F>
  void for_each_token(F&& f) const {
    for (const Slot& s : slots_)
      if (!is_empty(s)) f(std::string_view(bytes_).substr(s.offset, s.size_id & size_mask));
    for (const auto& [token, id] : long_) f(std::string_view(token));
  }

  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  // size_id: the token's length in the low size_bits, its id above. Tokens of
  // long_size bytes or more (none in the vocabularies lowbit reads; a few hundred
  // bytes at most) are kept in long_ instead.
  static constexpr int size_bits = 11;
  static constexpr std::uint32_t size_mask = (1u << size_bits) - 1, empty = ~std::uint32_t{0};
  static constexpr std::size_t long_size = size_mask;
  // Ids below 2^21; the all-ones word marks an empty slot (no slot's size is 2,047).
  static constexpr int max_id = 1 << (32 - size_bits);

  struct Slot {
    std::uint64_t prefix = 0;    // the token's first (up to) eight bytes
    std::uint32_t offset = 0;    // of the token's bytes in bytes_
    std::uint32_t size_id = empty;
  };
  static_assert(sizeof(Slot) == 16);
  static bool is_empty(const Slot& s) { return s.size_id == empty; }

  [[nodiscard]] std::size_t mask() const { return slots_.size() - 1; }

  void rehash(std::size_t capacity) {
    auto old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    for (const Slot& s : old) {
      if (is_empty(s)) continue;
      std::size_t i = piece_key(std::string_view(bytes_).substr(s.offset, s.size_id & size_mask)).hash & mask();
      while (!is_empty(slots_[i])) i = (i + 1) & mask();
      slots_[i] = s;
    }
  }

  std::string bytes_;  // every token's bytes, back to back
  std::vector<Slot, HugePageAllocator<Slot>> slots_;  // 4 MB for Llama 3: see huge_page_allocator.hpp
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int, StringHash, std::equal_to<>> long_;
  std::size_t size_ = 0;
};

}  // namespace lowbit::text
