// How the tokenizers' hash tables (piece_cache.hpp, token_index.hpp) key a piece of
// text: its first (up to) eight bytes as one word, which their slots keep so that a
// lookup of a piece of at most eight bytes — most words, most tokens — is decided by
// the slot alone, without reading the bytes elsewhere (a second cache miss); and one
// hash, the same for both tables, so an encoder computes it once per piece and can
// start loading the vocabulary's slot while it probes the piece cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace lowbit::text {

/// The first min(n, 8) bytes, zero-padded. Overlapping loads instead of a byte loop:
/// pieces are mostly 2-8 bytes.
inline std::uint64_t prefix_word(const char* p, std::size_t n) {
  const auto u8 = [&](std::size_t k) { return std::uint64_t{static_cast<unsigned char>(p[k])}; };
  std::uint64_t w = 0;
  if (n >= 8) {
    std::memcpy(&w, p, 8);
  } else if (n >= 4) {
    std::uint32_t a = 0, b = 0;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    w = std::uint64_t{a} | (std::uint64_t{b} << (8 * (n - 4)));  // the overlap ORs equal bytes
  } else if (n > 0) {
    w = u8(0) | (u8(n / 2) << (8 * (n / 2))) | (u8(n - 1) << (8 * (n - 1)));
  }
  return w;
}

/// A multiply-xorshift over the piece's eight-byte words and its length. A piece of at
/// most eight bytes hashes from its prefix word and length alone, so a table can
/// rehash such a slot without the text (`data` is read only past eight bytes).
inline std::uint64_t piece_hash(std::uint64_t prefix, std::size_t n, const char* data) {
  std::uint64_t h = (prefix ^ (n * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
  for (std::size_t i = 8; i < n; i += 8)
    h = ((h ^ (h >> 31)) ^ prefix_word(data + i, n - i < 8 ? n - i : 8)) * 0x94D049BB133111EBull;
  h ^= h >> 32;  // one more round, so that every byte reaches the low bits a slot index uses
  h *= 0xD6E8FEB86659FD93ull;
  return h ^ (h >> 32);
}

struct PieceKey {
  std::uint64_t prefix, hash;
};

inline PieceKey piece_key(std::string_view s) {
  const std::uint64_t prefix = prefix_word(s.data(), s.size());
  return {prefix, piece_hash(prefix, s.size(), s.data())};
}

}  // namespace lowbit::text
