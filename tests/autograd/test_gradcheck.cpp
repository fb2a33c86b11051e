// Every op's gradient against central finite differences in fp64.
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "gradcheck.hpp"

using namespace lowbit::autograd;
using lowbit::test::DTensor;
using lowbit::test::gradcheck;
using lowbit::test::random_input;
using Vec = std::vector<DTensor>;

TEST_CASE("gradcheck: add and mul with trailing broadcast, scale, mean") {
  gradcheck("add", {random_input({2, 3, 4}, 1), random_input({4}, 2)},
            [](const Vec& x) { return add(x[0], x[1]); });
  gradcheck("add same shape", {random_input({3, 4}, 3), random_input({3, 4}, 4)},
            [](const Vec& x) { return add(x[0], x[1]); });
  gradcheck("mul", {random_input({2, 3, 4}, 5), random_input({3, 4}, 6)},
            [](const Vec& x) { return mul(x[0], x[1]); });
  gradcheck("scale", {random_input({5}, 7)}, [](const Vec& x) { return scale(x[0], 0.37); });
  gradcheck("mean", {random_input({2, 5}, 8)}, [](const Vec& x) { return mean(x[0]); });
}

TEST_CASE("gradcheck: matmul with every transpose, batched and shared right operand") {
  for (Trans ta : {Trans::no, Trans::yes})
    for (Trans tb : {Trans::no, Trans::yes}) {
      const Shape sa = ta == Trans::no ? Shape{2, 3, 4} : Shape{2, 4, 3};
      const Shape sb = tb == Trans::no ? Shape{2, 4, 5} : Shape{2, 5, 4};
      gradcheck("batched matmul", {random_input(sa, 10), random_input(sb, 11)},
                [=](const Vec& x) { return matmul(x[0], x[1], ta, tb); });
      const Shape s2 = tb == Trans::no ? Shape{4, 5} : Shape{5, 4};
      gradcheck("matmul shared b", {random_input(sa, 12), random_input(s2, 13)},
                [=](const Vec& x) { return matmul(x[0], x[1], ta, tb); });
    }
}

TEST_CASE("gradcheck: linear with and without bias") {
  gradcheck("linear", {random_input({2, 3, 4}, 20), random_input({5, 4}, 21), random_input({5}, 22)},
            [](const Vec& x) { return linear(x[0], x[1], x[2]); });
  gradcheck("linear no bias", {random_input({3, 4}, 23), random_input({2, 4}, 24)},
            [](const Vec& x) { return linear(x[0], x[1]); });
}

TEST_CASE("gradcheck: gelu_tanh, silu, softmax") {
  gradcheck("gelu_tanh", {random_input({3, 7}, 30, 2.0)}, [](const Vec& x) { return gelu_tanh(x[0]); });
  gradcheck("silu", {random_input({3, 7}, 31, 2.0)}, [](const Vec& x) { return silu(x[0]); });
  gradcheck("softmax", {random_input({3, 7}, 32, 2.0)}, [](const Vec& x) { return softmax(x[0]); });
}

TEST_CASE("gradcheck: layer_norm and rms_norm") {
  gradcheck("layer_norm", {random_input({2, 3, 6}, 40), random_input({6}, 41), random_input({6}, 42)},
            [](const Vec& x) { return layer_norm(x[0], x[1], x[2], 1e-5); });
  gradcheck("layer_norm no bias", {random_input({4, 6}, 43), random_input({6}, 44)},
            [](const Vec& x) { return layer_norm(x[0], x[1], DTensor{}, 1e-5); });
  gradcheck("rms_norm", {random_input({2, 3, 6}, 45), random_input({6}, 46)},
            [](const Vec& x) { return rms_norm(x[0], x[1], 1e-6); });
}

TEST_CASE("gradcheck: causal attention, multi-head and grouped-query") {
  gradcheck("attention mha",
            {random_input({2, 5, 2, 4}, 50), random_input({2, 5, 2, 4}, 51), random_input({2, 5, 2, 4}, 52)},
            [](const Vec& x) { return causal_attention(x[0], x[1], x[2]); });
  gradcheck("attention gqa",
            {random_input({1, 6, 4, 3}, 53), random_input({1, 6, 2, 3}, 54), random_input({1, 6, 2, 3}, 55)},
            [](const Vec& x) { return causal_attention(x[0], x[1], x[2], 0.7); });
  gradcheck("attention mqa",
            {random_input({1, 4, 3, 2}, 56), random_input({1, 4, 1, 2}, 57), random_input({1, 4, 1, 2}, 58)},
            [](const Vec& x) { return causal_attention(x[0], x[1], x[2]); });
}

TEST_CASE("gradcheck: embedding (repeated ids scatter-add) and rope in both conventions") {
  const std::vector<std::int32_t> ids{3, 1, 3, 0, 4, 3};
  gradcheck("embedding", {random_input({5, 4}, 60)},
            [&](const Vec& x) { return embedding(x[0], std::span<const std::int32_t>(ids), Shape{2, 3}); });
  for (RopeStyle style : {RopeStyle::interleaved, RopeStyle::half})
    gradcheck("rope", {random_input({2, 3, 2, 6}, 61)},
              [=](const Vec& x) { return rope(x[0], style, 100.0, 2); });
}

TEST_CASE("gradcheck: cross_entropy with ignored targets") {
  const std::vector<std::int32_t> targets{2, -100, 0, 6, 6};
  gradcheck("cross_entropy", {random_input({5, 7}, 70, 3.0)},
            [&](const Vec& x) { return cross_entropy(x[0], std::span<const std::int32_t>(targets)); });
  const std::vector<std::int32_t> t2{1, 1, 7, 1};
  gradcheck("cross_entropy custom ignore", {random_input({2, 2, 8}, 71)},
            [&](const Vec& x) { return cross_entropy(x[0], std::span<const std::int32_t>(t2), 7); });
}

TEST_CASE("gradcheck: reshape, transpose, slice_last") {
  gradcheck("reshape", {random_input({2, 6}, 80)},
            [](const Vec& x) { return gelu_tanh(reshape(x[0], Shape{3, 4})); });
  gradcheck("transpose 1,2", {random_input({2, 3, 4, 5}, 81)}, [](const Vec& x) { return transpose(x[0], 1, 2); });
  gradcheck("transpose -1,-2", {random_input({2, 3, 4}, 82)}, [](const Vec& x) { return transpose(x[0], -1, -2); });
  gradcheck("transpose 0,3", {random_input({2, 3, 2, 3}, 83)}, [](const Vec& x) { return transpose(x[0], 0, 3); });
  gradcheck("slice_last", {random_input({2, 3, 9}, 84)}, [](const Vec& x) { return slice_last(x[0], 3, 7); });
}

TEST_CASE("gradcheck: a composed block reuses tensors (gradients accumulate across uses)") {
  gradcheck("residual mlp", {random_input({2, 3, 4}, 90), random_input({6, 4}, 91), random_input({4, 6}, 92)},
            [](const Vec& x) {
              DTensor h = gelu_tanh(linear(x[0], x[1]));
              return add(x[0], mul(linear(h, x[2]), x[0]));
            });
}
