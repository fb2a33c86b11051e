// llama.cpp's (ggml's) block formats: the one table of their names, ids and sizes.
// Every parser, printer, reader and writer of a block type goes through this table.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit::blocks {

/// The ggml block types lowbit encodes and decodes bit for bit.
enum class BlockType : std::uint8_t { q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, tq2_0, iq4_nl, mxfp4 };

/// One row of the table. A block holds `block_elems` consecutive weights of a row in
/// `block_bytes` bytes; inside it every `sub_block` weights share one effective
/// scale (and minimum), which is the grid GPTQ rounds onto.
struct BlockTypeInfo {
  BlockType type;
  const char* name;        ///< llama.cpp's lower-case name, as in `llama-quantize --help`
  int ggml_type;           ///< enum ggml_type value in GGUF files
  Index block_elems;       ///< weights per block (QK)
  Index block_bytes;       ///< bytes per block (sizeof(block_*))
  Index sub_block;         ///< weights per effective scale
  bool uses_importance;    ///< whether llama.cpp's quantizer reads an importance matrix
  const char* code_set;    ///< how a weight decodes, for docs and messages
};

inline constexpr std::array<BlockTypeInfo, 13> block_types{{
    {BlockType::q4_0, "q4_0", 2, 32, 18, 32, true, "d·(q-8), q in 0..15, f16 d"},
    {BlockType::q4_1, "q4_1", 3, 32, 20, 32, true, "d·q + m, q in 0..15, f16 d and m"},
    {BlockType::q5_0, "q5_0", 6, 32, 22, 32, true, "d·(q-16), q in 0..31, f16 d"},
    {BlockType::q5_1, "q5_1", 7, 32, 24, 32, true, "d·q + m, q in 0..31, f16 d and m"},
    {BlockType::q8_0, "q8_0", 8, 32, 34, 32, false, "d·q, q in -128..127, f16 d"},
    {BlockType::q2_k, "q2_k", 10, 256, 84, 16, true, "d·s·q - dmin·m, q in 0..3, 4-bit s and m per 16, f16 d and dmin"},
    {BlockType::q3_k, "q3_k", 11, 256, 110, 16, true, "d·(s-32)·(q-4), q in 0..7, 6-bit s per 16, f16 d"},
    {BlockType::q4_k, "q4_k", 12, 256, 144, 32, true, "d·s·q - dmin·m, q in 0..15, 6-bit s and m per 32, f16 d and dmin"},
    {BlockType::q5_k, "q5_k", 13, 256, 176, 32, true, "d·s·q - dmin·m, q in 0..31, 6-bit s and m per 32, f16 d and dmin"},
    {BlockType::q6_k, "q6_k", 14, 256, 210, 16, true, "d·s·(q-32), q in 0..63, int8 s per 16, f16 d"},
    {BlockType::tq2_0, "tq2_0", 35, 256, 66, 256, false, "d·(q-1), q in 0..2 (ternary), f16 d"},
    {BlockType::iq4_nl, "iq4_nl", 20, 32, 18, 32, true, "d·T[q], T a fixed 16-value non-uniform table, f16 d"},
    {BlockType::mxfp4, "mxfp4", 39, 32, 17, 32, false, "2^e·E2M1[q], q in 0..15 (FP4), e8m0 shared exponent"},
}};

inline const BlockTypeInfo& info(BlockType t) { return block_types[static_cast<std::size_t>(t)]; }

/// The block type named `name` (llama.cpp's spelling, case-insensitive), if any.
inline std::optional<BlockType> find_block_type(std::string_view name) {
  for (const BlockTypeInfo& b : block_types) {
    std::string_view n = b.name;
    if (n.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < n.size() && same; ++i) {
      const char c = name[i] >= 'A' && name[i] <= 'Z' ? static_cast<char>(name[i] - 'A' + 'a') : name[i];
      same = c == n[i];
    }
    if (same) return b.type;
  }
  return std::nullopt;
}

/// The block type whose GGUF id is `ggml_type`, if lowbit knows it.
inline std::optional<BlockType> block_type_of_ggml(int ggml_type) {
  for (const BlockTypeInfo& b : block_types)
    if (b.ggml_type == ggml_type) return b.type;
  return std::nullopt;
}

/// "q4_0, q4_1, ...": the valid names, for error messages.
inline std::string block_type_names() {
  std::string s;
  for (const BlockTypeInfo& b : block_types) {
    if (!s.empty()) s += ", ";
    s += b.name;
  }
  return s;
}

/// Bytes of one row of n weights; an Error naming `tensor` when n is not a whole
/// number of blocks.
inline std::size_t row_bytes(BlockType t, Index n, std::string_view tensor = "row") {
  const BlockTypeInfo& b = info(t);
  lowbit::detail::check(n > 0 && n % b.block_elems == 0, "tensor '", tensor, "': a row of ", n, " weights is not a whole number of ",
                b.name, " blocks of ", b.block_elems);
  return static_cast<std::size_t>(n / b.block_elems) * static_cast<std::size_t>(b.block_bytes);
}

/// Bits per weight, scales included.
inline double bits_per_weight(BlockType t) {
  const BlockTypeInfo& b = info(t);
  return 8.0 * static_cast<double>(b.block_bytes) / static_cast<double>(b.block_elems);
}

}  // namespace lowbit::blocks
