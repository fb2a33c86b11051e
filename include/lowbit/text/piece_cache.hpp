// The ids of pre-tokens already encoded in one encode() call. Text repeats its words,
// and BPE on a word (symbols, merge lookups) costs far more than finding it again, so
// both BPE encoders (gpt2_bpe.hpp, tokenizer_json.hpp) look every piece up here first.
//
// Almost every lookup is a hit on a short word, so a hit is made to touch one 16-byte
// slot: the slot holds the piece's first eight bytes and, when the piece is one token,
// its id. Only a longer piece (its remaining bytes, compared in the text where it was
// first seen) or one of several tokens (its ids, back to back in ids_) reads more.
// The slots of the earlier design held a pointer and the ids' place (32 bytes) and a
// hit compared the bytes where the piece first occurred, far back in the text: two
// cache misses per hit on a 21,000-word cache (a quarter of a Llama 3 encode, perf).
//
// Keys are views into the text being encoded: the cache must not outlive it (the
// encoders keep one per call, which also keeps encode() thread-safe).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "lowbit/text/piece_key.hpp"

namespace lowbit::text {

class PieceCache {
 public:
  /// Pieces this long or longer are not kept (they rarely repeat).
  static constexpr std::size_t max_piece = 256;

  /// Whether `piece` is cached; its ids in `ids` if so (valid until the next insert).
  [[nodiscard]] bool find(std::string_view piece, std::span<const int>& ids) const {
    return find(piece, piece_key(piece), ids);
  }
  /// The same with the piece's key already computed (piece_key(piece)).
  [[nodiscard]] bool find(std::string_view piece, const PieceKey& pk, std::span<const int>& ids) const {
    if (slots_.empty() || piece.size() >= max_piece) return false;
    const Key k = key(pk);
    for (std::size_t i = k.hash & mask(); slots_[i].size != 0; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (s.prefix != k.prefix || (s.size & size_bits) != piece.size() || s.tag != k.tag) continue;
      if (s.size & inline_id) {
        ids = std::span<const int>(&s.value, 1);
        return true;
      }
      const Entry& e = entries_[static_cast<std::size_t>(s.value)];
      if (piece.size() > 8 && std::memcmp(e.data + 8, piece.data() + 8, piece.size() - 8) != 0) continue;
      ids = std::span<const int>(ids_.data() + e.first, e.count);
      return true;
    }
    return false;
  }

  /// Remembers the ids of `piece` (not already cached; ignored when too long).
  void insert(std::string_view piece, std::span<const int> ids) { insert(piece, piece_key(piece), ids); }
  /// The same with the piece's key already computed (piece_key(piece)).
  void insert(std::string_view piece, const PieceKey& pk, std::span<const int> ids) {
    if (piece.size() >= max_piece || piece.empty()) return;
    if (2 * (used_ + 1) > slots_.size()) grow();
    const Key k = key(pk);
    Slot s{k.prefix, 0, static_cast<std::uint16_t>(piece.size()), k.tag};
    if (piece.size() <= 8 && ids.size() == 1) {
      s.size |= inline_id;
      s.value = ids[0];
    } else {
      s.value = static_cast<int>(entries_.size());
      entries_.push_back({piece.data(), static_cast<std::uint32_t>(ids_.size()), static_cast<std::uint32_t>(ids.size())});
      ids_.insert(ids_.end(), ids.begin(), ids.end());
    }
    place(s, k.hash);
    ++used_;
  }

  void clear() {
    slots_.clear();
    entries_.clear();
    ids_.clear();
    used_ = 0;
  }

 private:
  struct Slot {
    std::uint64_t prefix = 0;  // the piece's first (up to) eight bytes, zero-padded
    int value = 0;             // the id (inline_id) or the index of the piece's Entry
    std::uint16_t size = 0;    // the piece's length (0: empty slot) | inline_id
    std::uint16_t tag = 0;     // hash bits the slot index does not use
  };
  static_assert(sizeof(Slot) == 16);
  static constexpr std::uint16_t inline_id = 0x8000, size_bits = 0x7FFF;

  struct Entry {
    const char* data;  // the piece where it first occurred in the text
    std::uint32_t first, count;  // its ids in ids_
  };

  struct Key {
    std::uint64_t prefix, hash;
    std::uint16_t tag;
  };

  static Key key(const PieceKey& k) { return {k.prefix, k.hash, static_cast<std::uint16_t>(k.hash >> 48)}; }

  [[nodiscard]] std::size_t mask() const { return slots_.size() - 1; }

  void place(const Slot& s, std::uint64_t hash) {
    std::size_t i = hash & mask();
    while (slots_[i].size != 0) i = (i + 1) & mask();
    slots_[i] = s;
  }

  // A slot does not keep the full hash that picks its index: it is recomputed from
  // the prefix (an inline piece) or the piece's text.
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : 2 * old.size(), Slot{});
    for (const Slot& s : old) {
      if (s.size == 0) continue;
      const std::size_t n = s.size & size_bits;
      const char* data = (s.size & inline_id) ? nullptr : entries_[static_cast<std::size_t>(s.value)].data;
      place(s, piece_hash(s.prefix, n, data));
    }
  }

  std::vector<Slot> slots_;
  std::vector<Entry> entries_;
  std::vector<int> ids_;  // the ids of pieces of several tokens, back to back
  std::size_t used_ = 0;
};

}  // namespace lowbit::text
