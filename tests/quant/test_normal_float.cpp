// NF4 (QLoRA's NormalFloat) against bitsandbytes' blockwise semantics (fixtures from
// scripts/fixtures/gen_nf4_fixtures.py): absmax scales, codes in bitsandbytes' nibble
// order, ties on the decision tree's thresholds, decode bit for bit; the xsimd paths
// against their scalar references; the typed façade, the grammar, the file format,
// and GPTQ onto the NF4 grid.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <unistd.h>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/gptq/gptq.hpp"
#include "lowbit/io/quantized_export.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/quant.hpp"
#include "../support/compare.hpp"

using namespace lowbit;
using lowbit::test::same_bits;

namespace {


const io::SafetensorsFile& fixture() {
  static const io::SafetensorsFile f =
      io::SafetensorsFile::open(std::string(LOWBIT_FIXTURE_DIR) + "/quant/nf4.safetensors");
  return f;
}

std::vector<std::string> cases() {
  std::vector<std::string> c;
  for (const auto& [key, value] : fixture().metadata())
    if (key.ends_with(".blocksize")) c.push_back(key.substr(0, key.size() - 10));
  return c;
}

}  // namespace

TEST_CASE("nf4: scales, codes and decode equal bitsandbytes' blockwise NF4 bit for bit") {
  const auto& f = fixture();
  const auto names = cases();
  REQUIRE(names.size() == 4);
  for (const auto& c : names) {
    CAPTURE(c);
    const std::vector<float> x = f.to_float(c + ".x");
    const Index rows = f.info(c + ".x").shape.at(0), cols = f.info(c + ".x").shape.at(1);
    const ConstMatrixView w(x.data(), rows, cols);
    const QuantSpec spec = QuantSpec::parse("nf4:g" + f.metadata().at(c + ".blocksize"));
    const SpecQuantizer q(spec);

    const QuantizedTensor t = q.quantize(w, c);
    CHECK(same_bits(t.params.scales, f.to_float(c + ".absmax")));
    // bitsandbytes' nibbles: stored code = signed code + 8, first value high.
    const auto packed = f.bytes(c + ".packed");
    REQUIRE(packed.size() * 2 == t.codes.size());
    Index wrong = 0;
    for (std::size_t i = 0; i < packed.size(); ++i) {
      const int hi = t.codes[2 * i] + 8, lo = t.codes[2 * i + 1] + 8;
      wrong += (hi << 4 | lo) != packed[i] ? 1 : 0;
    }
    CHECK(wrong == 0);

    const std::vector<float> expect = f.to_float(c + ".y");
    std::vector<float> y(x.size()), decoded(x.size()), applied(x.size());
    q.fake_quantize(w, MatrixView(y.data(), rows, cols), c);
    CHECK(same_bits(y, expect));
    t.dequantize(MatrixView(decoded.data(), rows, cols));
    CHECK(same_bits(decoded, expect));
    t.params.apply(w, MatrixView(applied.data(), rows, cols));
    CHECK(same_bits(applied, expect));
  }
}

TEST_CASE("nf4: the midpoints are ordered and every tie takes the lower level") {
  for (std::size_t k = 0; k < nf4::thresholds.size(); ++k) {
    CAPTURE(k);
    CHECK(nf4::levels[k] < nf4::thresholds[k]);
    CHECK(nf4::thresholds[k] < nf4::levels[k + 1]);
    CHECK(nf4::code(nf4::thresholds[k]) == static_cast<int>(k));
    CHECK(nf4::code(std::nextafter(nf4::thresholds[k], 2.0f)) == static_cast<int>(k) + 1);
  }
  CHECK(nf4::code(0.0f) == nf4::zero_code);
  CHECK(nf4::levels[nf4::zero_code] == 0.0f);
  CHECK(nf4::code(std::numeric_limits<float>::quiet_NaN()) == 0);  // as bitsandbytes' tree
}

TEST_CASE("nf4: the xsimd kernels equal their scalar references bit for bit") {
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 1.0f);
  const Index count = 1000 + 7;  // a tail the vector loop leaves to the scalar one
  std::vector<float> x(static_cast<std::size_t>(count)), scale(x.size()), inv(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = i % 3 == 0 ? nf4::thresholds[i % 15] : n(rng);  // ties, exactly
    scale[i] = i % 3 == 0 ? 1.0f : std::exp(n(rng));
    inv[i] = nf4::inverse(scale[i]);
  }
  std::vector<float> a(x.size()), b(x.size());
  nf4::fake_quantize(x.data(), a.data(), count, 1.0f);
  nf4::fake_quantize_scalar(x.data(), b.data(), count, 1.0f);
  CHECK(same_bits(a, b));
  nf4::fake_quantize(x.data(), a.data(), count, 0.37f);
  nf4::fake_quantize_scalar(x.data(), b.data(), count, 0.37f);
  CHECK(same_bits(a, b));
  nf4::fake_quantize_each(x.data(), a.data(), count, scale.data(), inv.data());
  nf4::fake_quantize_each_scalar(x.data(), b.data(), count, scale.data(), inv.data());
  CHECK(same_bits(a, b));

  // A row of groups from an unaligned start (scalar head, vectors straddling groups),
  // cached and streamed, against one scalar call per group.
  for (const Index group : {Index{16}, Index{64}, Index{100}, Index{7}})
    for (const auto store : {kernels::Store::cached, kernels::Store::streaming}) {
      CAPTURE(group);
      const Index off = 3, n = count - off;
      std::vector<GridStep> steps;
      for (Index c0 = 0; c0 < n; c0 += group) steps.push_back(GridStep::make(scale[static_cast<std::size_t>(c0)], Division::reciprocal));
      std::vector<float> ya(x.size(), 0.0f), yb(x.size(), 0.0f);
      nf4::fake_quantize_groups(x.data() + off, ya.data() + off, n, group, steps.data(), store);
      kernels::streaming_fence();
      for (Index c0 = 0, k = 0; c0 < n; c0 += group, ++k)
        nf4::fake_quantize_scalar(x.data() + off + c0, yb.data() + off + c0, std::min(group, n - c0),
                                  steps[static_cast<std::size_t>(k)].scale);
      CHECK(same_bits(ya, yb));
    }

  std::vector<std::int8_t> q(x.size());
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<std::int8_t>(static_cast<int>(i * 7 % 16) - 8);
  nf4::dequantize_simd(q.data(), a.data(), count, 0.37f);
  nf4::dequantize_scalar(q.data(), b.data(), count, 0.37f);
  CHECK(same_bits(a, b));
}

TEST_CASE("nf4: grammar, bits per weight, the typed façade and a clear error for wrong options") {
  for (const char* s : {"nf4", "nf4:g64", "nf4:channel", "nf4:g128:f16", "nf4:g64:bf16"})
    CHECK(QuantSpec::parse(s).str() == s);
  const QuantSpec g64 = QuantSpec::parse("nf4:g64");
  CHECK(g64.is_nf4());
  CHECK(g64.bits_per_weight(16, 256) == doctest::Approx(4.5));
  CHECK(QuantSpec::parse("nf4:absmax").str() == "nf4");
  CHECK_THROWS_WITH_AS((void)QuantSpec::parse("nf4:asym", "--scheme"),
                       doctest::Contains("'asym' does not apply to nf4"), Error);
  CHECK_THROWS_WITH_AS((void)QuantSpec::parse("nf4:g64:mse"), doctest::Contains("absmax"), Error);
  CHECK_THROWS_AS((void)g64.with_bits(3), Error);

  std::vector<float> x(8 * 128);
  std::mt19937 rng(2);
  std::normal_distribution<float> n(0.0f, 0.05f);
  for (auto& v : x) v = n(rng);
  const ConstMatrixView w(x.data(), 8, 128);
  std::vector<float> a(x.size()), b(x.size());
  Quantizer<NormalFloat4, PerGroup<64>>().fake_quantize(w, MatrixView(a.data(), 8, 128));
  SpecQuantizer(g64).fake_quantize(w, MatrixView(b.data(), 8, 128));
  CHECK(same_bits(a, b));
  CHECK(Quantizer<NormalFloat4, PerGroup<64>>().spec() == g64);
}

TEST_CASE("nf4: lowbit's quantized file stores and reads NF4 codes") {
  std::vector<float> x(6 * 128);
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.0f, 0.1f);
  for (auto& v : x) v = n(rng);
  const ConstMatrixView w(x.data(), 6, 128);
  const QuantizedTensor t = SpecQuantizer(QuantSpec::parse("nf4:g64")).quantize(w);
  io::SafetensorsWriter sw;
  io::add_quantized(sw, "layer.weight", pack(t), "rtn");
  const auto path = std::filesystem::temp_directory_path() / ("lowbit_nf4_" + std::to_string(::getpid()) + ".safetensors");
  sw.write(path);
  const auto back = io::read_quantized(io::SafetensorsFile::open(path), "layer.weight");
  std::filesystem::remove(path);
  CHECK(std::string(back.packed.params.format.name) == "nf4");
  const QuantizedTensor u = unpack(back.packed);
  CHECK(u.codes == t.codes);
  std::vector<float> a(x.size()), b(x.size());
  t.dequantize(MatrixView(a.data(), 6, 128));
  u.dequantize(MatrixView(b.data(), 6, 128));
  CHECK(same_bits(a, b));
}

TEST_CASE("nf4: GPTQ onto the NF4 grid decodes to its Q and beats round-to-nearest") {
  const Index rows = 16, cols = 256;
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 1.0f);
  SolveResult::RowMajorMatrix wm(rows, cols);
  for (Index i = 0; i < wm.size(); ++i) wm.data()[i] = 0.02f * n(rng);
  ::Eigen::MatrixXf xs(4 * cols, cols);
  for (Index t = 0; t < xs.rows(); ++t) {
    const float shared = n(rng);
    for (Index c = 0; c < cols; ++c) xs(t, c) = n(rng) + 0.6f * shared;
  }
  Hessian h;
  h.matrix = (2.0f / static_cast<float>(xs.rows())) * (xs.transpose() * xs);
  const ConstMatrixView w(wm.data(), rows, cols);
  for (const bool act_order : {false, true}) {
    CAPTURE(act_order);
    GptqOptions o;
    o.act_order = act_order;
    o.static_groups = act_order;  // act-order with static groups: codes from the unnatural group index
    const SolveResult res = SpecGptq<>(QuantSpec::parse("nf4:g64"), o).quantize(w, h, "layer");
    REQUIRE(res.info() == ::Eigen::Success);
    // Q is on the grid: its codes and scales decode to it exactly.
    std::vector<float> decoded(static_cast<std::size_t>(rows * cols));
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c) {
        const auto k = static_cast<std::size_t>(r * res.params.layout.groups_per_row() +
                                                res.group_index[static_cast<std::size_t>(c)]);
        decoded[static_cast<std::size_t>(r * cols + c)] =
            nf4::levels[static_cast<std::size_t>(res.codes[static_cast<std::size_t>(r * cols + c)] + 8)] *
            res.params.scales[k];
      }
    CHECK(std::memcmp(decoded.data(), res.weights.data(), decoded.size() * sizeof(float)) == 0);
    REQUIRE(res.before.has_value());
    REQUIRE(res.after.has_value());
    CHECK(res.after->objective < res.before->objective);
  }
}
