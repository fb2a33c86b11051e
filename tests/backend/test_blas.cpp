// lowbit::blas (backend/blas.hpp): the BLAS path against a double-precision
// reference and against the Eigen kernels it replaces; the same tests hold the
// Eigen path in the BLAS-less build (lowbit_tests_eigen).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <lowbit/autograd/thread_pool.hpp>
#include <lowbit/backend/blas.hpp>

namespace {

using lowbit::Index;
using lowbit::blas::Trans;

std::vector<float> blas_gaussian(Index n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(gen);
  return v;
}

// op(X)(r, c) of a row-major stored X with leading dimension ld.
float op_at(const std::vector<float>& x, Index ld, Trans t, Index r, Index c) {
  return t == Trans::no ? x[static_cast<std::size_t>(r * ld + c)] : x[static_cast<std::size_t>(c * ld + r)];
}

// Largest |got − want| relative to the largest |want| (both row-major, ld = ldc).
double max_rel_diff(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0.0, scale = 1e-30;
  for (std::size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / scale;
}

}  // namespace

TEST_CASE("blas: gemm matches a double reference for every transpose, alpha, beta, stride and split") {
  const std::string impl = lowbit::blas::implementation;
#if defined(LOWBIT_HAS_BLAS)
  CHECK(impl == "openblas");
#else
  CHECK(impl == "eigen");
#endif
  const int saved = lowbit::autograd::num_threads();
  for (int threads : {1, 2}) {
    lowbit::autograd::set_num_threads(threads);
    for (Trans ta : {Trans::no, Trans::yes})
      for (Trans tb : {Trans::no, Trans::yes})
        for (auto [m, n, k] : {std::tuple<Index, Index, Index>{3, 5, 7}, {150, 40, 300}, {40, 170, 300}}) {
          // Leading dimensions wider than the matrices: views into bigger buffers.
          const Index lda = (ta == Trans::no ? k : m) + 3, ldb = (tb == Trans::no ? n : k) + 2, ldc = n + 5;
          const auto a = blas_gaussian((ta == Trans::no ? m : k) * lda, 1);
          const auto b = blas_gaussian((tb == Trans::no ? k : n) * ldb, 2);
          auto c = blas_gaussian(m * ldc, 3);
          const float alpha = 0.75f, beta = -0.5f;
          std::vector<double> want(c.begin(), c.end());
          for (Index r = 0; r < m; ++r)
            for (Index j = 0; j < n; ++j) {
              double s = 0.0;
              for (Index p = 0; p < k; ++p) s += double(op_at(a, lda, ta, r, p)) * op_at(b, ldb, tb, p, j);
              auto& w = want[static_cast<std::size_t>(r * ldc + j)];
              w = alpha * s + beta * w;
            }
          const auto padding_before = c;
          lowbit::blas::gemm<float>(m, n, k, alpha, a.data(), lda, ta, b.data(), ldb, tb, beta, c.data(), ldc);
          INFO("threads " << threads << " ta " << int(ta) << " tb " << int(tb) << " m " << m << " n " << n);
          CHECK(max_rel_diff(c, want) < 1e-5);
          for (Index r = 0; r < m; ++r)  // the padding columns of C are not written
            for (Index j = n; j < ldc; ++j)
              CHECK(c[static_cast<std::size_t>(r * ldc + j)] == padding_before[static_cast<std::size_t>(r * ldc + j)]);
        }
  }
  lowbit::autograd::set_num_threads(saved);
}

TEST_CASE("blas: gemm with k = 0 scales C by beta, and beta = 0 ignores NaN in C") {
  std::vector<float> c = {1.0f, 2.0f, 3.0f, 4.0f};
  const float none = 0.0f;
  lowbit::blas::gemm<float>(2, 2, 0, 1.0f, &none, 1, Trans::no, &none, 2, Trans::no, 2.0f, c.data(), 2);
  CHECK(c == std::vector<float>{2.0f, 4.0f, 6.0f, 8.0f});
  const std::vector<float> a = {1.0f, 2.0f}, b = {3.0f, 4.0f};
  std::vector<float> d = {std::nanf(""), std::nanf("")};
  lowbit::blas::gemm<float>(1, 2, 1, 1.0f, a.data(), 1, Trans::no, b.data(), 2, Trans::no, 0.0f, d.data(), 2);
  CHECK(d == std::vector<float>{3.0f, 4.0f});
}

TEST_CASE("blas: the BLAS gemm agrees with the Eigen kernels and its results do not depend on the thread count") {
  const Index m = 256, n = 384, k = 200;
  const auto a = blas_gaussian(m * k, 4), b = blas_gaussian(n * k, 5);
  std::vector<float> eig(static_cast<std::size_t>(m * n)), one(eig.size()), two(eig.size());
  lowbit::blas::eigen::gemm<float>(m, n, k, 1.0f, a.data(), k, Trans::no, b.data(), k, Trans::yes, 0.0f, eig.data(), n);
  const int saved = lowbit::autograd::num_threads();
  lowbit::autograd::set_num_threads(1);
  lowbit::blas::gemm<float>(m, n, k, 1.0f, a.data(), k, Trans::no, b.data(), k, Trans::yes, 0.0f, one.data(), n);
  lowbit::autograd::set_num_threads(2);
  lowbit::blas::gemm<float>(m, n, k, 1.0f, a.data(), k, Trans::no, b.data(), k, Trans::yes, 0.0f, two.data(), n);
  lowbit::autograd::set_num_threads(saved);
  // Each thread computes whole rows (or columns) of C with the same k loop.
  CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
  double worst = 0.0;
  for (std::size_t i = 0; i < eig.size(); ++i) worst = std::max(worst, double(std::abs(eig[i] - one[i])));
  CHECK(worst < 2e-4);  // |C| ~ sqrt(200): a few float ulps of accumulation-order difference
#if !defined(LOWBIT_HAS_BLAS)
  CHECK(worst == 0.0);  // the Eigen build is the Eigen kernels
#endif
}

TEST_CASE("blas: syrk_lower updates only the lower triangle, in float and double") {
  const Index n = 70, k = 130, lda = n + 4;
  const auto a = blas_gaussian(lda * k, 6);  // column-major n × k with leading dimension lda
  std::vector<float> c(static_cast<std::size_t>(n * n), 7.0f);
  lowbit::blas::syrk_lower<float>(n, k, 0.5f, a.data(), lda, 2.0f, c.data(), n);
  std::vector<double> cd(static_cast<std::size_t>(n * n), 7.0);
  const std::vector<double> ad(a.begin(), a.end());
  lowbit::blas::syrk_lower<double>(n, k, 0.5, ad.data(), lda, 2.0, cd.data(), n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < n; ++i) {
      const auto at = static_cast<std::size_t>(i + j * n);
      if (i < j) {
        CHECK(c[at] == 7.0f);
        CHECK(cd[at] == 7.0);
        continue;
      }
      double s = 0.0;
      for (Index p = 0; p < k; ++p) s += double(a[static_cast<std::size_t>(i + p * lda)]) * a[static_cast<std::size_t>(j + p * lda)];
      const double want = 0.5 * s + 14.0;
      CHECK(std::abs(c[at] - want) < 1e-4 * (1.0 + std::abs(want)));
      CHECK(std::abs(cd[at] - want) < 1e-10 * (1.0 + std::abs(want)));
    }
}

TEST_CASE("blas: syrk_lower in column panels matches a double reference; its result does not depend on the thread count") {
  // n above one panel (~512 columns): a diagonal SYRK and a GEMM below it per panel,
  // spread over the pool; an odd n leaves a narrower last panel.
  const Index n = 1100, k = 64, lda = n + 3;
  const auto a = blas_gaussian(lda * k, 11);
  const auto run = [&](int threads, bool parallel) {
    std::vector<float> c(static_cast<std::size_t>(n * n), 3.0f);
    const int saved = lowbit::autograd::num_threads();
    lowbit::autograd::set_num_threads(threads);
    lowbit::blas::syrk_lower<float>(n, k, 0.25f, a.data(), lda, 0.5f, c.data(), n, parallel);
    lowbit::autograd::set_num_threads(saved);
    return c;
  };
  const auto one = run(1, true), two = run(2, true), three = run(3, true), serial = run(2, false);
  CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(one.data(), three.data(), one.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(one.data(), serial.data(), one.size() * sizeof(float)) == 0);
  double worst = 0.0;
  int untouched_upper = 0;
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < n; ++i) {
      const auto at = static_cast<std::size_t>(i + j * n);
      if (i < j) {
        untouched_upper += one[at] == 3.0f;
        continue;
      }
      double s = 0.0;
      for (Index p = 0; p < k; ++p) s += double(a[static_cast<std::size_t>(i + p * lda)]) * a[static_cast<std::size_t>(j + p * lda)];
      worst = std::max(worst, std::abs(one[at] - (0.25 * s + 1.5)) / (1.0 + std::abs(0.25 * s + 1.5)));
    }
  CHECK(untouched_upper == n * (n - 1) / 2);
  CHECK(worst < 1e-5);
}

TEST_CASE("blas: cholesky_lower and invert_upper reproduce H and the identity; failures are reported") {
  const Index n = 150;  // above the Eigen fallback's 48-column base case: the blocked path runs
  const auto x = blas_gaussian(n * 2 * n, 7);
  std::vector<float> h(static_cast<std::size_t>(n * n), std::nanf(""));  // beta = 0: C is not read
  lowbit::blas::syrk_lower<float>(n, 2 * n, 1.0f / float(n), x.data(), n, 0.0f, h.data(), n);
  for (Index j = 0; j < n; ++j)  // the upper triangle is not written: mirror the lower one
    for (Index i = 0; i < j; ++i) h[static_cast<std::size_t>(i + j * n)] = h[static_cast<std::size_t>(j + i * n)];
  for (Index d = 0; d < n; ++d) h[static_cast<std::size_t>(d * n + d)] += 0.1f;
  std::vector<float> l = h;
  REQUIRE(lowbit::blas::cholesky_lower(n, l.data(), n));
  double worst = 0.0;
  for (Index j = 0; j < n; ++j)
    for (Index i = j; i < n; ++i) {
      double s = 0.0;
      for (Index p = 0; p <= j; ++p) s += double(l[static_cast<std::size_t>(i + p * n)]) * l[static_cast<std::size_t>(j + p * n)];
      worst = std::max(worst, std::abs(s - h[static_cast<std::size_t>(i + j * n)]));
    }
  CHECK(worst < 1e-4);

  // Lᵀ is upper triangular: invert it and multiply back.
  std::vector<float> u(static_cast<std::size_t>(n * n), 0.0f);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i <= j; ++i) u[static_cast<std::size_t>(i + j * n)] = l[static_cast<std::size_t>(j + i * n)];
  std::vector<float> ui = u;
  REQUIRE(lowbit::blas::invert_upper(n, ui.data(), n));
  worst = 0.0;
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i <= j; ++i) {
      double s = 0.0;
      for (Index p = i; p <= j; ++p) s += double(u[static_cast<std::size_t>(i + p * n)]) * ui[static_cast<std::size_t>(p + j * n)];
      worst = std::max(worst, std::abs(s - (i == j ? 1.0 : 0.0)));
    }
  CHECK(worst < 1e-4);

  std::vector<float> indefinite = h;
  indefinite[static_cast<std::size_t>(5 * n + 5)] = -1.0f;
  CHECK_FALSE(lowbit::blas::cholesky_lower(n, indefinite.data(), n));
  std::vector<float> singular = u;
  singular[static_cast<std::size_t>(7 * n + 7)] = 0.0f;
  bool finite = lowbit::blas::invert_upper(n, singular.data(), n);
  for (Index j = 0; j < n && finite; ++j)
    for (Index i = 0; i <= j; ++i) finite = finite && std::isfinite(singular[static_cast<std::size_t>(i + j * n)]);
  CHECK_FALSE(finite);  // BLAS: info > 0; Eigen: the zero pivot's 1/0 spreads as inf/NaN
}

TEST_CASE("blas: blocked cholesky_lower and invert_upper above one factor block match a double reference; "
          "their results do not depend on the thread count") {
  // 700 = two 256-column blocks and a 188-column tail for the Cholesky; above two blocks,
  // so the inverse takes its [A B; 0 C] split (A 350, C 350) with TRMM chunks and a tail.
  const Index n = 700;
  const auto x = blas_gaussian(n * n, 11);
  std::vector<float> h(static_cast<std::size_t>(n * n), 0.0f);
  lowbit::blas::syrk_lower<float>(n, n, 1.0f / float(n), x.data(), n, 0.0f, h.data(), n);
  for (Index d = 0; d < n; ++d) h[static_cast<std::size_t>(d * n + d)] += 0.05f;
  const int saved = lowbit::autograd::num_threads();
  std::vector<std::vector<float>> ls, us;
  for (const int threads : {1, 2, 3}) {
    lowbit::autograd::set_num_threads(threads);
    std::vector<float> l = h;
    REQUIRE(lowbit::blas::cholesky_lower(n, l.data(), n));
    std::vector<float> u(static_cast<std::size_t>(n * n), 0.0f);  // Lᵀ, upper
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i <= j; ++i) u[static_cast<std::size_t>(i + j * n)] = l[static_cast<std::size_t>(j + i * n)];
    REQUIRE(lowbit::blas::invert_upper(n, u.data(), n));
    ls.push_back(std::move(l));
    us.push_back(std::move(u));
  }
  lowbit::autograd::set_num_threads(saved);
  for (std::size_t t = 1; t < ls.size(); ++t) {
    CAPTURE(t);
    CHECK(std::memcmp(ls[0].data(), ls[t].data(), ls[0].size() * sizeof(float)) == 0);
    CHECK(std::memcmp(us[0].data(), us[t].data(), us[0].size() * sizeof(float)) == 0);
  }
  // L·Lᵀ = H on the lower triangle, and Lᵀ · (Lᵀ)⁻¹ = I, in double.
  const auto& l = ls[0];
  const auto& ui = us[0];
  double worst_l = 0.0, worst_i = 0.0;
  for (Index j = 0; j < n; j += 7)
    for (Index i = j; i < n; ++i) {
      double s = 0.0;
      for (Index p = 0; p <= j; ++p) s += double(l[static_cast<std::size_t>(i + p * n)]) * l[static_cast<std::size_t>(j + p * n)];
      worst_l = std::max(worst_l, std::abs(s - h[static_cast<std::size_t>(i + j * n)]));
    }
  for (Index j = 0; j < n; j += 7)
    for (Index i = 0; i <= j; ++i) {
      double s = 0.0;
      for (Index p = i; p <= j; ++p) s += double(l[static_cast<std::size_t>(p + i * n)]) * ui[static_cast<std::size_t>(p + j * n)];
      worst_i = std::max(worst_i, std::abs(s - (i == j ? 1.0 : 0.0)));
    }
  CHECK(worst_l < 1e-4);
  CHECK(worst_i < 1e-4);
  // Below the diagonal the inverse is not written: the input's zeros stay.
  for (Index j = 0; j < n; j += 13)
    for (Index i = j + 1; i < n; i += 5) CHECK(ui[static_cast<std::size_t>(i + j * n)] == 0.0f);
}
