// The xsimd kernels against their scalar references, bit for bit.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lowbit/quant/histogram.hpp"
#include "lowbit/quant/kernels.hpp"
#include "../support/random.hpp"
#include "../support/compare.hpp"

using namespace lowbit;
using lowbit::test::same_bits;

namespace {

// Gaussian values plus exact ties (k + 0.5)·s, their neighbours, ±0 and clamps.
std::vector<float> tricky_values(std::size_t n, float scale) {
  auto v = test::gaussian(n, 3.0f * scale, 7);
  for (std::size_t i = 0; i + 6 < n; i += 7) {
    const float tie = (static_cast<float>(static_cast<int>(i % 21)) - 10.0f + 0.5f) * scale;
    v[i] = tie;
    v[i + 1] = std::nextafter(tie, 1e9f);
    v[i + 2] = std::nextafter(tie, -1e9f);
    v[i + 3] = -0.0f;
    v[i + 4] = 1e6f * scale;
    v[i + 5] = -1e6f * scale;
  }
  return v;
}


}  // namespace

TEST_CASE("fake_quantize: SIMD path equals the scalar reference bit for bit") {
  for (const Division d : {Division::reciprocal, Division::exact}) {
    for (const float scale : {0.25f, 0.0137f, 3.1e-5f}) {
      for (const std::size_t n : {std::size_t{1}, std::size_t{15}, std::size_t{64}, std::size_t{1000}, std::size_t{4099}}) {
        const auto x = tricky_values(n, scale);
        std::vector<float> ref(n), vec(n);
        const GridStep g = GridStep::make(scale, d);
        for (const auto& [qmin, qmax] : {std::pair{-1, 1}, std::pair{-7, 7}, std::pair{-8, 7}, std::pair{-127, 127}}) {
          kernels::fake_quantize_scalar(x.data(), ref.data(), static_cast<Index>(n), g, qmin, qmax);
          kernels::fake_quantize(x.data(), vec.data(), static_cast<Index>(n), g, qmin, qmax);
          CHECK(same_bits(ref, vec));
          std::vector<std::int8_t> qs(n), qv(n);
          kernels::codes_scalar(x.data(), qs.data(), static_cast<Index>(n), g, qmin, qmax);
          kernels::codes(x.data(), qv.data(), static_cast<Index>(n), g, qmin, qmax);
          CHECK(qs == qv);
        }
      }
    }
  }
}

TEST_CASE("fake_quantize: round half to even, clamp, and +0 for codes of zero") {
  const float s = 0.5f;
  const std::vector<float> x = {0.25f, 0.75f, -0.25f, -0.75f, 1.25f, -1.25f, -0.1f, 100.0f, -100.0f};
  // x/s = 0.5, 1.5, -0.5, -1.5, 2.5, -2.5, -0.2, 200, -200 → ties go to even codes
  const std::vector<float> expect = {0.0f, 1.0f, 0.0f, -1.0f, 1.0f, -1.0f, 0.0f, 1.5f, -1.5f};
  std::vector<float> y(x.size());
  kernels::fake_quantize(x.data(), y.data(), static_cast<Index>(x.size()), GridStep::make(s, Division::exact), -3, 3);
  CHECK(y == expect);
  for (float v : y) CHECK_FALSE((v == 0.0f && std::signbit(v)));
}

TEST_CASE("stats: min, max and non-finite detection match the scalar reference") {
  for (const std::size_t n : {std::size_t{1}, std::size_t{17}, std::size_t{1024}, std::size_t{3001}}) {
    auto x = test::gaussian(n, 2.0f, 3);
    const auto a = kernels::stats(x.data(), static_cast<Index>(n));
    const auto b = kernels::stats_scalar(x.data(), static_cast<Index>(n));
    CHECK(a.min == b.min);
    CHECK(a.max == b.max);
    CHECK(a.finite);
    for (const float bad : {NAN, INFINITY, -INFINITY}) {
      auto y = x;
      y[n / 2] = bad;
      CHECK_FALSE(kernels::stats(y.data(), static_cast<Index>(n)).finite);
      CHECK(kernels::first_non_finite(y.data(), static_cast<Index>(n)) == static_cast<Index>(n / 2));
    }
  }
}

TEST_CASE("histc: SIMD binning equals the scalar reference, edges included") {
  auto x = test::gaussian(10007, 0.3f, 5);
  x[0] = -1.0f;  // exactly lo
  x[1] = 1.0f;   // exactly hi → last bin
  x[2] = 1.5f;   // outside → ignored
  x[3] = NAN;    // ignored
  Histogram a{-1.0f, 1.0f, std::vector<double>(2048, 0.0)};
  Histogram b = a;
  kernels::histc(x.data(), static_cast<Index>(x.size()), a);
  kernels::histc_scalar(x.data(), static_cast<Index>(x.size()), b);
  CHECK(a.counts == b.counts);
  CHECK(a.counts.front() >= 1.0);
  CHECK(a.counts.back() >= 1.0);
  std::size_t outside = 0;
  for (float v : x)
    if (!(v >= -1.0f && v <= 1.0f)) ++outside;
  CHECK(a.total() == static_cast<double>(x.size() - outside));
}

TEST_CASE("histc: values on and next to every bin edge land where the scalar division puts them") {
  for (const auto& [lo, hi] : {std::pair{-0.0731f, 0.0694f}, std::pair{-3.0f, 5.0f}, std::pair{0.1f, 0.1000001f}}) {
    std::vector<float> x;  // each edge and the two floats on either side of it
    for (int k = 0; k <= 2048; ++k) {
      const float edge = lo + (hi - lo) * static_cast<float>(k) / 2048.0f;
      float e = std::nextafter(std::nextafter(edge, -1e9f), -1e9f);
      for (int j = 0; j < 5; ++j, e = std::nextafter(e, 1e9f)) x.push_back(e);
    }
    Histogram a{lo, hi, std::vector<double>(2048, 0.0)};
    Histogram b = a;
    kernels::histc(x.data(), static_cast<Index>(x.size()), a);
    kernels::histc_scalar(x.data(), static_cast<Index>(x.size()), b);
    CHECK(a.counts == b.counts);
  }
}

// ---- alignment heads, streaming stores, per-element steps, blocked histc ----------

TEST_CASE("stats: every start offset and length against the scalar reference") {
  const auto x = test::gaussian(700, 1.5f, 11);
  for (std::size_t off = 0; off < 20; ++off)
    for (const std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{16}, std::size_t{63}, std::size_t{64},
                                std::size_t{65}, std::size_t{400}, std::size_t{680}}) {
      CAPTURE(off);
      CAPTURE(n);
      const auto a = kernels::stats(x.data() + off, static_cast<Index>(n));
      const auto b = kernels::stats_scalar(x.data() + off, static_cast<Index>(n));
      CHECK(a.min == b.min);
      CHECK(a.max == b.max);
      CHECK(a.finite == b.finite);
    }
}

TEST_CASE("stats: finite values whose sum overflows are still finite, and a non-finite one anywhere is found") {
  // The SIMD path flags non-finite values through a running sum; huge finite values
  // overflow that sum and must be settled exactly.
  std::vector<float> x(1000, 3.0e38f);
  for (std::size_t i = 1; i < x.size(); i += 2) x[i] = 2.9e38f;
  const auto s = kernels::stats(x.data(), static_cast<Index>(x.size()));
  CHECK(s.finite);
  CHECK(s.min == 2.9e38f);
  CHECK(s.max == 3.0e38f);
  for (const std::size_t at : {std::size_t{0}, std::size_t{5}, std::size_t{130}, std::size_t{999}}) {
    auto y = x;
    y[at] = NAN;
    CHECK_FALSE(kernels::stats(y.data(), static_cast<Index>(y.size())).finite);
    CHECK(kernels::stats(y.data() + 1, static_cast<Index>(y.size() - 1)).finite == (at == 0));
  }
}

TEST_CASE("fake_quantize: streaming stores, prefetch and misaligned outputs give the scalar reference's bits") {
  const float scale = 0.0137f;
  const auto x = tricky_values(5000, scale);
  for (const Division d : {Division::reciprocal, Division::exact}) {
    const GridStep g = GridStep::make(scale, d);
    for (const std::size_t off : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{13}})
      for (const kernels::Store store : {kernels::Store::cached, kernels::Store::streaming}) {
        CAPTURE(off);
        const std::size_t n = x.size() - 20;
        std::vector<float> ref(x.size(), 0.0f), vec(x.size(), 0.0f);
        kernels::fake_quantize_scalar(x.data() + off, ref.data() + off, static_cast<Index>(n), g, -7, 7);
        kernels::fake_quantize(x.data() + off, vec.data() + off, static_cast<Index>(n), g, -7, 7, store,
                               x.data() + 3);
        kernels::streaming_fence();
        CHECK(same_bits(ref, vec));
        // in place
        std::vector<float> inplace = x;
        kernels::fake_quantize(inplace.data() + off, inplace.data() + off, static_cast<Index>(n), g, -7, 7, store);
        kernels::streaming_fence();
        std::vector<float> expect = x;
        kernels::fake_quantize_scalar(x.data() + off, expect.data() + off, static_cast<Index>(n), g, -7, 7);
        CHECK(same_bits(expect, inplace));
      }
  }
  CHECK(kernels::store_for(kernels::streaming_bytes) == kernels::Store::streaming);
  CHECK(kernels::store_for(kernels::streaming_bytes - 1) == kernels::Store::cached);
  CHECK(kernels::store_for(kernels::streaming_bytes, 128) == kernels::Store::cached);
}

TEST_CASE("fake_quantize_each: one step per element, SIMD equals the scalar reference") {
  for (const Division d : {Division::reciprocal, Division::exact}) {
    for (const std::size_t n : {std::size_t{1}, std::size_t{17}, std::size_t{130}, std::size_t{1001}}) {
      const auto x = tricky_values(n, 0.02f);
      const auto raw = test::uniform(n, 0.001f, 0.05f, 9);
      std::vector<float> scale(n), factor(n);
      for (std::size_t i = 0; i < n; ++i) {
        const GridStep g = GridStep::make(raw[i], d);
        scale[i] = g.scale;
        factor[i] = g.factor;
      }
      std::vector<float> ref(n), vec(n);
      kernels::fake_quantize_each_scalar(x.data(), ref.data(), static_cast<Index>(n), scale.data(), factor.data(), d,
                                         -8, 7);
      kernels::fake_quantize_each(x.data(), vec.data(), static_cast<Index>(n), scale.data(), factor.data(), d, -8, 7);
      CHECK(same_bits(ref, vec));
      // and each element as fake_quantize_one with its own step
      for (std::size_t i = 0; i < n; ++i)
        CHECK(ref[i] == kernels::fake_quantize_one(x[i], GridStep::make(raw[i], d), -8.0f, 7.0f));
    }
  }
}

TEST_CASE("histc: blocked SIMD binning equals the scalar reference at every offset and length") {
  auto x = test::gaussian(3000, 0.5f, 21);
  x[7] = NAN;
  x[300] = 5.0f;  // outside
  for (const std::size_t off : {std::size_t{0}, std::size_t{3}, std::size_t{9}})
    for (const std::size_t n : {std::size_t{0}, std::size_t{100}, std::size_t{128}, std::size_t{129},
                                std::size_t{1000}, std::size_t{2900}}) {
      CAPTURE(off);
      CAPTURE(n);
      for (const Index bins : {Index{7}, Index{2048}}) {
        Histogram a{-1.3f, 1.2f, std::vector<double>(static_cast<std::size_t>(bins), 0.0)};
        Histogram b = a;
        kernels::histc(x.data() + off, static_cast<Index>(n), a);
        kernels::histc_scalar(x.data() + off, static_cast<Index>(n), b);
        CHECK(a.counts == b.counts);
      }
    }
}

TEST_CASE("fake_quantize_groups: a row of groups, SIMD (cached and streaming) equals the scalar reference") {
  const auto x = tricky_values(4200, 0.02f);
  // An output buffer with room to place the row at any alignment.
  std::vector<float> out_store(4200 + 64), ref(4200);
  const auto aligned_at = [&](std::size_t skew) {
    auto* p = out_store.data();
    while (reinterpret_cast<std::uintptr_t>(p) % 64 != 0) ++p;
    return p + skew;
  };
  for (const Division d : {Division::reciprocal, Division::exact})
    for (const Index n : {Index{4096}, Index{4100}, Index{130}, Index{7}})
      for (const Index group : {Index{128}, Index{32}, Index{48}, Index{100}, Index{17}, Index{8}, Index{1}, Index{5000}})
        for (const std::size_t skew : {std::size_t{0}, std::size_t{3}, std::size_t{9}})
          for (const kernels::Store store : {kernels::Store::cached, kernels::Store::streaming}) {
            CAPTURE(n);
            CAPTURE(group);
            CAPTURE(skew);
            const Index groups = (n + group - 1) / group;
            const auto raw = test::uniform(static_cast<std::size_t>(groups), 0.005f, 0.05f, 11);
            std::vector<GridStep> steps;
            for (float s : raw) steps.push_back(GridStep::make(s, d));
            float* y = aligned_at(skew);
            kernels::fake_quantize_groups_scalar(x.data(), ref.data(), n, group, steps.data(), -7, 7);
            kernels::fake_quantize_groups(x.data(), y, n, group, steps.data(), -7, 7, store, x.data() + n / 2);
            kernels::streaming_fence();
            CHECK(std::memcmp(ref.data(), y, static_cast<std::size_t>(n) * sizeof(float)) == 0);
            // The reference is fake_quantize per group with that group's step.
            const Index last = (groups - 1) * group;
            CHECK(ref[static_cast<std::size_t>(last)] ==
                  kernels::fake_quantize_one(x[static_cast<std::size_t>(last)], steps.back(), -7.0f, 7.0f));
          }
  float* y = aligned_at(0);
  GridStep one = GridStep::make(0.1f, Division::reciprocal);
  CHECK_THROWS_AS(kernels::fake_quantize_groups(x.data(), y, 10, 0, &one, -7, 7), Error);
}
