// BPE's merge rules, looked up by the pair of token ids they join: the rule's rank
// (lower merges first) and the merged token's id. Both BPE encoders (gpt2_bpe.hpp,
// tokenizer_json.hpp) ask it once per adjacent pair of every word they encode, and
// real vocabularies have 50,000 (GPT-2) to 280,000 (Llama 3) rules, so a lookup is
// a cache miss either way: open addressing over one flat array takes one, where
// std::unordered_map took a bucket and a node.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

#include "lowbit/core/huge_page_allocator.hpp"

namespace lowbit::text {

class MergeTable {
 public:
  struct Merge {
    std::uint32_t rank;
    int id;  ///< the merged token
  };

  // At most 60 % full: a smaller table stays closer in cache (Llama 3's 280,000 rules
  // take 8 MB instead of 16 MB), which costs less than the longer probes (Qwen3's
  // encode 10 % faster, bench_text).
  /// Room for `n` rules without growing.
  void reserve(std::size_t n) {
    if (5 * n > 3 * slots_.size()) rehash(std::bit_ceil(5 * n / 3 + 1));
  }

  /// Adds the rule for (a, b), ids >= 0; false (and no change) if the pair has one.
  bool insert(int a, int b, Merge m) {
    if (5 * (size_ + 1) > 3 * slots_.size()) rehash(slots_.empty() ? 1024 : 2 * slots_.size());
    const std::uint64_t k = key(a, b);
    std::size_t i = slot(k);
    for (; slots_[i].key != empty; i = (i + 1) & (slots_.size() - 1))
      if (slots_[i].key == k) return false;
    slots_[i] = {k, m};
    ++size_;
    return true;
  }

  /// The rule joining a and b, or nullptr (also for a negative id: no symbol).
  [[nodiscard]] const Merge* find(int a, int b) const {
    if (a < 0 || b < 0 || slots_.empty()) return nullptr;
    const std::uint64_t k = key(a, b);
    for (std::size_t i = slot(k); slots_[i].key != empty; i = (i + 1) & (slots_.size() - 1))
      if (slots_[i].key == k) return &slots_[i].merge;
    return nullptr;
  }

  /// Starts loading the slot where (a, b)'s rule would be, so that several lookups a
  /// BPE step makes wait for memory together instead of one after the other.
  void prefetch(int a, int b) const {
    if (a >= 0 && b >= 0 && !slots_.empty()) __builtin_prefetch(&slots_[slot(key(a, b))]);
  }

  [[nodiscard]] std::size_t size() const { return size_; }

  /// f(a, b, merge) for every rule, in no particular order.
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.key != empty) f(static_cast<int>(s.key >> 32), static_cast<int>(s.key & 0xFFFFFFFFu), s.merge);
  }

 private:
  struct Slot {
    std::uint64_t key;
    Merge merge;
  };
  // Ids are non-negative ints, so no pair's key has its top bit set.
  static constexpr std::uint64_t empty = ~std::uint64_t{0};

  static std::uint64_t key(int a, int b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  /// Fibonacci hashing: the multiply spreads both ids into the top bits, which pick
  /// the slot (the table size is a power of two).
  [[nodiscard]] std::size_t slot(std::uint64_t k) const {
    return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> (64 - std::countr_zero(slots_.size())));
  }

  void rehash(std::size_t capacity) {
    auto old = std::move(slots_);
    slots_.assign(capacity, Slot{empty, {}});
    for (const Slot& s : old) {
      if (s.key == empty) continue;
      std::size_t i = slot(s.key);
      while (slots_[i].key != empty) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = s;
    }
  }

  std::vector<Slot, HugePageAllocator<Slot>> slots_;  // 8 MB for Llama 3: see huge_page_allocator.hpp
  std::size_t size_ = 0;
};

}  // namespace lowbit::text
