// Bit-packing of integer codes for inference engines (docs/formats.md, "Packed layout").
//
// Stored code u = signed code + code_offset (= 2^(B-1)), an unsigned B-bit number.
// Codes are laid end to end in a little-endian bit stream: code i occupies stream
// bits [i·B, i·B + B), least significant bit first, and stream bit j is bit j % 8
// of byte j / 8. For B = 2, 4, 8 this puts 8/B codes in each byte, the first in the
// low bits; B = 3 packs 8 codes into 3 bytes, B = 6 four codes into 3 bytes. A
// matrix is packed row by row, each row starting on a byte boundary, the unused
// high bits of a row's last byte zero.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/quant_params.hpp"

namespace lowbit {

/// Bytes taken by n codes of `bits` bits (2..8). Written so that it cannot
/// overflow for any n ≥ 0: whole bytes of 8 codes first, then the remainder.
constexpr Index packed_bytes(Index n, int bits) { return n / 8 * bits + ((n % 8) * bits + 7) / 8; }

/// Packs signed codes (qmin…qmax of a format with `bits` bits) into out, which must
/// hold packed_bytes(codes.size(), bits) bytes.
inline void pack_codes(std::span<const std::int8_t> codes, int bits, std::span<std::uint8_t> out) {
  detail::check(bits >= 2 && bits <= 8, "pack_codes: bits must be 2..8, got ", bits);
  const auto n = static_cast<Index>(codes.size());
  detail::check(static_cast<Index>(out.size()) == packed_bytes(n, bits), "pack_codes: ", n, " codes of ",
                bits, " bits need ", packed_bytes(n, bits), " bytes, the buffer has ", out.size());
  const int offset = 1 << (bits - 1);
  std::uint64_t acc = 0;
  int filled = 0;
  std::size_t o = 0;
  for (Index i = 0; i < n; ++i) {
    const int u = codes[static_cast<std::size_t>(i)] + offset;
    detail::check(u >= 0 && u < (1 << bits), "pack_codes: code ", int(codes[static_cast<std::size_t>(i)]),
                  " at index ", i, " does not fit ", bits, " bits");
    acc |= static_cast<std::uint64_t>(u) << filled;
    filled += bits;
    while (filled >= 8) {
      out[o++] = static_cast<std::uint8_t>(acc & 0xFFu);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) out[o] = static_cast<std::uint8_t>(acc & 0xFFu);
}

/// Inverse of pack_codes: n = out.size() signed codes from packed bytes.
inline void unpack_codes(std::span<const std::uint8_t> in, int bits, std::span<std::int8_t> out) {
  detail::check(bits >= 2 && bits <= 8, "unpack_codes: bits must be 2..8, got ", bits);
  const auto n = static_cast<Index>(out.size());
  detail::check(static_cast<Index>(in.size()) == packed_bytes(n, bits), "unpack_codes: ", n,
                " codes of ", bits, " bits need ", packed_bytes(n, bits), " bytes, got ", in.size());
  const int offset = 1 << (bits - 1);
  const std::uint64_t mask = (1u << bits) - 1u;
  std::uint64_t acc = 0;
  int filled = 0;
  std::size_t byte = 0;
  for (Index i = 0; i < n; ++i) {
    while (filled < bits) {
      acc |= static_cast<std::uint64_t>(in[byte++]) << filled;
      filled += 8;
    }
    out[static_cast<std::size_t>(i)] = static_cast<std::int8_t>(static_cast<int>(acc & mask) - offset);
    acc >>= bits;
    filled -= bits;
  }
}

/// A quantized matrix in its packed form.
struct PackedTensor {
  QuantParams params;
  Index row_bytes = 0;            ///< packed_bytes(cols, bits)
  std::vector<std::uint8_t> data;  ///< rows × row_bytes
};

inline PackedTensor pack(const QuantizedTensor& t) {
  const int bits = t.params.format.bits;
  PackedTensor p{t.params, packed_bytes(t.cols(), bits), {}};
  p.data.resize(static_cast<std::size_t>(p.row_bytes * t.rows()));
  for (Index r = 0; r < t.rows(); ++r)
    pack_codes({t.codes.data() + r * t.cols(), static_cast<std::size_t>(t.cols())}, bits,
               {p.data.data() + r * p.row_bytes, static_cast<std::size_t>(p.row_bytes)});
  return p;
}

inline QuantizedTensor unpack(const PackedTensor& p) {
  const Index rows = p.params.layout.rows, cols = p.params.layout.cols;
  detail::check(static_cast<Index>(p.data.size()) == rows * p.row_bytes, "unpack: ", p.data.size(),
                " bytes for ", rows, " rows of ", p.row_bytes);
  QuantizedTensor t{p.params, std::vector<std::int8_t>(static_cast<std::size_t>(rows * cols))};
  for (Index r = 0; r < rows; ++r)
    unpack_codes({p.data.data() + r * p.row_bytes, static_cast<std::size_t>(p.row_bytes)},
                 p.params.format.bits, {t.codes.data() + r * cols, static_cast<std::size_t>(cols)});
  return t;
}

}  // namespace lowbit
