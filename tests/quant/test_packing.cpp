// Bit-packing: documented byte layout, round trips, and bad input.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "lowbit/lowbit.hpp"
#include "../support/random.hpp"

using namespace lowbit;

TEST_CASE("packing: the documented little-endian bit-stream layout") {
  // int4: u = q + 8; two codes a byte, the first in the low nibble.
  const std::vector<std::int8_t> q4 = {-8, 7, 0, -1, 3};
  std::vector<std::uint8_t> b4(static_cast<std::size_t>(packed_bytes(5, 4)));
  pack_codes(q4, 4, b4);
  CHECK(b4 == std::vector<std::uint8_t>{0xF0, 0x78, 0x0B});
  // int2: u = q + 2; four codes a byte.
  const std::vector<std::int8_t> q2 = {-1, 0, 1, -2, 1};
  std::vector<std::uint8_t> b2(2);
  pack_codes(q2, 2, b2);
  CHECK(b2 == std::vector<std::uint8_t>{0b00111001, 0b00000011});
  // int3: u = q + 4; 8 codes in 3 bytes: codes 0..7 → u = 4,5,6,7,0,1,2,3
  const std::vector<std::int8_t> q3 = {0, 1, 2, 3, -4, -3, -2, -1};
  std::vector<std::uint8_t> b3(3);
  pack_codes(q3, 3, b3);
  std::uint32_t stream = 0;
  for (int i = 0; i < 8; ++i) stream |= static_cast<std::uint32_t>(q3[static_cast<std::size_t>(i)] + 4) << (3 * i);
  CHECK(b3 == std::vector<std::uint8_t>{static_cast<std::uint8_t>(stream), static_cast<std::uint8_t>(stream >> 8),
                                        static_cast<std::uint8_t>(stream >> 16)});
  // int8: u = q + 128, one byte each
  const std::vector<std::int8_t> q8 = {-128, 127, 0};
  std::vector<std::uint8_t> b8(3);
  pack_codes(q8, 8, b8);
  CHECK(b8 == std::vector<std::uint8_t>{0x00, 0xFF, 0x80});
}

TEST_CASE("packing: round trip for every bit width and length") {
  std::mt19937 gen(5);
  for (int bits = 2; bits <= 8; ++bits) {
    std::uniform_int_distribution<int> d(-(1 << (bits - 1)), (1 << (bits - 1)) - 1);
    for (const std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{9}, std::size_t{1001}}) {
      std::vector<std::int8_t> q(n), back(n);
      for (auto& c : q) c = static_cast<std::int8_t>(d(gen));
      std::vector<std::uint8_t> bytes(static_cast<std::size_t>(packed_bytes(static_cast<Index>(n), bits)));
      pack_codes(q, bits, bytes);
      unpack_codes(bytes, bits, back);
      CHECK(q == back);
    }
  }
}

TEST_CASE("packing: a quantized matrix packs row by row and unpacks to the same codes") {
  const auto w = test::gaussian(7 * 13, 1.0f, 3);
  const ConstMatrixView view(w.data(), 7, 13);
  const auto t = Quantizer<Int<3>, PerChannel>{}.quantize(view);
  const PackedTensor p = pack(t);
  CHECK(p.row_bytes == 5);  // 13 · 3 bits = 39 bits
  CHECK(p.data.size() == 35u);
  CHECK(unpack(p).codes == t.codes);
}

TEST_CASE("packing: bad input is refused with a clear error") {
  const std::vector<std::int8_t> q = {0, 9};
  std::vector<std::uint8_t> b(1);
  CHECK_THROWS_WITH_AS(pack_codes(q, 4, b), doctest::Contains("index 1"), Error);
  std::vector<std::uint8_t> small(0);
  CHECK_THROWS_WITH_AS(pack_codes(std::vector<std::int8_t>{0, 1}, 4, small), doctest::Contains("need 1 bytes"),
                       Error);
  std::vector<std::int8_t> out(3);
  CHECK_THROWS_AS(unpack_codes(b, 4, out), Error);
  CHECK_THROWS_AS(pack_codes(q, 9, b), Error);
}
