// The grid a quantized ggml row defines: per sub-block one scale and one minimum,
// and per block type one table of levels, such that the weight with code q decodes
// to exactly `scale * levels(t)[q] - min` (same float bits as llama.cpp's to_float).
// GPTQ rounds onto this grid; export rewrites codes and keeps the scales.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "lowbit/quant/blocks/block_type.hpp"

namespace lowbit::blocks {

/// The effective scale and minimum of one sub-block (info(t).sub_block weights).
struct SubBlockGrid {
  float scale;
  float min;
};

namespace impl {

/// lo, lo+1, ..., lo+N-1 as floats: the integer grids of the uniform formats.
template <int Lo, std::size_t N>
inline constexpr std::array<float, N> integer_levels = [] {
  std::array<float, N> a{};
  for (std::size_t i = 0; i < N; ++i) a[i] = static_cast<float>(Lo + static_cast<int>(i));
  return a;
}();

/// iq4_nl's fixed non-uniform table (llama.cpp's kvalues_iq4nl), ascending.
inline constexpr std::array<float, 16> iq4_nl_levels{-127, -104, -83, -65, -49, -35, -22, -10,
                                                     1,    13,   25,  38,  53,  69,  89,  113};

/// mxfp4's E2M1 values doubled so they are integers (llama.cpp's kvalues_mxfp4);
/// the row's scale is then half the e8m0 power of two. Codes 8..15 are the negatives.
inline constexpr std::array<float, 16> mxfp4_levels{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

}  // namespace impl

/// The value of each code of `t`, indexed by the code (what codes_row writes).
inline std::span<const float> levels(BlockType t) {
  switch (t) {
    case BlockType::q4_0: return impl::integer_levels<-8, 16>;
    case BlockType::q4_1: return impl::integer_levels<0, 16>;
    case BlockType::q5_0: return impl::integer_levels<-16, 32>;
    case BlockType::q5_1: return impl::integer_levels<0, 32>;
    case BlockType::q8_0: return impl::integer_levels<-128, 256>;
    case BlockType::q2_k: return impl::integer_levels<0, 4>;
    case BlockType::q3_k: return impl::integer_levels<-4, 8>;
    case BlockType::q4_k: return impl::integer_levels<0, 16>;
    case BlockType::q5_k: return impl::integer_levels<0, 32>;
    case BlockType::q6_k: return impl::integer_levels<-32, 64>;
    case BlockType::tq2_0: return impl::integer_levels<-1, 4>;  // code 3 (+2) is never written by llama.cpp
    case BlockType::iq4_nl: return impl::iq4_nl_levels;
    case BlockType::mxfp4: return impl::mxfp4_levels;
  }
  lowbit::detail::fail("blocks::levels: unknown block type ", static_cast<int>(t));
}

namespace impl {

/// An Error unless every one of the n codes indexes one of levels(t): what every
/// set_codes_row_* checks before it writes a byte.
inline void check_codes(const std::uint8_t* codes, Index n, BlockType t) {
  const std::size_t count = levels(t).size();
  for (Index i = 0; i < n; ++i)
    if (codes[i] >= count)
      lowbit::detail::fail("set_codes_row: code ", static_cast<int>(codes[i]), " of weight ", i, " is not one of ",
                           info(t).name, "'s ", count, " levels");
}

}  // namespace impl

}  // namespace lowbit::blocks
