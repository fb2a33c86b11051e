// 64-bit FNV-1a: the fingerprints lowbit writes into its files (corpus splits,
// study runs). Not cryptographic: it tells "the same bytes" from "other bytes".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit {

inline constexpr std::uint64_t fnv1a64_offset_basis = 0xcbf29ce484222325ull;

/// FNV-1a over `bytes`, continuing from `h` (pass the result back in to hash pieces in turn).
[[nodiscard]] inline std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h = fnv1a64_offset_basis) {
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

/// The same over an object's bytes (a length, a span of ints or floats).
template <class T>
[[nodiscard]] std::uint64_t fnv1a64_of(const T* data, std::size_t count, std::uint64_t h) {
  return fnv1a64({reinterpret_cast<const char*>(data), count * sizeof(T)}, h);
}

/// 16 lower-case hex digits.
[[nodiscard]] inline std::string hex64(std::uint64_t h) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) s[static_cast<std::size_t>(i)] = digits[h & 15];
  return s;
}

}  // namespace lowbit
