// lowbit's k-quants (q2_k..q6_k) against llama.cpp's prebuilt ggml (fixtures from
// scripts/fixtures/gen_ggml_fixtures.py): quantize bytes with and without an
// importance vector, dequantize bits, and the grid/codes split reproducing them.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
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

namespace {

/// Rows that exercise every branch of the affine search: Gaussian and heavy-tailed
/// weights, one-signed sub-blocks (the minimum clamped to 0, or the positive offset
/// refitted), constant and all-zero sub-blocks (the early return), exact ties on the
/// rounding grid, and magnitudes from 1e-30 to 1e15 (sums of squares stay finite).
std::vector<float> search_cases(Index super_blocks, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(256 * super_blocks));
  for (std::size_t s = 0; s < x.size(); s += 16) {  // a kind per 16 weights (q2_k's sub-block)
    const int kind = static_cast<int>(rng() % 9);
    const float scale = std::pow(10.0f, static_cast<float>(static_cast<int>(rng() % 46) - 30));
    for (std::size_t i = s; i < s + 16; ++i) {
      const float g = normal(rng);
      switch (kind) {
        case 0: x[i] = g; break;
        case 1: x[i] = g * g * g * scale; break;
        case 2: x[i] = uniform(rng) * scale; break;
        case 3: x[i] = -uniform(rng) * scale; break;
        case 4: x[i] = 0.0f; break;
        case 5: x[i] = -0.75f * scale; break;
        case 6: x[i] = 0.5f * static_cast<float>(static_cast<int>(rng() % 9) - 4); break;
        case 7: x[i] = 0.02f + 0.001f * uniform(rng); break;
        default: x[i] = (i % 16 == 3 ? 40.0f : 0.01f) * g; break;
      }
    }
  }
  return x;
}

}  // namespace

TEST_CASE("k-quants: the SIMD affine searches equal the scalar reference, bit for bit") {
  std::mt19937 rng(11);
  const blocks::impl::ref::AffineSearch searches[] = {
      {-1.f, 0.1f, 20, false}, {-0.5f, 0.1f, 15, false}, {-0.5f, 0.1f, 15, true}, {-0.9f, 0.05f, 36, false}, {0, 0, 0, false}};
  for (const auto& s : searches)
    for (const int count : {1, 7, 8, 16, 17, 40, 64}) {
      const std::vector<float> x = search_cases((32 * count + 255) / 256, rng);
      for (const auto rule : {blocks::impl::SearchWeights::rms_plus_abs, blocks::impl::SearchWeights::abs}) {
        std::vector<std::uint8_t> L(32 * count), L_ref(32 * count);
        std::vector<float> sc(count), m(count), sc_ref(count), m_ref(count);
        blocks::impl::affine_searches<32>(x.data(), count, 15, s, rule, L.data(), sc.data(), m.data());
        blocks::impl::affine_searches_ref<32>(x.data(), count, 15, s, rule, L_ref.data(), sc_ref.data(), m_ref.data());
        CHECK(L == L_ref);
        CHECK(same_bits(sc, sc_ref));
        CHECK(same_bits(m, m_ref));
      }
    }
}

TEST_CASE("k-quants: q2_k, q4_k and q5_k without importance write their scalar references' bytes") {
  using Quantize = void (*)(const float*, std::uint8_t*, Index, const float*);
  using Reference = void (*)(const float*, std::uint8_t*, Index);
  const std::tuple<BlockType, Quantize, Reference> pairs[] = {
      {BlockType::q2_k, quantize_row_q2_k, quantize_row_q2_k_scalar},
      {BlockType::q4_k, quantize_row_q4_k, quantize_row_q4_k_scalar},
      {BlockType::q5_k, quantize_row_q5_k, quantize_row_q5_k_scalar}};
  std::mt19937 rng(5);
  for (const auto& [type, quantize, reference] : pairs)
    for (const Index super_blocks : {1, 2, 3, 16, 17, 33}) {  // chunks of 16, lanes across super-blocks
      const std::vector<float> x = search_cases(super_blocks, rng);
      const Index n = 256 * super_blocks;
      std::vector<std::uint8_t> got(blocks::row_bytes(type, n)), want(got.size());
      quantize(x.data(), got.data(), n, nullptr);
      reference(x.data(), want.data(), n);
      CAPTURE(info(type).name);
      CAPTURE(super_blocks);
      CHECK(got == want);
    }
}
