// The ids of pre-tokens already encoded in one encode() call. Text repeats its words,
// and BPE on a word (symbols, merge lookups) costs far more than finding it again, so
// both BPE encoders (gpt2_bpe.hpp, tokenizer_json.hpp) look every piece up here first.
// A node-based std::unordered_map made that lookup a fifth of a tokenizer.json
// encode; this is open addressing over a power-of-two table, each slot keeping the
// piece's hash so that a probe compares bytes only on a full hash match.
//
// Keys are views into the text being encoded: the cache must not outlive it (the
// encoders keep one per call, which also keeps encode() thread-safe).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "lowbit/text/token_index.hpp"

namespace lowbit::text {

class PieceCache {
 public:
  /// Pieces this long or longer are not kept (they rarely repeat).
  static constexpr std::size_t max_piece = 256;

  /// Whether `piece` is cached; its ids in `ids` if so (valid until the next insert).
  [[nodiscard]] bool find(std::string_view piece, std::span<const int>& ids) const {
    if (slots_.empty()) return false;
    const std::uint64_t h = hash(piece);
    for (std::size_t i = h & mask(); slots_[i].data != nullptr; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (s.hash == h && s.size == piece.size() && std::memcmp(s.data, piece.data(), piece.size()) == 0) {
        ids = std::span<const int>(ids_.data() + s.first, s.count);
        return true;
      }
    }
    return false;
  }

  /// Remembers the ids of `piece` (not already cached; ignored when too long).
  void insert(std::string_view piece, std::span<const int> ids) {
    if (piece.size() >= max_piece || piece.empty()) return;
    if (2 * (used_ + 1) > slots_.size()) grow();
    const std::uint64_t h = hash(piece);
    std::size_t i = h & mask();
    while (slots_[i].data != nullptr) i = (i + 1) & mask();
    slots_[i] = {piece.data(), h, static_cast<std::uint32_t>(piece.size()), static_cast<std::uint32_t>(ids_.size()),
                 static_cast<std::uint32_t>(ids.size())};
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    ++used_;
  }

  void clear() {
    slots_.clear();
    ids_.clear();
    used_ = 0;
  }

 private:
  struct Slot {
    const char* data = nullptr;  // null: empty slot
    std::uint64_t hash = 0;
    std::uint32_t size = 0, first = 0, count = 0;
  };

  static std::uint64_t hash(std::string_view s) { return piece_hash(s); }

  [[nodiscard]] std::size_t mask() const { return slots_.size() - 1; }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : 2 * old.size(), Slot{});
    for (const Slot& s : old) {
      if (s.data == nullptr) continue;
      std::size_t i = s.hash & mask();
      while (slots_[i].data != nullptr) i = (i + 1) & mask();
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::vector<int> ids_;  // the cached pieces' ids, back to back
  std::size_t used_ = 0;
};

}  // namespace lowbit::text
