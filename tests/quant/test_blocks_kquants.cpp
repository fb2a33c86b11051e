// lowbit's k-quants (q2_k..q6_k) against llama.cpp's prebuilt ggml (fixtures from
// scripts/fixtures/gen_ggml_fixtures.py): quantize bytes with and without an
// importance vector, dequantize bits, and the grid/codes split reproducing them.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/io/safetensors.hpp"
#include "lowbit/quant/blocks/kquants.hpp"
#include "block_decode_checks.hpp"
#include "../support/compare.hpp"

using namespace lowbit;
using lowbit::test::same_bits;
using namespace lowbit::blocks;

namespace {

struct KQuantOps {
  BlockType type;
  void (*quantize)(const float*, std::uint8_t*, Index, const float*);
  void (*dequantize)(const std::uint8_t*, float*, Index);
  void (*grid)(const std::uint8_t*, Index, SubBlockGrid*);
  void (*codes)(const std::uint8_t*, std::uint8_t*, Index);
  void (*set_codes)(std::uint8_t*, const std::uint8_t*, Index);
};

const KQuantOps kquant_ops[] = {
    {BlockType::q2_k, quantize_row_q2_k, dequantize_row_q2_k, grid_row_q2_k, codes_row_q2_k, set_codes_row_q2_k},
    {BlockType::q3_k, quantize_row_q3_k, dequantize_row_q3_k, grid_row_q3_k, codes_row_q3_k, set_codes_row_q3_k},
    {BlockType::q4_k, quantize_row_q4_k, dequantize_row_q4_k, grid_row_q4_k, codes_row_q4_k, set_codes_row_q4_k},
    {BlockType::q5_k, quantize_row_q5_k, dequantize_row_q5_k, grid_row_q5_k, codes_row_q5_k, set_codes_row_q5_k},
    {BlockType::q6_k, quantize_row_q6_k, dequantize_row_q6_k, grid_row_q6_k, codes_row_q6_k, set_codes_row_q6_k},
};

io::SafetensorsFile open_fixture(BlockType t) {
  return io::SafetensorsFile::open(std::string(LOWBIT_FIXTURE_DIR) + "/ggml/" + info(t).name + ".safetensors");
}


/// The fixture's rows of one type, and the checks shared by both quantized tensors.
struct Rows {
  io::SafetensorsFile file;
  std::vector<float> input, importance;
  Index rows = 0, n = 0;
  std::size_t row_bytes = 0;

  explicit Rows(BlockType t) : file(open_fixture(t)) {
    input = file.to_float("input");
    importance = file.to_float("importance");
    rows = file.info("input").shape.at(0);
    n = file.info("input").shape.at(1);
    row_bytes = blocks::row_bytes(t, n);
    REQUIRE(file.bytes("quantized").size() == row_bytes * static_cast<std::size_t>(rows));
  }
  [[nodiscard]] const std::uint8_t* expected(const std::string& tensor, Index r) const {
    return file.bytes(tensor).data() + row_bytes * static_cast<std::size_t>(r);
  }
  [[nodiscard]] const float* row(Index r) const { return input.data() + n * r; }
};

}  // namespace

TEST_CASE("k-quants: quantize_row matches ggml_quantize_chunk byte for byte, with and without importance") {
  for (const KQuantOps& op : kquant_ops) {
    const Rows f(op.type);
    std::vector<std::uint8_t> got(f.row_bytes);
    for (Index r = 0; r < f.rows; ++r) {
      INFO(info(op.type).name, " row ", r);
      op.quantize(f.row(r), got.data(), f.n, nullptr);
      CHECK(std::memcmp(got.data(), f.expected("quantized", r), f.row_bytes) == 0);
      op.quantize(f.row(r), got.data(), f.n, f.importance.data());
      CHECK(std::memcmp(got.data(), f.expected("quantized_importance", r), f.row_bytes) == 0);
      if (f.file.contains("quantized_importance_ones")) {
        const std::vector<float> ones(static_cast<std::size_t>(f.n), 1.0f);
        op.quantize(f.row(r), got.data(), f.n, ones.data());
        CHECK(std::memcmp(got.data(), f.expected("quantized_importance_ones", r), f.row_bytes) == 0);
      }
    }
  }
}

TEST_CASE("k-quants: dequantize_row equals ggml's to_float bit for bit") {
  for (const KQuantOps& op : kquant_ops) {
    const Rows f(op.type);
    for (const char* which : {"", "_importance"}) {
      const std::vector<float> expect = f.file.to_float(std::string("dequantized") + which);
      std::vector<float> got(static_cast<std::size_t>(f.n));
      for (Index r = 0; r < f.rows; ++r) {
        INFO(info(op.type).name, which, " row ", r);
        op.dequantize(f.expected(std::string("quantized") + which, r), got.data(), f.n);
        CHECK(same_bits(got.data(), expect.data() + f.n * r, f.n));
      }
    }
  }
}

TEST_CASE("k-quants: scale * levels[code] - min reproduces dequantize; set_codes_row(codes_row) round-trips") {
  for (const KQuantOps& op : kquant_ops) {
    const Rows f(op.type);
    const std::span<const float> lv = levels(op.type);
    const Index sub = info(op.type).sub_block;
    for (const char* which : {"quantized", "quantized_importance"}) {
      for (Index r = 0; r < f.rows; ++r) {
        INFO(info(op.type).name, " ", which, " row ", r);
        const std::uint8_t* q = f.expected(which, r);
        std::vector<float> deq(static_cast<std::size_t>(f.n)), via_grid(deq.size());
        std::vector<SubBlockGrid> g(static_cast<std::size_t>(f.n / sub));
        std::vector<std::uint8_t> codes(deq.size());
        op.dequantize(q, deq.data(), f.n);
        op.grid(q, f.n, g.data());
        op.codes(q, codes.data(), f.n);
        bool in_range = true;
        for (Index i = 0; i < f.n; ++i) {
          in_range = in_range && codes[static_cast<std::size_t>(i)] < lv.size();
          const SubBlockGrid& gi = g[static_cast<std::size_t>(i / sub)];
          via_grid[static_cast<std::size_t>(i)] =
              gi.scale * lv[codes[static_cast<std::size_t>(i)] % lv.size()] - gi.min;
        }
        CHECK(in_range);
        CHECK(same_bits(via_grid.data(), deq.data(), f.n));

        // Rewriting the same codes into a scrambled copy restores the row exactly.
        std::vector<std::uint8_t> row(q, q + f.row_bytes);
        std::vector<std::uint8_t> scrambled(codes.size());
        for (std::size_t i = 0; i < codes.size(); ++i)
          scrambled[i] = static_cast<std::uint8_t>((codes[i] + 1 + i % 3) % lv.size());
        op.set_codes(row.data(), scrambled.data(), f.n);
        std::vector<std::uint8_t> back(codes.size());
        op.codes(row.data(), back.data(), f.n);
        CHECK(back == scrambled);
        std::vector<SubBlockGrid> g2(g.size());
        op.grid(row.data(), f.n, g2.data());
        CHECK(std::memcmp(g2.data(), g.data(), g.size() * sizeof(SubBlockGrid)) == 0);
        op.set_codes(row.data(), codes.data(), f.n);
        CHECK(std::memcmp(row.data(), q, f.row_bytes) == 0);
      }
    }
  }
}

TEST_CASE("k-quants: rows that are not whole super-blocks are refused") {
  std::vector<float> x(300, 0.0f);
  std::vector<std::uint8_t> out(1000);
  CHECK_THROWS_AS(quantize_row_q4_k(x.data(), out.data(), 300, nullptr), Error);
  CHECK_THROWS_AS(dequantize_row_q6_k(out.data(), x.data(), 128), Error);
}

TEST_CASE("k-quants: the xsimd decoders equal their scalar references, on any bytes") {
  using Pair = test::DecoderPair;
  const Pair pairs[] = {{BlockType::q2_k, dequantize_row_q2_k, dequantize_row_q2_k_scalar},
                        {BlockType::q3_k, dequantize_row_q3_k, dequantize_row_q3_k_scalar},
                        {BlockType::q4_k, dequantize_row_q4_k, dequantize_row_q4_k_scalar},
                        {BlockType::q5_k, dequantize_row_q5_k, dequantize_row_q5_k_scalar},
                        {BlockType::q6_k, dequantize_row_q6_k, dequantize_row_q6_k_scalar}};
  std::mt19937 rng(7);
  for (const Pair& p : pairs) {
    const Rows f(p.type);
    std::vector<const std::uint8_t*> rows;
    for (Index r = 0; r < f.rows; ++r)
      for (const char* tensor : {"quantized", "quantized_importance"}) rows.push_back(f.expected(tensor, r));
    test::check_decoders_agree(p, rows, f.n, rng);
  }
}

TEST_CASE("k-quants: set_codes_row refuses a code outside levels(t) and leaves the row unchanged") {
  for (const KQuantOps& op : kquant_ops) {
    const Rows f(op.type);
    std::vector<std::uint8_t> row(f.expected("quantized", 0), f.expected("quantized", 0) + f.row_bytes);
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(f.n), 0);
    codes.back() = static_cast<std::uint8_t>(levels(op.type).size());
    INFO(info(op.type).name);
    CHECK_THROWS_AS(op.set_codes(row.data(), codes.data(), f.n), Error);
    CHECK(std::memcmp(row.data(), f.expected("quantized", 0), f.row_bytes) == 0);
  }
}
