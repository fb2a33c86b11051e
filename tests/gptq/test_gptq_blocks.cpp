// GPTQ onto llama.cpp's block formats: the scales come from llama.cpp's quantizer
// (with diag(H) as its importance matrix), GPTQ's error feedback chooses the codes,
// and the encoded rows it returns decode, bit for bit as llama.cpp decodes them, to
// the Q the solver reports — with a lower layer error than round-to-nearest.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/gptq/gptq.hpp"
#include "lowbit/gptq/hessian.hpp"
#include "lowbit/quant/blocks/codec.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"

using namespace lowbit;

namespace {

struct Layer {
  SolveResult::RowMajorMatrix w;
  Hessian h;
};

/// Weights with per-row magnitudes and activations with correlated, unequal
/// features: the regime where error feedback pays (and where imatrix matters).
Layer make_layer(Index rows, Index cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Layer l;
  l.w.resize(rows, cols);
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < cols; ++c) l.w(r, c) = 0.02f * n(rng) * (1.0f + 0.1f * static_cast<float>(r % 5));
  const Index tokens = 4 * cols;
  ::Eigen::MatrixXf x(tokens, cols);
  std::vector<float> feature_scale(static_cast<std::size_t>(cols));
  for (auto& s : feature_scale) s = std::exp(0.7f * n(rng));
  for (Index t = 0; t < tokens; ++t) {
    const float shared = n(rng);
    for (Index c = 0; c < cols; ++c) x(t, c) = feature_scale[static_cast<std::size_t>(c)] * (n(rng) + 0.5f * shared);
  }
  l.h.matrix = (2.0f / static_cast<float>(tokens)) * (x.transpose() * x);
  return l;
}

double objective(const Layer& l, const SolveResult::RowMajorMatrix& q) {
  return layer_objective(ConstMatrixView(l.w.data(), l.w.rows(), l.w.cols()),
                         ConstMatrixView(q.data(), q.rows(), q.cols()), l.h);
}

}  // namespace

TEST_CASE("gptq blocks: every block type's result decodes bit for bit to Q, and beats llama.cpp's RTN") {
  const Index rows = 24, cols = 512;
  const Layer l = make_layer(rows, cols, 11);
  const ConstMatrixView w(l.w.data(), rows, cols);
  std::vector<float> diag(static_cast<std::size_t>(cols));
  for (Index c = 0; c < cols; ++c) diag[static_cast<std::size_t>(c)] = l.h.matrix(c, c);
  for (const auto& b : blocks::block_types) {
    CAPTURE(b.name);
    const QuantSpec spec = QuantSpec::parse(b.name);
    for (const bool act_order : {false, true}) {
      CAPTURE(act_order);
      GptqOptions o;
      o.act_order = act_order;
      const SolveResult res = SpecGptq<>(spec, o).quantize(w, l.h, "layer");
      REQUIRE(res.info() == ::Eigen::Success);
      REQUIRE(res.block_data.size() == blocks::row_bytes(b.type, cols) * static_cast<std::size_t>(rows));
      CHECK(res.codes.empty());
      // llama.cpp's decoder gives exactly the solver's Q
      SolveResult::RowMajorMatrix decoded(rows, cols);
      blocks::dequantize(b.type, res.block_data.data(), MatrixView(decoded.data(), rows, cols));
      CHECK(std::memcmp(decoded.data(), res.weights.data(), sizeof(float) * static_cast<std::size_t>(rows * cols)) ==
            0);
      // round-to-nearest by llama.cpp's own quantizer, with and without the imatrix
      SpecQuantizer rtn(spec);
      SolveResult::RowMajorMatrix plain(rows, cols), weighted(rows, cols);
      (void)rtn.fake_quantize(w, MatrixView(plain.data(), rows, cols));
      rtn.set_importance(diag);
      (void)rtn.fake_quantize(w, MatrixView(weighted.data(), rows, cols));
      const double e_gptq = objective(l, res.weights), e_plain = objective(l, plain), e_imat = objective(l, weighted);
      const std::string line = std::string(b.name) + (act_order ? " act-order" : "") + ": layer error GPTQ " +
                               std::to_string(e_gptq) + ", RTN " + std::to_string(e_plain) + ", RTN+imatrix " +
                               std::to_string(e_imat);
      MESSAGE(line);
      CHECK(e_gptq < e_imat);
      CHECK(e_gptq < e_plain);
    }
  }
}

TEST_CASE("gptq blocks: a row that is not a whole number of blocks is an error naming the layer") {
  const Layer l = make_layer(4, 96, 3);
  CHECK_THROWS_WITH_AS((void)SpecGptq<>(QuantSpec::parse("q4_k")).quantize(
                           ConstMatrixView(l.w.data(), 4, 96), l.h, "blk.0.ffn_down"),
                       "tensor 'blk.0.ffn_down': a row of 96 weights is not a whole number of q4_k blocks of 256",
                       Error);
}

TEST_CASE("spec quantizer: block formats fake-quantize through llama.cpp's codec; integer calls refuse them") {
  const Layer l = make_layer(4, 256, 5);
  const ConstMatrixView w(l.w.data(), 4, 256);
  const SpecQuantizer q(QuantSpec::parse("q4_k"));
  std::vector<float> out(4 * 256), ref(4 * 256);
  (void)q.fake_quantize(w, MatrixView(out.data(), 4, 256));
  const auto bytes = blocks::quantize(blocks::BlockType::q4_k, w, "w", nullptr);
  blocks::dequantize(blocks::BlockType::q4_k, bytes.data(), MatrixView(ref.data(), 4, 256));
  CHECK(out == ref);
  CHECK(q.encode(w) == bytes);
  CHECK_THROWS_WITH_AS((void)q.params(w, "w"), doctest::Contains("q4_k keeps its scales in its blocks"), Error);
  CHECK_THROWS_WITH_AS((void)SpecQuantizer(QuantSpec::parse("int4")).encode(w, "w"),
                       doctest::Contains("int4 is not a block format"), Error);
}
