// lowbit's q4_0, q4_1, q5_0, q5_1, q8_0, tq2_0, iq4_nl and mxfp4 against llama.cpp's
// prebuilt ggml (fixtures from scripts/fixtures/gen_ggml_fixtures.py): quantize bytes
// with and without an importance vector, dequantize bits, the grid/codes split
// reproducing the decode, and the codec's whole-tensor errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/io/safetensors.hpp"
#include "lowbit/quant/blocks/codec.hpp"
#include "block_decode_checks.hpp"
#include "../support/compare.hpp"

using namespace lowbit;
using lowbit::test::same_bits;
using namespace lowbit::blocks;

namespace {

struct Ops {
  void (*quantize)(const float*, std::uint8_t*, Index, const float*);
  void (*dequantize)(const std::uint8_t*, float*, Index);
  void (*grid)(const std::uint8_t*, Index, SubBlockGrid*);
  void (*codes)(const std::uint8_t*, std::uint8_t*, Index);
  void (*set_codes)(std::uint8_t*, const std::uint8_t*, Index);
};

#define LOWBIT_OPS(t) Ops{quantize_row_##t, dequantize_row_##t, grid_row_##t, codes_row_##t, set_codes_row_##t}

Ops ops_of(BlockType t) {
  switch (t) {
    case BlockType::q4_0: return LOWBIT_OPS(q4_0);
    case BlockType::q4_1: return LOWBIT_OPS(q4_1);
    case BlockType::q5_0: return LOWBIT_OPS(q5_0);
    case BlockType::q5_1: return LOWBIT_OPS(q5_1);
    case BlockType::q8_0: return LOWBIT_OPS(q8_0);
    case BlockType::tq2_0: return LOWBIT_OPS(tq2_0);
    case BlockType::iq4_nl: return LOWBIT_OPS(iq4_nl);
    case BlockType::mxfp4: return LOWBIT_OPS(mxfp4);
    default: break;
  }
  FAIL("not a type of this test");
  return {};
}


/// One fixture file: llama.cpp's rows, its importance vector and its outputs.
struct Fixture {
  BlockType type;
  io::SafetensorsFile file;
  std::vector<float> input, importance;
  std::vector<std::string> labels;
  Index rows = 0, n = 0;
  std::size_t row_bytes = 0;

  explicit Fixture(BlockType t)
      : type(t), file(io::SafetensorsFile::open(std::string(LOWBIT_FIXTURE_DIR) + "/ggml/" + info(t).name + ".safetensors")) {
    input = file.to_float("input");
    importance = file.to_float("importance");
    rows = file.info("input").shape.at(0);
    n = file.info("input").shape.at(1);
    row_bytes = blocks::row_bytes(t, n);
    REQUIRE(file.bytes("quantized").size() == row_bytes * static_cast<std::size_t>(rows));
    std::stringstream s(file.metadata().at("rows"));
    for (std::string l; std::getline(s, l, ',');) labels.push_back(l);
    REQUIRE(labels.size() == static_cast<std::size_t>(rows));
  }
  [[nodiscard]] const std::uint8_t* bytes(const std::string& tensor, Index r) const {
    return file.bytes(tensor).data() + row_bytes * static_cast<std::size_t>(r);
  }
  [[nodiscard]] const float* row(Index r) const { return input.data() + n * r; }
};

/// quantize_row (per type and through the codec) writes the fixture's bytes.
void check_quantize(BlockType t) {
  const Fixture f(t);
  const Ops ops = ops_of(t);
  const std::vector<float> ones(static_cast<std::size_t>(f.n), 1.0f);
  struct Variant {
    const char* tensor;
    const float* importance;
  };
  for (const Variant v : {Variant{"quantized", nullptr}, Variant{"quantized_importance", f.importance.data()},
                          Variant{"quantized_importance_ones", ones.data()}}) {
    if (!f.file.contains(v.tensor)) continue;
    for (Index r = 0; r < f.rows; ++r) {
      INFO(info(t).name, " ", v.tensor, " row ", r, " (", f.labels[static_cast<std::size_t>(r)], ")");
      std::vector<std::uint8_t> got(f.row_bytes, 0xA5);
      ops.quantize(f.row(r), got.data(), f.n, v.importance);
      CHECK(std::memcmp(got.data(), f.bytes(v.tensor, r), f.row_bytes) == 0);
      std::vector<std::uint8_t> via_codec(f.row_bytes, 0x5A);
      quantize_row(t, f.row(r), via_codec.data(), f.n, v.importance);
      CHECK(via_codec == got);
    }
  }
}

/// dequantize_row returns ggml's to_float bits for both stored encodings.
void check_dequantize(BlockType t) {
  const Fixture f(t);
  const Ops ops = ops_of(t);
  for (const char* suffix : {"", "_importance"}) {
    const std::vector<float> expect = f.file.to_float(std::string("dequantized") + suffix);
    const std::string q = std::string("quantized") + suffix;
    for (Index r = 0; r < f.rows; ++r) {
      INFO(info(t).name, " ", q, " row ", r, " (", f.labels[static_cast<std::size_t>(r)], ")");
      std::vector<float> y(static_cast<std::size_t>(f.n));
      ops.dequantize(f.bytes(q, r), y.data(), f.n);
      CHECK(same_bits(y.data(), expect.data() + f.n * r, f.n));
      std::vector<float> via_codec(static_cast<std::size_t>(f.n));
      dequantize_row(t, f.bytes(q, r), via_codec.data(), f.n);
      CHECK(same_bits(via_codec.data(), y.data(), f.n));
    }
  }
}

/// scale·levels[code] - min reproduces every stored weight's decode bit for bit,
/// set_codes_row(codes_row(x)) gives x back, and new codes decode on the same grid.
void check_grid(BlockType t) {
  const Fixture f(t);
  const Ops ops = ops_of(t);
  const std::span<const float> lv = levels(t);
  const Index sub = info(t).sub_block;
  for (const char* q : {"quantized", "quantized_importance"}) {
    for (Index r = 0; r < f.rows; ++r) {
      INFO(info(t).name, " ", q, " row ", r, " (", f.labels[static_cast<std::size_t>(r)], ")");
      const std::uint8_t* row = f.bytes(q, r);
      std::vector<SubBlockGrid> g(static_cast<std::size_t>(f.n / sub));
      std::vector<std::uint8_t> codes(static_cast<std::size_t>(f.n));
      ops.grid(row, f.n, g.data());
      ops.codes(row, codes.data(), f.n);
      std::vector<float> y(static_cast<std::size_t>(f.n)), from_grid(static_cast<std::size_t>(f.n));
      ops.dequantize(row, y.data(), f.n);
      bool in_range = true;
      for (Index i = 0; i < f.n; ++i) {
        in_range = in_range && codes[static_cast<std::size_t>(i)] < lv.size();
        const SubBlockGrid& s = g[static_cast<std::size_t>(i / sub)];
        from_grid[static_cast<std::size_t>(i)] = s.scale * lv[codes[static_cast<std::size_t>(i)]] - s.min;
      }
      REQUIRE(in_range);
      CHECK(same_bits(from_grid.data(), y.data(), f.n));

      std::vector<std::uint8_t> rewritten(row, row + f.row_bytes);
      ops.set_codes(rewritten.data(), codes.data(), f.n);
      CHECK(std::memcmp(rewritten.data(), row, f.row_bytes) == 0);

      // Other codes (a rotation through the levels) on the same scales: the grid is
      // unchanged and the decode is again scale·level - min.
      for (Index i = 0; i < f.n; ++i)
        codes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>((codes[static_cast<std::size_t>(i)] + 1 + i) % lv.size());
      set_codes_row(t, rewritten.data(), codes.data(), f.n);
      std::vector<SubBlockGrid> g2(g.size());
      grid_row(t, rewritten.data(), f.n, g2.data());
      CHECK(std::memcmp(g2.data(), g.data(), sizeof(SubBlockGrid) * g.size()) == 0);
      std::vector<std::uint8_t> back(codes.size());
      codes_row(t, rewritten.data(), back.data(), f.n);
      CHECK(back == codes);
      dequantize_row(t, rewritten.data(), y.data(), f.n);
      for (Index i = 0; i < f.n; ++i) {
        const SubBlockGrid& s = g[static_cast<std::size_t>(i / sub)];
        from_grid[static_cast<std::size_t>(i)] = s.scale * lv[codes[static_cast<std::size_t>(i)]] - s.min;
      }
      CHECK(same_bits(from_grid.data(), y.data(), f.n));
    }
  }
}

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

#define LOWBIT_BLOCK_TESTS(t)                                                              \
  TEST_CASE("blocks: " #t " matches llama.cpp's reference quantizer byte for byte") {     \
    check_quantize(BlockType::t);                                                          \
  }                                                                                        \
  TEST_CASE("blocks: " #t " decodes bit for bit as ggml's to_float") { check_dequantize(BlockType::t); } \
  TEST_CASE("blocks: " #t " grid and codes reproduce the decode and round-trip") { check_grid(BlockType::t); }

LOWBIT_BLOCK_TESTS(q4_0)
LOWBIT_BLOCK_TESTS(q4_1)
LOWBIT_BLOCK_TESTS(q5_0)
LOWBIT_BLOCK_TESTS(q5_1)
LOWBIT_BLOCK_TESTS(q8_0)
LOWBIT_BLOCK_TESTS(tq2_0)
LOWBIT_BLOCK_TESTS(iq4_nl)
LOWBIT_BLOCK_TESTS(mxfp4)

TEST_CASE("blocks: the xsimd tq2_0/iq4_nl/mxfp4 decoders equal their scalar references, on any bytes") {
  using Pair = test::DecoderPair;
  const Pair pairs[] = {{BlockType::tq2_0, dequantize_row_tq2_0, dequantize_row_tq2_0_scalar},
                        {BlockType::iq4_nl, dequantize_row_iq4_nl, dequantize_row_iq4_nl_scalar},
                        {BlockType::mxfp4, dequantize_row_mxfp4, dequantize_row_mxfp4_scalar}};
  std::mt19937 rng(11);
  for (const Pair& p : pairs) {
    const Fixture f(p.type);
    std::vector<const std::uint8_t*> rows;
    for (const char* tensor : {"quantized", "quantized_importance"})
      if (f.file.contains(tensor))
        for (Index r = 0; r < f.rows; ++r) rows.push_back(f.bytes(tensor, r));
    test::check_decoders_agree(p, rows, f.n, rng);
  }
}

TEST_CASE("blocks: iq4_nl's branch-free table search equals its bisection, midpoints included") {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> u(-140.0f, 140.0f);
  Index differ = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    float x[32], a[32], b[32];
    for (int j = 0; j < 32; ++j) {
      // every third value exactly on a midpoint (id = 1), or one ulp either side of it
      const float m = impl::iq4_nl_midpoints[static_cast<std::size_t>((trial + j) % 15)];
      x[j] = j % 3 == 0 ? m : j % 3 == 1 ? std::nextafter(m, (trial & 1) ? 200.0f : -200.0f) : u(rng);
    }
    const float id = trial % 4 == 0 ? 1.0f : std::exp(0.3f * static_cast<float>(trial % 7) - 1.0f);
    impl::iq4_nl_values(x, id, a);
    impl::iq4_nl_values_scalar(x, id, b);
    differ += std::memcmp(a, b, sizeof a) != 0 ? 1 : 0;
  }
  CHECK(differ == 0);
}

TEST_CASE("blocks: whole-tensor quantize and dequantize equal the row functions") {
  for (const BlockType t : {BlockType::q4_0, BlockType::q5_1, BlockType::tq2_0, BlockType::iq4_nl}) {
    const Fixture f(t);
    const ConstMatrixView w(f.input.data(), f.rows, f.n);
    const std::vector<std::uint8_t> plain = quantize(t, w, "blk.0.ffn_up.weight", nullptr);
    const std::vector<std::uint8_t> weighted = quantize(t, w, "blk.0.ffn_up.weight", f.importance.data());
    const auto stored = f.file.bytes("quantized");
    const auto stored_w = f.file.bytes("quantized_importance");
    CHECK(std::equal(plain.begin(), plain.end(), stored.begin(), stored.end()));
    CHECK(std::equal(weighted.begin(), weighted.end(), stored_w.begin(), stored_w.end()));
    std::vector<float> y(f.input.size());
    dequantize(t, plain.data(), MatrixView(y.data(), f.rows, f.n));
    const std::vector<float> expect = f.file.to_float("dequantized");
    CHECK(same_bits(y.data(), expect.data(), static_cast<Index>(y.size())));
  }
}

TEST_CASE("blocks: a row that is not a whole number of blocks is an error naming tensor, type and block") {
  std::vector<float> x(3 * 48, 0.5f);
  const std::string e = error_of([&] { (void)quantize(BlockType::q4_0, ConstMatrixView(x.data(), 3, 48), "attn_q", nullptr); });
  CHECK(contains(e, "attn_q"));
  CHECK(contains(e, "q4_0"));
  CHECK(contains(e, "48"));
  CHECK(contains(e, "32"));
  const std::string e2 = error_of([&] { (void)quantize(BlockType::tq2_0, ConstMatrixView(x.data(), 1, 128), "tok_embd", nullptr); });
  CHECK(contains(e2, "tok_embd"));
  CHECK(contains(e2, "tq2_0"));
  CHECK(contains(e2, "256"));
  std::vector<float> y(64);
  const std::string e3 = error_of([&] { dequantize(BlockType::mxfp4, nullptr, MatrixView(y.data(), 1, 40), "output"); });
  CHECK(contains(e3, "output"));
  CHECK(contains(e3, "mxfp4"));
}

TEST_CASE("blocks: a non-finite weight is an error naming the tensor and the element") {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    std::vector<float> x(2 * 64, 0.25f);
    x[64 + 37] = bad;
    const std::string e = error_of([&] { (void)quantize(BlockType::iq4_nl, ConstMatrixView(x.data(), 2, 64), "ffn_down", nullptr); });
    CHECK(contains(e, "ffn_down"));
    CHECK(contains(e, "[1, 37]"));
  }
  std::vector<float> x(32, 1.0f), imp(32, 1.0f);
  imp[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK(contains(error_of([&] { (void)quantize(BlockType::q4_1, ConstMatrixView(x.data(), 1, 32), "w", imp.data()); }),
                 "column 5"));
}

TEST_CASE("blocks: set_codes_row refuses a code outside the type's levels") {
  std::vector<float> x(32, 1.0f);
  std::vector<std::uint8_t> row(18);
  quantize_row_q4_0(x.data(), row.data(), 32, nullptr);
  std::vector<std::uint8_t> codes(32, 3);
  codes[9] = 16;
  const std::string e = error_of([&] { set_codes_row(BlockType::q4_0, row.data(), codes.data(), 32); });
  CHECK(contains(e, "16"));
  CHECK(contains(e, "weight 9"));
  CHECK(contains(e, "q4_0"));
  std::vector<std::uint8_t> tq(66);
  std::vector<std::uint8_t> tcodes(256, 4);
  CHECK(contains(error_of([&] { set_codes_row(BlockType::tq2_0, tq.data(), tcodes.data(), 256); }), "tq2_0"));
}

TEST_CASE("blocks: the level tables have one entry per code") {
  CHECK(levels(BlockType::q4_0).size() == 16);
  CHECK(levels(BlockType::q4_0).front() == -8.0f);
  CHECK(levels(BlockType::q4_1).size() == 16);
  CHECK(levels(BlockType::q5_0).size() == 32);
  CHECK(levels(BlockType::q5_0).front() == -16.0f);
  CHECK(levels(BlockType::q5_1).size() == 32);
  CHECK(levels(BlockType::q8_0).size() == 256);
  CHECK(levels(BlockType::q8_0).front() == -128.0f);
  CHECK(levels(BlockType::tq2_0).size() == 4);
  CHECK(levels(BlockType::iq4_nl).size() == 16);
  CHECK(levels(BlockType::iq4_nl)[8] == 1.0f);
  CHECK(levels(BlockType::mxfp4).size() == 16);
  CHECK(levels(BlockType::mxfp4)[15] == -12.0f);
}
