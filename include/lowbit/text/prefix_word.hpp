// A short byte string's first (up to) eight bytes as one 64-bit word, zero-padded.
// The tokenizers' hash tables keep it in their slots (piece_cache.hpp, token_index.hpp)
// so that a lookup of a piece of at most eight bytes — most words, most tokens — is
// decided by the slot alone, without reading the bytes somewhere else (a second cache
// miss). Overlapping loads instead of a byte loop: pieces are mostly 2-8 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lowbit::text {

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

}  // namespace lowbit::text
