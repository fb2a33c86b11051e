// Bit-for-bit comparison of float results (the scalar-reference-beside-SIMD checks).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lowbit/core/matrix_view.hpp"

namespace lowbit::test {

inline bool same_bits(float a, float b) { return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b); }

inline bool same_bits(const float* a, const float* b, Index n) {
  return std::memcmp(a, b, sizeof(float) * static_cast<std::size_t>(n)) == 0;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace lowbit::test
