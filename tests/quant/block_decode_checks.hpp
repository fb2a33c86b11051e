// The check every block type's xsimd decoder shares with its scalar reference:
// the two agree bit for bit on llama.cpp's own rows and on rows of random bytes.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/quant/blocks/codec.hpp"

namespace lowbit::test {

/// A block type's vector decoder and its scalar reference.
struct DecoderPair {
  blocks::BlockType type;
  void (*fast)(const std::uint8_t*, float*, Index);
  void (*scalar)(const std::uint8_t*, float*, Index);
};

/// fast ≡ scalar on `rows` (encoded rows of n weights each), then on 300 rows of
/// random bytes: every code (an unwritten one included, as tq2_0's code 3), every
/// scale code, and f16 / e8m0 scales that are subnormal, inf or NaN. Compared as bits.
inline void check_decoders_agree(const DecoderPair& p, const std::vector<const std::uint8_t*>& rows, Index n,
                                 std::mt19937& rng) {
  const auto bytes = sizeof(float) * static_cast<std::size_t>(n);
  std::vector<float> a(static_cast<std::size_t>(n)), b(a.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    INFO(blocks::info(p.type).name, " given row ", r);
    p.fast(rows[r], a.data(), n);
    p.scalar(rows[r], b.data(), n);
    CHECK(std::memcmp(a.data(), b.data(), bytes) == 0);
  }
  std::vector<std::uint8_t> row(blocks::row_bytes(p.type, n));
  for (int trial = 0; trial < 300; ++trial) {
    for (auto& byte : row) byte = static_cast<std::uint8_t>(rng() & 0xFF);
    p.fast(row.data(), a.data(), n);
    p.scalar(row.data(), b.data(), n);
    INFO(blocks::info(p.type).name, " random trial ", trial);
    CHECK(std::memcmp(a.data(), b.data(), bytes) == 0);
  }
}

}  // namespace lowbit::test
