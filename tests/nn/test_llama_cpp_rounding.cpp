// Activations rounded as llama.cpp's CPU kernels round them (nn/llama_cpp_rounding.hpp):
// which rounding each ggml type gets, q8_0's and q8_K's blocks from their definitions,
// and the forward hooks (no-ops for F32 weights, the classifier included). The
// agreement with llama.cpp itself is measured by the llama_cpp.judge test.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "lowbit/nn/llama_cpp_rounding.hpp"
#include "lowbit/nn/transformer.hpp"
#include "tiny_config.hpp"

using namespace lowbit;
using nn::ActivationRounding;

TEST_CASE("llama.cpp rounding: each ggml type's vec_dot input") {
  CHECK(nn::llama_cpp_activation_rounding(0) == ActivationRounding::none);   // f32
  CHECK(nn::llama_cpp_activation_rounding(1) == ActivationRounding::f16);
  CHECK(nn::llama_cpp_activation_rounding(30) == ActivationRounding::bf16);
  for (const std::uint32_t t : {2u, 3u, 6u, 7u, 8u, 20u, 39u})  // q4_0 q4_1 q5_0 q5_1 q8_0 iq4_nl mxfp4
    CHECK(nn::llama_cpp_activation_rounding(t) == ActivationRounding::q8_0);
  for (const std::uint32_t t : {10u, 11u, 12u, 13u, 14u, 35u})  // q2_k … q6_k, tq2_0
    CHECK(nn::llama_cpp_activation_rounding(t) == ActivationRounding::q8_k);
  CHECK_THROWS_WITH_AS(nn::llama_cpp_activation_rounding(99), doctest::Contains("ggml type 99"), Error);
}

TEST_CASE("llama.cpp rounding: q8_0 blocks are codes of at most 127 times an F16 scale") {
  std::vector<float> x(64);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * (i < 32 ? 3.0f : 0.01f);
  std::vector<float> y = x;
  nn::round_activations(ActivationRounding::q8_0, y, 64, "w");
  for (std::size_t b = 0; b < 2; ++b) {
    float amax = 0.0f;
    for (std::size_t i = 32 * b; i < 32 * b + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = io::f16_to_f32(io::f32_to_f16(amax / 127.0f));
    for (std::size_t i = 32 * b; i < 32 * b + 32; ++i) {
      CAPTURE(i);
      const float code = y[i] / d;
      CHECK(code == std::nearbyint(code));
      CHECK(std::fabs(code) <= 127.0f);
      CHECK(std::fabs(x[i] * (127.0f / amax) - code) <= 0.5f);  // the nearest code
      if (std::fabs(x[i]) == amax) CHECK(std::fabs(code) == 127.0f);
    }
  }
  std::vector<float> zero(32, 0.0f);
  nn::round_activations(ActivationRounding::q8_0, zero, 32, "w");
  for (const float v : zero) CHECK(v == 0.0f);
}

TEST_CASE("llama.cpp rounding: q8_K blocks take the signed largest value as -127 codes") {
  std::vector<float> x(256);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.11f * static_cast<float>(i)) * 0.5f;
  x[77] = -2.0f;  // the largest magnitude, negative: iscale = -127/max = 63.5 > 0, code -127
  x[78] = 2.0f;   // as large but not the first: code 127, within min(127, ·)
  std::vector<float> y = x;
  nn::round_activations(ActivationRounding::q8_k, y, 256, "w");
  const float iscale = -127.0f / -2.0f, d = 1.0f / iscale;
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(i);
    const float code = y[i] / d;
    CHECK(std::fabs(code - std::nearbyint(code)) < 1e-4f);
    CHECK(code <= 127.0f);
    CHECK(code >= -127.0f);
  }
  CHECK(y[77] == doctest::Approx(-2.0f));
  CHECK(y[78] == doctest::Approx(2.0f));
  CHECK_THROWS_WITH_AS(nn::round_activations(ActivationRounding::q8_k, y, 128, "blk.0.ffn_up.weight"),
                       doctest::Contains("'blk.0.ffn_up.weight' has rows of 128 values, not whole blocks of 256"),
                       Error);
}

TEST_CASE("llama.cpp rounding: hooks leave F32 weights' inputs alone and round the others") {
  nn::TransformerConfig c = test::tiny_config(nn::Architecture::llama);
  c.dim = 32;
  c.hidden = 64;
  nn::Transformer m(c, 7);
  const std::vector<int> ids{1, 5, 9, 2, 17, 3};
  const auto logits = [&](const nn::ForwardHooks& hooks) {
    autograd::Graph g;
    autograd::NoGradGuard ng;
    const auto t = m.forward(ids, 1, static_cast<Index>(ids.size()), hooks);
    return std::vector<float>(t.values().begin(), t.values().end());
  };
  std::map<std::string, std::uint32_t> f32, q8;
  for (const auto* p : m.parameters()) {
    f32[p->name()] = 0;
    q8[p->name()] = 8;
  }
  const auto plain = logits({});
  CHECK(logits(nn::llama_cpp_rounding_hooks(f32)) == plain);
  const auto rounded = logits(nn::llama_cpp_rounding_hooks(q8));
  REQUIRE(rounded.size() == plain.size());
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < plain.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(rounded[i] - plain[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(plain[i])));
  }
  CHECK(diff > 0.0);           // every linear and the classifier saw q8_0 inputs
  CHECK(diff < 0.05 * scale);  // … which are 8-bit close to the float ones
}
