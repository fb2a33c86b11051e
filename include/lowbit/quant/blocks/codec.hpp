// One entry point for every ggml block type: the per-row codec functions chosen by
// BlockType, and whole-tensor quantize/dequantize with input checks.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/blocks/block_type.hpp"
#include "lowbit/quant/blocks/grid.hpp"
#include "lowbit/quant/blocks/kquants.hpp"
#include "lowbit/quant/blocks/legacy.hpp"
#include "lowbit/quant/blocks/nonuniform.hpp"
#include "lowbit/quant/blocks/ternary.hpp"

namespace lowbit::blocks {

// Each dispatcher expands to a switch over all 13 types calling <op>_<type>.
#define LOWBIT_BLOCKS_DISPATCH(op, ...)                         \
  switch (t) {                                                  \
    case BlockType::q4_0: return op##_q4_0(__VA_ARGS__);        \
    case BlockType::q4_1: return op##_q4_1(__VA_ARGS__);        \
    case BlockType::q5_0: return op##_q5_0(__VA_ARGS__);        \
    case BlockType::q5_1: return op##_q5_1(__VA_ARGS__);        \
    case BlockType::q8_0: return op##_q8_0(__VA_ARGS__);        \
    case BlockType::q2_k: return op##_q2_k(__VA_ARGS__);        \
    case BlockType::q3_k: return op##_q3_k(__VA_ARGS__);        \
    case BlockType::q4_k: return op##_q4_k(__VA_ARGS__);        \
    case BlockType::q5_k: return op##_q5_k(__VA_ARGS__);        \
    case BlockType::q6_k: return op##_q6_k(__VA_ARGS__);        \
    case BlockType::tq2_0: return op##_tq2_0(__VA_ARGS__);      \
    case BlockType::iq4_nl: return op##_iq4_nl(__VA_ARGS__);    \
    case BlockType::mxfp4: return op##_mxfp4(__VA_ARGS__);      \
  }                                                             \
  lowbit::detail::fail("blocks: unknown block type ", static_cast<int>(t))

/// Encodes one row of n weights (n a whole number of blocks: see row_bytes) into
/// row_bytes(t, n) bytes at `out`, as ggml_quantize_chunk(t, x, out, 0, 1, n,
/// importance) does. `importance` (nullable) is llama.cpp's imatrix entry for these
/// n columns; types whose llama.cpp quantizer ignores it (info(t).uses_importance
/// false) ignore it too.
inline void quantize_row(BlockType t, const float* x, std::uint8_t* out, Index n, const float* importance) {
  LOWBIT_BLOCKS_DISPATCH(quantize_row, x, out, n, importance);
}

/// Decodes one row, bit for bit as ggml's to_float.
inline void dequantize_row(BlockType t, const std::uint8_t* in, float* y, Index n) {
  LOWBIT_BLOCKS_DISPATCH(dequantize_row, in, y, n);
}

/// One SubBlockGrid per info(t).sub_block weights of the row.
inline void grid_row(BlockType t, const std::uint8_t* in, Index n, SubBlockGrid* g) {
  LOWBIT_BLOCKS_DISPATCH(grid_row, in, n, g);
}

/// Each weight's code, an index into levels(t).
inline void codes_row(BlockType t, const std::uint8_t* in, std::uint8_t* codes, Index n) {
  LOWBIT_BLOCKS_DISPATCH(codes_row, in, codes, n);
}

/// Rewrites the codes of an encoded row, keeping its scales; an Error for a code
/// outside levels(t).
inline void set_codes_row(BlockType t, std::uint8_t* row, const std::uint8_t* codes, Index n) {
  LOWBIT_BLOCKS_DISPATCH(set_codes_row, row, codes, n);
}

#undef LOWBIT_BLOCKS_DISPATCH

/// Encodes a [rows, cols] tensor row by row (rows contiguous in the result). An
/// Error naming `name` when cols is not a whole number of blocks or a weight is not
/// finite (llama.cpp's quantizers have no meaning for inf/NaN). `importance`
/// (nullable) holds cols values, shared by every row as llama.cpp's imatrix is.
inline std::vector<std::uint8_t> quantize(BlockType t, ConstMatrixView w, std::string_view name,
                                          const float* importance) {
  const std::size_t bytes = row_bytes(t, w.cols, name);
  for (Index r = 0; r < w.rows; ++r)
    for (Index c = 0; c < w.cols; ++c)
      if (!std::isfinite(w(r, c)))
        lowbit::detail::fail("tensor '", name, "': weight [", r, ", ", c, "] is ", w(r, c), "; ", info(t).name,
                             " can only encode finite weights");
  if (importance)
    for (Index c = 0; c < w.cols; ++c)
      lowbit::detail::check(std::isfinite(importance[c]), "tensor '", name, "': importance of column ", c, " is ",
                            importance[c], "; it must be finite");
  std::vector<std::uint8_t> out(bytes * static_cast<std::size_t>(w.rows));
  for (Index r = 0; r < w.rows; ++r)
    quantize_row(t, w.row(r), out.data() + bytes * static_cast<std::size_t>(r), w.cols, importance);
  return out;
}

/// Decodes out.rows rows of out.cols weights from `in` (row_bytes(t, out.cols)
/// bytes each). An Error when out.cols is not a whole number of blocks.
inline void dequantize(BlockType t, const std::uint8_t* in, MatrixView out, std::string_view name = "tensor") {
  const std::size_t bytes = row_bytes(t, out.cols, name);
  for (Index r = 0; r < out.rows; ++r)
    dequantize_row(t, in + bytes * static_cast<std::size_t>(r), out.row(r), out.cols);
}

}  // namespace lowbit::blocks
