// QuantSpec: the grammar parses and prints every scheme back identically, names the
// offending part of a bad one, and the typed Quantizer<...> façade gives the same
// bits as the run-time SpecQuantizer of the spec it stands for.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"

using namespace lowbit;

namespace {

std::vector<float> weights(Index rows, Index cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.02f);
  std::vector<float> w(static_cast<std::size_t>(rows * cols));
  for (auto& x : w) x = n(rng);
  w[3] = 0.4f;  // an outlier, so searches clip differently from abs-max
  return w;
}

std::vector<std::string> canonical_specs() {
  std::vector<std::string> out;
  for (const char* base : {"int2", "int3", "int4", "int8"})
    for (const char* gran : {"", ":channel", ":g32", ":g128"})
      for (const char* codes : {"", ":full", ":gptq", ":asym"})
        for (const char* store : {"", ":f16", ":bf16"})
          for (const char* search : {"", ":hist", ":hist-true", ":mse", ":weighted"})
            out.push_back(std::string(base) + gran + codes + store + search);
  for (const auto& b : blocks::block_types) out.emplace_back(b.name);
  return out;
}

std::string parse_error(std::string_view text) {
  try {
    (void)QuantSpec::parse(text, "--scheme");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

template <class Q>
void check_same_bits(const Q& typed, const std::string& spec_text, Index rows, Index cols) {
  CAPTURE(spec_text);
  const QuantSpec spec = QuantSpec::parse(spec_text);
  CHECK(typed.spec() == spec);
  const SpecQuantizer runtime(spec);
  const std::vector<float> w = weights(rows, cols, 7);
  std::vector<float> a(w.size()), b(w.size());
  const QuantParams pa = typed.fake_quantize(ConstMatrixView(w.data(), rows, cols), MatrixView(a.data(), rows, cols));
  const QuantParams pb =
      runtime.fake_quantize(ConstMatrixView(w.data(), rows, cols), MatrixView(b.data(), rows, cols));
  CHECK(pa.scales == pb.scales);
  CHECK(pa.zeros == pb.zeros);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("spec: every canonical scheme prints back as it was written") {
  for (const auto& text : canonical_specs()) {
    CAPTURE(text);
    const QuantSpec s = QuantSpec::parse(text);
    CHECK(s.str() == text);
    CHECK(QuantSpec::parse(s.str()) == s);
  }
}

TEST_CASE("spec: options in any order parse to the canonical form; llama.cpp names are case-insensitive") {
  CHECK(QuantSpec::parse("int4:asym:g128").str() == "int4:g128:asym");
  CHECK(QuantSpec::parse("int4:hist:f16:channel").str() == "int4:channel:f16:hist");
  CHECK(QuantSpec::parse("int4:f16:g32:asym").str() == "int4:g32:asym:f16");
  CHECK(QuantSpec::parse("int4:narrow:tensor:f32:absmax").str() == "int4");
  CHECK(QuantSpec::parse("Q4_K").str() == "q4_k");
  const QuantSpec q = QuantSpec::parse("int4:g128:asym");
  CHECK(q.codes == CodeSet::asym);
  CHECK(q.bits == 4);
  CHECK(q.granularity == ScaleLayout::Kind::group);
  CHECK(q.group_size == 128);
  CHECK(q.format().asymmetric());
  CHECK(QuantSpec::parse("mxfp4").is_block());
  CHECK(QuantSpec::parse("mxfp4").block == blocks::BlockType::mxfp4);
}

TEST_CASE("spec: a malformed scheme names the offending part and the valid choices") {
  CHECK(parse_error("int9") == "--scheme 'int9': 'int9' has 9 bits; integer grids have 2 to 8");
  CHECK(parse_error("float4").find("'float4' is not a scheme: expected int2..int8, nf4 or a llama.cpp type (q4_0,") !=
        std::string::npos);
  CHECK(parse_error("int4:g0").find("'g0' is not an option: code sets narrow, full, gptq, asym; granularity "
                                    "tensor, channel, g<N>; scales f32, f16, bf16; searches absmax, hist") !=
        std::string::npos);
  CHECK(parse_error("int4:sym").find("'sym' is not an option") != std::string::npos);
  CHECK(parse_error("int4:g32:channel").find("'channel' repeats an option already given") != std::string::npos);
  CHECK(parse_error("int4:asym:gptq").find("'gptq' repeats") != std::string::npos);
  CHECK(parse_error("q4_k:g64").find("'g64' cannot modify a llama.cpp block format") != std::string::npos);
  CHECK(parse_error("").find("'' is not a scheme") != std::string::npos);
  CHECK(parse_error("int4:").find("'' is not an option") != std::string::npos);
}

TEST_CASE("spec: layouts, shapes that do not fit, and bits per weight") {
  const QuantSpec g = QuantSpec::parse("int4:g64");
  CHECK(g.layout(8, 200).num_scales() == 8 * 4);  // three full groups and a tail
  CHECK_THROWS_WITH_AS((void)g.layout(8, 32, "blocks.0.w2"),
                       "tensor 'blocks.0.w2': int4:g64: a group of 64 does not fit a row of 32 columns", Error);
  const QuantSpec k = QuantSpec::parse("q4_k");
  CHECK_FALSE(k.fits(172));
  CHECK(k.fits(512));
  CHECK_THROWS_WITH_AS((void)k.layout(4, 172, "layers.0.feed_forward.w2"),
                       "tensor 'layers.0.feed_forward.w2': a row of 172 weights is not a whole number of q4_k "
                       "blocks of 256",
                       Error);
  CHECK(k.bits_per_weight(1, 256) == doctest::Approx(4.5));
  CHECK(QuantSpec::parse("q8_0").bits_per_weight(1, 32) == doctest::Approx(8.5));
  // int4 with an f16 scale per 32: 4 + 16/32 bits, as q4_0
  CHECK(QuantSpec::parse("int4:g32:f16").bits_per_weight(16, 256) == doctest::Approx(4.5));
  // asymmetric adds a 4-bit zero per group
  CHECK(QuantSpec::parse("int4:g32:asym:f16").bits_per_weight(16, 256) == doctest::Approx(4.625));
  CHECK(QuantSpec::parse("int4:g32").with_bits(3).str() == "int3:g32");
  CHECK_THROWS_AS((void)QuantSpec::parse("int4").with_bits(9), Error);
}

TEST_CASE("spec: shapes a scheme does not fit fall back as llama.cpp's quantizer does") {
  const auto fb = [](const char* spec, Index cols) {
    const auto f = QuantSpec::parse(spec).fallback_for(cols);
    return f ? f->str() : std::string("f16");
  };
  CHECK(fb("q4_k", 512) == "q4_k");
  CHECK(fb("q4_k", 96) == "q5_0");
  CHECK(fb("q5_k", 96) == "q5_1");
  CHECK(fb("q6_k", 96) == "q8_0");
  CHECK(fb("q2_k", 96) == "q4_0");
  CHECK(fb("q3_k", 96) == "q4_0");
  CHECK(fb("tq2_0", 96) == "q4_0");
  CHECK(fb("iq4_nl", 96) == "iq4_nl");
  CHECK(fb("q4_k", 172) == "f16");  // stories260K's w2: no block fits, llama.cpp keeps F16
  CHECK(fb("q8_0", 172) == "f16");
  CHECK(fb("int4:g256:asym", 172) == "int4:channel:asym");
  CHECK(fb("int4:g128", 172) == "int4:g128");  // a tail group is fine
}

TEST_CASE("spec: the typed façade gives the same bits as the run-time quantizer of its spec") {
  check_same_bits(Quantizer<Int<4>, PerTensor, AbsMax>(), "int4", 16, 96);
  check_same_bits(Quantizer<Int<3>, PerChannel, HistogramMse<>>(), "int3:channel:hist", 16, 96);
  check_same_bits(Quantizer<IntFull<8>, PerGroup<32>, MseShrink>(), "int8:full:g32:mse", 16, 96);
  check_same_bits(Quantizer<GptqGrid<2>, PerGroup<>, HistogramMse<HistogramMode::TrueGrid>>(PerGroup<>{48}),
                  "int2:gptq:g48:hist-true", 16, 96);
  check_same_bits(Quantizer<IntAsym<4>, PerGroup<32>, AbsMax>(), "int4:g32:asym", 16, 96);
  check_same_bits(Quantizer<IntAsym<3>, PerChannel, MseShrink>(), "int3:channel:asym:mse", 16, 96);
  check_same_bits(Quantizer<Int<4>, PerChannel, WeightedShrink>(), "int4:channel:weighted", 16, 96);
}

TEST_CASE("spec: f16 and bf16 storage round each scale to the stored type and quantize with it") {
  const Index rows = 8, cols = 64;
  const std::vector<float> w = weights(rows, cols, 3);
  const ConstMatrixView wv(w.data(), rows, cols);
  const QuantParams f32 = SpecQuantizer(QuantSpec::parse("int4:g32")).params(wv);
  const QuantParams f16 = SpecQuantizer(QuantSpec::parse("int4:g32:f16")).params(wv);
  const QuantParams bf16 = SpecQuantizer(QuantSpec::parse("int4:g32:bf16")).params(wv);
  bool some_differ = false;
  for (std::size_t k = 0; k < f32.scales.size(); ++k) {
    CHECK(f16.scales[k] == io::f16_to_f32(io::f32_to_f16(f32.scales[k])));
    CHECK(bf16.scales[k] == io::bf16_to_f32(io::f32_to_bf16(f32.scales[k])));
    some_differ = some_differ || f16.scales[k] != f32.scales[k];
  }
  CHECK(some_differ);
  // fake-quantized values are code × stored scale exactly
  std::vector<float> out(w.size());
  const QuantParams p = SpecQuantizer(QuantSpec::parse("int4:g32:f16")).fake_quantize(wv, MatrixView(out.data(), rows, cols));
  const auto codes = p.codes(wv);
  for (Index i = 0; i < rows * cols; ++i)
    CHECK(out[static_cast<std::size_t>(i)] ==
          static_cast<float>(codes[static_cast<std::size_t>(i)]) * p.scale_at(i / cols, i % cols));
  // a scale below float16's range is kept at its smallest subnormal, not 0 (the
  // gptq grid has no float32-epsilon floor on its scale, unlike PyTorch's rule)
  std::vector<float> tiny(64, 1e-12f);
  const QuantParams t =
      SpecQuantizer(QuantSpec::parse("int4:gptq:f16")).params(ConstMatrixView(tiny.data(), 1, 64));
  CHECK(t.scales[0] == std::ldexp(1.0f, -24));
}

TEST_CASE("spec: the asymmetric grid covers a one-sided range with all its codes") {
  // All-positive weights: a symmetric grid wastes its negative half, the asymmetric
  // one puts its zero point at code 0 and spends all 2^B levels on [0, max].
  std::vector<float> w(64);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * static_cast<float>(i);
  const ConstMatrixView wv(w.data(), 1, 64);
  const SpecQuantizer asym(QuantSpec::parse("int3:asym"));
  const QuantizedTensor t = asym.quantize(wv);
  REQUIRE(t.params.zeros.size() == 1);
  CHECK(t.params.zeros[0] == -4.0f);  // zero point 0, signed zero 0 - 2^(3-1)
  CHECK(t.params.scales[0] == doctest::Approx(0.63f / 7.0f));
  int lowest = 127, highest = -128;
  for (const auto c : t.codes) {
    lowest = std::min<int>(lowest, c);
    highest = std::max<int>(highest, c);
  }
  CHECK(lowest == -4);
  CHECK(highest == 3);
  std::vector<float> d(64), f(64);
  t.dequantize(MatrixView(d.data(), 1, 64));
  (void)asym.fake_quantize(wv, MatrixView(f.data(), 1, 64));
  CHECK(d == f);
  double err_asym = 0, err_sym = 0;
  std::vector<float> s(64);
  (void)SpecQuantizer(QuantSpec::parse("int3:gptq")).fake_quantize(wv, MatrixView(s.data(), 1, 64));
  for (std::size_t i = 0; i < w.size(); ++i) {
    err_asym += (f[i] - w[i]) * (f[i] - w[i]);
    err_sym += (s[i] - w[i]) * (s[i] - w[i]);
  }
  CHECK(err_asym < 0.5 * err_sym);
}

TEST_CASE("spec: the weighted search follows the importance of each column") {
  // Column 0 carries a large weight. With its importance high the search keeps it
  // (no clipping); with its importance negligible the search clips it, which plain
  // MSE does not do.
  const Index cols = 64;
  std::vector<float> w(static_cast<std::size_t>(cols));
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 0.01f);
  for (auto& x : w) x = n(rng);
  w[0] = 0.2f;
  const ConstMatrixView wv(w.data(), 1, cols);
  SpecQuantizer q(QuantSpec::parse("int3:channel:weighted"));
  const float plain = q.params(wv).scales[0];
  std::vector<float> imp(static_cast<std::size_t>(cols), 1e-3f);
  imp[0] = 1e3f;
  q.set_importance(imp);
  CHECK(q.params(wv).scales[0] == doctest::Approx(0.2f / 3.0f).epsilon(0.02));
  std::fill(imp.begin(), imp.end(), 1.0f);
  imp[0] = 1e-6f;
  const float clipped = q.params(wv).scales[0];
  CHECK(clipped < 0.5f * plain);
  std::vector<float> short_imp(10, 1.0f);
  q.set_importance(short_imp);
  CHECK_THROWS_WITH_AS((void)q.params(wv, "blk.0.attn_q"),
                       "tensor 'blk.0.attn_q': the importance has 10 entries for 64 columns", Error);
}
