// Engine behaviour: no_grad, arena reuse, frozen parameters, STE op, errors, schedules, threads.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "lowbit/autograd.hpp"
#include "lowbit/quant.hpp"
#include "../support/random.hpp"

using namespace lowbit::autograd;
using lowbit::test::gaussian;

TEST_CASE("engine: NoGradGuard records no tape and makes no gradient buffers") {
  Parameter w("w", Shape{3, 4}, gaussian(12, 1.0f, 1));
  Graph g;
  {
    NoGradGuard no_grad;
    Tensor x = g.constant(Shape{2, 4}, gaussian(8, 1.0f, 2));
    Tensor y = sum(gelu_tanh(linear(x, w)));
    CHECK_FALSE(y.requires_grad());
    CHECK(g.tape_size() == 0);
    CHECK_THROWS_AS(backward(y), lowbit::Error);
  }
  CHECK(grad_enabled());
  Tensor x = g.constant(Shape{2, 4}, gaussian(8, 1.0f, 2));
  Tensor y = sum(gelu_tanh(linear(x, w)));
  CHECK(y.requires_grad());
  CHECK(g.tape_size() == 3);
  backward(y);
  CHECK(x.grad() == nullptr);  // constants get no gradient
  double norm = 0;
  for (float v : w.grads()) norm += v * v;
  CHECK(norm > 0);
  CHECK_THROWS_AS(backward(y), lowbit::Error);  // the tape is spent
}

TEST_CASE("engine: a repeated training step allocates nothing after the first") {
  Parameter w1("w1", Shape{16, 8}, gaussian(128, 0.3f, 3)), w2("w2", Shape{5, 16}, gaussian(80, 0.3f, 4));
  AdamW opt({&w1, &w2}, AdamWOptions{1e-2, 0.9, 0.999, 1e-8, 0.0});
  const auto xs = gaussian(6 * 8, 1.0f, 5);
  const std::vector<std::int32_t> targets{0, 4, 2, -100, 1, 3};
  Graph g(1024);  // deliberately small first chunk: the first step must grow it
  std::vector<std::size_t> allocations;
  float first_loss = 0, last_loss = 0;
  for (int step = 0; step < 4; ++step) {
    g.clear();
    Tensor x = g.constant(Shape{6, 8}, xs);
    Tensor loss = cross_entropy(linear(silu(linear(x, w1)), w2), std::span<const std::int32_t>(targets));
    opt.zero_grad();
    backward(loss);
    opt.step();
    allocations.push_back(g.arena().system_allocations());
    (step == 0 ? first_loss : last_loss) = loss.item();
  }
  CHECK(allocations[0] > 1);               // the first step needed more than the first chunk
  CHECK(allocations[2] == allocations[1]);  // consolidated at the first clear(), then reused
  CHECK(allocations[3] == allocations[1]);
  CHECK(g.peak_bytes() >= (6 * 16 + 6 * 5) * sizeof(float));
  CHECK(last_loss < first_loss);
}

TEST_CASE("engine: frozen parameters get no gradient and are not updated") {
  Parameter w("w", Shape{2, 3}, gaussian(6, 1.0f, 6)), b("b", Shape{2}, {0.5f, -0.5f});
  b.set_trainable(false);
  Graph g;
  Tensor x = g.constant(Shape{1, 3}, std::vector<float>{1.0f, 2.0f, 3.0f});
  backward(sum(linear(x, w, b)));
  CHECK(b.grads()[0] == 0.0f);
  CHECK(w.grads()[0] == 1.0f);  // d/dw Σ(x·wᵀ) = x
  CHECK(w.grads()[5] == 3.0f);
  AdamW opt({&w, &b});
  opt.step();
  CHECK(b.values()[0] == 0.5f);
}

TEST_CASE("engine: gradients accumulate across backward passes until zero_grad") {
  Parameter w("w", Shape{2}, {1.0f, 2.0f});
  for (int i = 0; i < 2; ++i) {
    Graph g;
    backward(sum(mul(w.tensor(), w.tensor())));  // d/dw Σw² = 2w
  }
  CHECK(w.grads()[1] == 8.0f);
  w.zero_grad();
  CHECK(w.grads()[1] == 0.0f);
}

TEST_CASE("STE: forward equals the Quantizer, backward is identity (recomputed scales)") {
  const lowbit::Quantizer<lowbit::Int<4>, lowbit::PerChannel, lowbit::AbsMax> q;
  Parameter w("w", Shape{4, 16}, gaussian(64, 1.0f, 7));
  std::vector<float> expected(64);
  q.fake_quantize(w.matrix(), lowbit::MatrixView(expected.data(), 4, 16));
  Graph g;
  Tensor y = fake_quant_ste(w.tensor(), q);
  for (int i = 0; i < 64; ++i) CHECK(y.data()[i] == expected[static_cast<std::size_t>(i)]);
  const auto dy = gaussian(64, 1.0f, 8);
  backward(sum(mul(y, g.constant(Shape{4, 16}, dy))));
  for (int i = 0; i < 64; ++i) CHECK(w.grads()[static_cast<std::size_t>(i)] == dy[static_cast<std::size_t>(i)]);
}

TEST_CASE("STE: frozen scales clip a grown weight, and mask_clipped zeroes exactly those gradients") {
  const lowbit::Quantizer<lowbit::Int<3>, lowbit::PerTensor, lowbit::AbsMax> q;
  Parameter w("w", Shape{2, 8}, gaussian(16, 1.0f, 9));
  const lowbit::QuantParams frozen = q.params(w.matrix());
  for (float& v : w.values()) v *= 2.0f;  // half of the range now lies outside the frozen grid
  Graph g;
  Tensor y = fake_quant_ste(w.tensor(), frozen, SteOptions{SteGradient::mask_clipped});
  backward(sum(y));
  const float s = frozen.scales[0];
  int clipped = 0;
  for (int i = 0; i < 16; ++i) {
    const float code = std::nearbyint(w.values()[static_cast<std::size_t>(i)] * (1.0f / s));
    const bool inside = std::abs(code) <= 3.0f;
    clipped += inside ? 0 : 1;
    CHECK(w.grads()[static_cast<std::size_t>(i)] == (inside ? 1.0f : 0.0f));
    CHECK(std::abs(y.data()[i]) <= 3.0f * s * (1 + 1e-6f));
  }
  CHECK(clipped > 0);
}

TEST_CASE("engine: bad input raises lowbit::Error naming the op") {
  Graph g;
  Tensor a = g.constant(Shape{2, 3}, std::vector<float>(6, 1.0f));
  Tensor b = g.constant(Shape{4, 2}, std::vector<float>(8, 1.0f));
  CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("matmul"), lowbit::Error);
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("broadcast"), lowbit::Error);
  const std::vector<std::int32_t> ids{0, 7};
  CHECK_THROWS_WITH_AS(embedding(a, std::span<const std::int32_t>(ids), Shape{2}), doctest::Contains("id 7"),
                       lowbit::Error);
  const std::vector<std::int32_t> targets{1, 3};
  CHECK_THROWS_WITH_AS(cross_entropy(a, std::span<const std::int32_t>(targets)), doctest::Contains("target 3"),
                       lowbit::Error);
  Tensor q4 = g.constant(Shape{1, 2, 3, 2}, std::vector<float>(12, 1.0f));
  Tensor k4 = g.constant(Shape{1, 2, 2, 2}, std::vector<float>(8, 1.0f));
  CHECK_THROWS_WITH_AS(causal_attention(q4, k4, k4), doctest::Contains("multiple"), lowbit::Error);
  CHECK_THROWS_AS(reshape(a, Shape{4}), lowbit::Error);
  CHECK_THROWS_AS((Parameter{"p", Shape{2}, {1.0f}}), lowbit::Error);
  const std::vector<std::int32_t> ignored{-100, -100};
  CHECK(cross_entropy(a, std::span<const std::int32_t>(ignored)).item() == 0.0f);  // not NaN
}

TEST_CASE("engine: ops need a live Graph") {
  Parameter w("w", Shape{2, 2});
  CHECK_THROWS_WITH_AS(gelu_tanh(w.tensor()), doctest::Contains("no autograd Graph"), lowbit::Error);
}

TEST_CASE("LrSchedule: warm-up, linear and cosine decay to a fraction") {
  LrSchedule s{LrSchedule::Kind::linear, 1.0, 2, 12, 0.1};
  CHECK(s.at(0) == doctest::Approx(0.5));
  CHECK(s.at(1) == doctest::Approx(1.0));
  CHECK(s.at(2) == doctest::Approx(1.0));
  CHECK(s.at(7) == doctest::Approx(0.55));
  CHECK(s.at(12) == doctest::Approx(0.1));
  CHECK(s.at(50) == doctest::Approx(0.1));
  s.kind = LrSchedule::Kind::cosine;
  CHECK(s.at(7) == doctest::Approx(0.55));
  CHECK(s.at(4) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.2))));
  CHECK(s.at(12) == doctest::Approx(0.1));
  s.kind = LrSchedule::Kind::constant;
  CHECK(s.at(40) == doctest::Approx(1.0));
}

TEST_CASE("engine: results do not depend on the thread count") {
  const auto qv = gaussian(2 * 64 * 4 * 16, 1.0f, 10), kv = gaussian(2 * 64 * 2 * 16, 1.0f, 11);
  const auto wv = gaussian(96 * 64, 0.2f, 12), xv = gaussian(2 * 64 * 64, 1.0f, 13);
  std::vector<std::vector<float>> results;
  const int saved = num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    Graph g;
    Tensor q = g.variable(Shape{2, 64, 4, 16}, qv), k = g.variable(Shape{2, 64, 2, 16}, kv);
    Tensor x = g.variable(Shape{2, 64, 64}, xv), w = g.variable(Shape{96, 64}, wv);
    Tensor a = causal_attention(q, k, k);
    Tensor l = linear(x, w);
    backward(add(sum(mul(a, a)), sum(mul(l, l))));
    std::vector<float> r(a.values().begin(), a.values().end());
    r.insert(r.end(), q.grads().begin(), q.grads().end());
    r.insert(r.end(), k.grads().begin(), k.grads().end());
    r.insert(r.end(), w.grads().begin(), w.grads().end());
    results.push_back(r);
  }
  set_num_threads(saved);
  for (std::size_t t = 1; t < results.size(); ++t)
    for (std::size_t i = 0; i < results[0].size(); ++i)
      CHECK(results[t][i] == doctest::Approx(results[0][i]).epsilon(1e-4));
}

TEST_CASE("cross_entropy: SIMD exp passes agree with the scalar reference") {
  const auto row = lowbit::test::uniform(1003, -30.0f, 12.0f, 16);
  const auto n = static_cast<lowbit::Index>(row.size());
  const float shift = 12.0f;
  const float simd = detail::sum_exp<true>(row.data(), n, shift), ref = detail::sum_exp<false>(row.data(), n, shift);
  CHECK(simd == doctest::Approx(ref).epsilon(1e-6));
  std::vector<float> d_simd(row.size(), 0.25f), d_ref(row.size(), 0.25f);
  detail::add_scaled_exp<true>(d_simd.data(), row.data(), n, shift, 0.5f);
  detail::add_scaled_exp<false>(d_ref.data(), row.data(), n, shift, 0.5f);
  for (std::size_t i = 0; i < row.size(); ++i) CHECK(d_simd[i] == doctest::Approx(d_ref[i]).epsilon(1e-6));
}

TEST_CASE("activations: SIMD GELU/SiLU kernels agree with the scalar reference") {
  const auto x = lowbit::test::uniform(1003, -9.0f, 9.0f, 14);
  const auto dy = gaussian(1003, 1.0f, 15);
  auto compare = [&](auto tag) {
    using F = typename decltype(tag)::type;
    std::vector<float> simd(x.size()), ref(x.size()), dsimd(x.size(), 0.5f), dref(x.size(), 0.5f);
    const auto n = static_cast<lowbit::Index>(x.size());
    detail::pointwise_kernel<F, false, true>(x.data(), nullptr, simd.data(), n);
    detail::pointwise_kernel<F, false, false>(x.data(), nullptr, ref.data(), n);
    detail::pointwise_kernel<F, true, true>(x.data(), dy.data(), dsimd.data(), n);
    detail::pointwise_kernel<F, true, false>(x.data(), dy.data(), dref.data(), n);
    for (std::size_t i = 0; i < x.size(); ++i) {
      CHECK(simd[i] == doctest::Approx(ref[i]).epsilon(1e-6).scale(1e-6));
      CHECK(dsimd[i] == doctest::Approx(dref[i]).epsilon(1e-6).scale(1e-6));
    }
  };
  compare(std::type_identity<detail::GeluTanh<float>>{});
  compare(std::type_identity<detail::Silu<float>>{});
}

TEST_CASE("thread pool: LOWBIT_THREADS sets the default thread count, and a bad value is an error naming it") {
  const char* old = std::getenv("LOWBIT_THREADS");
  const std::string saved = old ? old : "";
  ::setenv("LOWBIT_THREADS", "3", 1);
  CHECK(ThreadPool::threads_from_environment() == 3);
  for (const char* bad : {"0", "-2", "abc", "4x", "100000"}) {
    ::setenv("LOWBIT_THREADS", bad, 1);
    const std::string want = std::string("LOWBIT_THREADS: expected a thread count from 1 to 1024, got '") + bad + "'";
    CHECK_THROWS_WITH_AS(ThreadPool::threads_from_environment(), doctest::Contains(want.c_str()), lowbit::Error);
  }
  ::setenv("LOWBIT_THREADS", "", 1);
  CHECK(ThreadPool::threads_from_environment() >= 1);
  if (old) ::setenv("LOWBIT_THREADS", saved.c_str(), 1);
  else ::unsetenv("LOWBIT_THREADS");
}

TEST_CASE("engine: add and mul of empty tensors give empty results, and backward runs (no division by zero)") {
  Parameter a("a", Shape{3, 0}), b("b", Shape{0});
  Graph g;
  for (const bool multiply : {false, true}) {
    g.clear();
    Tensor y = multiply ? mul(a.tensor(), b.tensor()) : add(a.tensor(), b.tensor());
    CHECK(y.numel() == 0);
    CHECK(y.shape() == Shape{3, 0});
    Tensor total = sum(y);
    CHECK(total.item() == 0.0f);
    CHECK_NOTHROW(backward(total));
  }
}
