// lowbit::blas — the one seam between lowbit's dense linear algebra and a tuned BLAS.
//
// Four operations carry almost every flop lowbit spends at scale: GEMM (each
// linear layer forward and backward, GPTQ's lazy-batch updates), SYRK (Hessian
// accumulation), POTRF (GPTQ's Cholesky) and TRTRI (its triangular inverse).
// Each has two implementations here, and only here:
//   * Eigen, header-only, always compiled: the fallback, and the reference the
//     tests hold the BLAS path to (blas::eigen::*);
//   * OpenBLAS, when the build defines LOWBIT_HAS_BLAS (CMake: LOWBIT_BLAS=openblas,
//     the default when Debian's libopenblas-dev is found). Eigen's GEMM reaches
//     ~57% of OpenBLAS's rate on a Zen 4 core (docs/performance.md), and every
//     training step, calibration forward and GPTQ solve is GEMM-bound.
//
// Threads: lowbit's pool (autograd::set_num_threads, --threads, LOWBIT_THREADS) is
// the only governor. OpenBLAS is put to one thread on first use, so each BLAS call
// runs on the thread that makes it and a big GEMM is split across the pool by
// gemm() below — never by both, which would oversubscribe the cores.
//
// Accuracy: BLAS kernels fuse multiply-adds and block the k loop differently from
// Eigen, so GEMM/SYRK/POTRF/TRTRI results differ in the last bits between the two
// builds (never between runs of one build). Nothing that rounds weights onto a
// grid goes through here: the quantizer kernels are bit-identical in both builds.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "lowbit/autograd/thread_pool.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

#if defined(LOWBIT_HAS_BLAS)
#include <cblas.h>
extern "C" {
// LAPACK's Fortran entry points, which libopenblas exports (Debian ships no
// lapack.h with it). The trailing size_t is Fortran's hidden length of `uplo`/`diag`.
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info, std::size_t);
void strtri_(const char* uplo, const char* diag, const int* n, float* a, const int* lda, int* info,
             std::size_t, std::size_t);
}
#endif

namespace lowbit::blas {

/// op(X) = X or Xᵀ.
enum class Trans { no, yes };

/// The implementation behind lowbit::blas in this build: "openblas" or "eigen".
inline constexpr const char* implementation =
#if defined(LOWBIT_HAS_BLAS)
    "openblas";
#else
    "eigen";
#endif

namespace eigen {

template <class S>
using RowMat = ::Eigen::Matrix<S, ::Eigen::Dynamic, ::Eigen::Dynamic, ::Eigen::RowMajor>;
template <class S>
using ConstRowMap = ::Eigen::Map<const RowMat<S>, 0, ::Eigen::OuterStride<>>;
template <class S>
using RowMap = ::Eigen::Map<RowMat<S>, 0, ::Eigen::OuterStride<>>;
template <class S>
using ColMat = ::Eigen::Matrix<S, ::Eigen::Dynamic, ::Eigen::Dynamic>;
template <class S>
using ColMap = ::Eigen::Map<ColMat<S>, 0, ::Eigen::OuterStride<>>;

namespace detail {
// The stored matrix behind op(X), rows × cols of op(X); transposed by the caller.
template <class S>
ConstRowMap<S> stored(const S* x, Index ld, Trans t, Index rows, Index cols) {
  if (t == Trans::no) return ConstRowMap<S>(x, rows, cols, ::Eigen::OuterStride<>(ld));
  return ConstRowMap<S>(x, cols, rows, ::Eigen::OuterStride<>(ld));
}
template <class S, class A, class B>
void update(RowMap<S> c, const A& a, const B& b, S alpha, S beta) {
  if (beta == S(0))
    c.noalias() = alpha * (a * b);
  else {
    if (beta != S(1)) c *= beta;
    c.noalias() += alpha * (a * b);
  }
}
}  // namespace detail

/// C[m×n] = α·op(A)·op(B) + β·C, row-major, on the calling thread (Eigen's kernels).
template <class S>
void gemm(Index m, Index n, Index k, S alpha, const S* a, Index lda, Trans ta, const S* b, Index ldb, Trans tb,
          S beta, S* c, Index ldc) {
  RowMap<S> cm(c, m, n, ::Eigen::OuterStride<>(ldc));
  const auto am = detail::stored(a, lda, ta, m, k);
  const auto bm = detail::stored(b, ldb, tb, k, n);
  if (ta == Trans::no && tb == Trans::no) detail::update<S>(cm, am, bm, alpha, beta);
  else if (ta == Trans::no) detail::update<S>(cm, am, bm.transpose(), alpha, beta);
  else if (tb == Trans::no) detail::update<S>(cm, am.transpose(), bm, alpha, beta);
  else detail::update<S>(cm, am.transpose(), bm.transpose(), alpha, beta);
}

/// Lower triangle of C[n×n] = α·A·Aᵀ + β·C, column-major, A n×k (SYRK).
template <class S>
void syrk_lower(Index n, Index k, S alpha, const S* a, Index lda, S beta, S* c, Index ldc) {
  ColMap<S> cm(c, n, n, ::Eigen::OuterStride<>(ldc));
  if (beta == S(0)) cm.template triangularView<::Eigen::Lower>().setZero();  // BLAS: C is not read
  else if (beta != S(1)) cm.template triangularView<::Eigen::Lower>() *= beta;
  const ::Eigen::Map<const ColMat<S>, 0, ::Eigen::OuterStride<>> am(a, n, k, ::Eigen::OuterStride<>(lda));
  cm.template selfadjointView<::Eigen::Lower>().rankUpdate(am, alpha);
}

/// In place: the lower triangle of A[n×n] (column-major) becomes L with A = L·Lᵀ;
/// false when A is not numerically positive definite. The upper triangle is untouched.
inline bool cholesky_lower(Index n, float* a, Index lda) {
  ColMap<float> m(a, n, n, ::Eigen::OuterStride<>(lda));
  ::Eigen::LLT<::Eigen::Ref<ColMat<float>>, ::Eigen::Lower> llt(m);  // in place
  return llt.info() == ::Eigen::Success;
}

/// In place: the upper triangle of T[n×n] (column-major, non-unit diagonal) becomes
/// T⁻¹, recursively blocked so that almost all of its n³/3 flops are triangular
/// matrix products: [A B; 0 C]⁻¹ = [A⁻¹  -A⁻¹·B·C⁻¹; 0  C⁻¹]. (Solving against a
/// full identity would cost n³.) Singularity shows as non-finite entries.
template <class S>
void invert_upper_blocked(::Eigen::Ref<ColMat<S>> t) {
  const Index n = t.rows();
  if (n <= 48) {
    // Back substitution for column j of the inverse; columns right to left so that
    // the columns k < j still hold T when column j reads them.
    for (Index j = n - 1; j >= 0; --j) {
      t(j, j) = S(1) / t(j, j);
      for (Index i = j - 1; i >= 0; --i) {
        S s(0);
        for (Index k = i + 1; k <= j; ++k) s += t(i, k) * t(k, j);
        t(i, j) = -s / t(i, i);
      }
    }
    return;
  }
  const Index h = n / 2;
  auto a = t.topLeftCorner(h, h);
  auto b = t.topRightCorner(h, n - h);
  auto c = t.bottomRightCorner(n - h, n - h);
  invert_upper_blocked<S>(a);
  invert_upper_blocked<S>(c);
  // B ← B·C⁻¹, then B ← -A⁻¹·B (both triangular products).
  b = (b * c.template triangularView<::Eigen::Upper>()).eval();
  b = -(a.template triangularView<::Eigen::Upper>() * b).eval();
}
inline void invert_upper(Index n, float* a, Index lda) {
  invert_upper_blocked<float>(ColMap<float>(a, n, n, ::Eigen::OuterStride<>(lda)));
}

}  // namespace eigen

namespace detail {

#if defined(LOWBIT_HAS_BLAS)
/// OpenBLAS's own threads stay parked: lowbit's pool decides (see the top of this file).
inline void use_one_blas_thread() {
  [[maybe_unused]] static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
}

inline int blas_int(Index v, const char* what) {
  lowbit::detail::check(v >= 0 && v <= INT_MAX, "blas: ", what, " = ", v, " exceeds the 32-bit BLAS interface");
  return static_cast<int>(v);
}

inline CBLAS_TRANSPOSE cblas_trans(Trans t) { return t == Trans::no ? CblasNoTrans : CblasTrans; }
#endif

/// One thread's share of gemm(): the BLAS when there is one, else Eigen.
template <class S>
void gemm_here(Index m, Index n, Index k, S alpha, const S* a, Index lda, Trans ta, const S* b, Index ldb, Trans tb,
               S beta, S* c, Index ldc) {
#if defined(LOWBIT_HAS_BLAS)
  if constexpr (std::is_same_v<S, float> || std::is_same_v<S, double>) {
    use_one_blas_thread();
    const int im = blas_int(m, "m"), in = blas_int(n, "n"), ik = blas_int(k, "k");
    const int ia = blas_int(lda, "lda"), ib = blas_int(ldb, "ldb"), ic = blas_int(ldc, "ldc");
    if constexpr (std::is_same_v<S, float>)
      cblas_sgemm(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), im, in, ik, alpha, a, ia, b, ib, beta, c, ic);
    else
      cblas_dgemm(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), im, in, ik, alpha, a, ia, b, ib, beta, c, ic);
    return;
  }
#endif
  eigen::gemm<S>(m, n, k, alpha, a, lda, ta, b, ldb, tb, beta, c, ldc);
}

}  // namespace detail

/// C[m×n] = α·op(A)·op(B) + β·C, all row-major with leading dimensions lda/ldb/ldc;
/// op(A) is m×k, op(B) is k×n. Splits the longer side of C across lowbit's thread
/// pool when the product is big enough to be worth it; `parallel = false` keeps it
/// on the calling thread (for callers already inside a parallel loop).
template <class S>
void gemm(Index m, Index n, Index k, S alpha, const S* a, Index lda, Trans ta, const S* b, Index ldb, Trans tb,
          S beta, S* c, Index ldc, bool parallel = true) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // C = β·C as BLAS defines it (Eigen's product of empty maps would not scale C)
    for (Index r = 0; r < m; ++r) {
      S* row = c + r * ldc;
      if (beta == S(0)) std::fill(row, row + n, S(0));
      else std::transform(row, row + n, row, [beta](S v) { return beta * v; });
    }
    return;
  }
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (!parallel || flops < 4e6 || autograd::num_threads() == 1) {
    detail::gemm_here<S>(m, n, k, alpha, a, lda, ta, b, ldb, tb, beta, c, ldc);
    return;
  }
  // Rows r0.. of op(A) start at row r0 (no transpose) or column r0 of the stored A;
  // likewise columns of op(B).
  if (m >= n)
    autograd::parallel_for(m, 32, [&](Index r0, Index r1, int) {
      const S* ar = ta == Trans::no ? a + r0 * lda : a + r0;
      detail::gemm_here<S>(r1 - r0, n, k, alpha, ar, lda, ta, b, ldb, tb, beta, c + r0 * ldc, ldc);
    });
  else
    autograd::parallel_for(n, 64, [&](Index c0, Index c1, int) {
      const S* bc = tb == Trans::no ? b + c0 : b + c0 * ldb;
      detail::gemm_here<S>(m, c1 - c0, k, alpha, a, lda, ta, bc, ldb, tb, beta, c + c0, ldc);
    });
}

namespace detail {

/// One SYRK call on the calling thread: the BLAS when there is one, else Eigen.
template <class S>
void syrk_here(Index n, Index k, S alpha, const S* a, Index lda, S beta, S* c, Index ldc) {
#if defined(LOWBIT_HAS_BLAS)
  use_one_blas_thread();
  const int in = blas_int(n, "n"), ik = blas_int(k, "k");
  const int ia = blas_int(lda, "lda"), ic = blas_int(ldc, "ldc");
  if constexpr (std::is_same_v<S, float>)
    cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, in, ik, alpha, a, ia, beta, c, ic);
  else
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, in, ik, alpha, a, ia, beta, c, ic);
#else
  eigen::syrk_lower<S>(n, k, alpha, a, lda, beta, c, ldc);
#endif
}

/// Position i of the order 0, last, 1, last − 1, … of `count` pieces whose work falls
/// (or rises) steadily with their index: consecutive pairs then carry about equal
/// work, so the pool's contiguous shares are balanced.
inline Index zigzag(Index i, Index count) { return i % 2 == 0 ? i / 2 : count - 1 - i / 2; }

/// The column panels syrk_lower cuts C's lower triangle into: an even count of
/// about 512 columns each, a multiple of 16 wide. They depend on n alone, never on
/// the thread count, so the result does not either.
struct SyrkPanels {
  Index width = 0, count = 0;
  explicit SyrkPanels(Index n) {
    const Index pairs = (n + 1023) / 1024;
    width = ((n + 2 * pairs - 1) / (2 * pairs) + 15) / 16 * 16;
    count = (n + width - 1) / width;
  }
  /// Panel i of parallel_for's order (a panel's work falls linearly with its position).
  [[nodiscard]] Index zigzag(Index i) const { return detail::zigzag(i, count); }
};

}  // namespace detail

/// Lower triangle of C[n×n] = α·A·Aᵀ + β·C, column-major, A n×k (SYRK). Hessian
/// accumulation's one big product: above one panel it is cut into column panels,
/// each a SYRK on its diagonal block and a GEMM below it, spread over lowbit's pool
/// (`parallel = false`: all on the calling thread). The cut depends on n alone.
template <class S>
void syrk_lower(Index n, Index k, S alpha, const S* a, Index lda, S beta, S* c, Index ldc, bool parallel = true) {
  if (n == 0) return;
  const detail::SyrkPanels panels(n);
  if (panels.count <= 1) {
    detail::syrk_here<S>(n, k, alpha, a, lda, beta, c, ldc);
    return;
  }
  const auto panel = [&](Index p) {
    const Index c0 = p * panels.width, c1 = std::min(n, c0 + panels.width);
    detail::syrk_here<S>(c1 - c0, k, alpha, a + c0, lda, beta, c + c0 + c0 * ldc, ldc);
    if (c1 == n) return;
    // C[c1:n, c0:c1] (column-major) is, row-major, the (c1-c0) × (n-c1) matrix
    // A[c0:c1,:]·A[c1:n,:]ᵀ; A's column-major rows are row-major columns.
    detail::gemm_here<S>(c1 - c0, n - c1, k, alpha, a + c0, lda, Trans::yes, a + c1, lda, Trans::no, beta,
                         c + c1 + c0 * ldc, ldc);
  };
  const double flops = static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(k);
  if (!parallel || flops < 4e6 || autograd::num_threads() == 1) {
    for (Index p = 0; p < panels.count; ++p) panel(p);
    return;
  }
  autograd::parallel_for(panels.count, 1, [&](Index i0, Index i1, int) {
    for (Index i = i0; i < i1; ++i) panel(panels.zigzag(i));
  });
}

namespace detail {

/// POTRF of one diagonal block on the calling thread.
inline bool cholesky_here(Index n, float* a, Index lda) {
#if defined(LOWBIT_HAS_BLAS)
  use_one_blas_thread();
  const int in = blas_int(n, "n"), ia = blas_int(lda, "lda");
  int info = 0;
  spotrf_("L", &in, a, &ia, &info, 1);
  return info == 0;
#else
  return eigen::cholesky_lower(n, a, lda);
#endif
}

/// B[m×n] ← B·L⁻ᵀ (TRSM right, lower, transposed), L n×n lower, all column-major,
/// on the calling thread: the panel step of a blocked Cholesky.
inline void solve_right_lower_trans_here(Index m, Index n, const float* l, Index ldl, float* b, Index ldb) {
#if defined(LOWBIT_HAS_BLAS)
  use_one_blas_thread();
  cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, blas_int(m, "m"), blas_int(n, "n"),
              1.0f, l, blas_int(ldl, "ldl"), b, blas_int(ldb, "ldb"));
#else
  const ::Eigen::Map<const eigen::ColMat<float>, 0, ::Eigen::OuterStride<>> lm(l, n, n, ::Eigen::OuterStride<>(ldl));
  eigen::ColMap<float> bm(b, m, n, ::Eigen::OuterStride<>(ldb));
  lm.template triangularView<::Eigen::Lower>().transpose().template solveInPlace<::Eigen::OnTheRight>(bm);
#endif
}

/// TRTRI (upper, non-unit) on the calling thread; false on an exactly zero pivot.
inline bool invert_upper_here(Index n, float* a, Index lda) {
  if (n == 0) return true;
#if defined(LOWBIT_HAS_BLAS)
  use_one_blas_thread();
  const int in = blas_int(n, "n"), ia = blas_int(lda, "lda");
  int info = 0;
  strtri_("U", "N", &in, a, &ia, &info, 1, 1);
  return info == 0;
#else
  eigen::invert_upper(n, a, lda);
  return true;
#endif
}

/// B[m×n] ← α·U·B (`left`, U m×m) or α·B·U (U n×n), U upper triangular with its
/// diagonal, all column-major, on the calling thread (TRMM).
inline void multiply_upper_here(bool left, Index m, Index n, float alpha, const float* u, Index ldu, float* b,
                                Index ldb) {
#if defined(LOWBIT_HAS_BLAS)
  use_one_blas_thread();
  cblas_strmm(CblasColMajor, left ? CblasLeft : CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, blas_int(m, "m"),
              blas_int(n, "n"), alpha, u, blas_int(ldu, "ldu"), b, blas_int(ldb, "ldb"));
#else
  const Index k = left ? m : n;
  const ::Eigen::Map<const eigen::ColMat<float>, 0, ::Eigen::OuterStride<>> um(u, k, k, ::Eigen::OuterStride<>(ldu));
  eigen::ColMap<float> bm(b, m, n, ::Eigen::OuterStride<>(ldb));
  if (left) bm = (um.template triangularView<::Eigen::Upper>() * bm).eval();
  else bm = (bm * um.template triangularView<::Eigen::Upper>()).eval();
  if (alpha != 1.0f) bm *= alpha;
#endif
}

/// The factorizations' fixed cut: 256-column blocks; the row chunks of their
/// triangular solves and products. Like SyrkPanels it depends on n alone, so the
/// results do not depend on the thread count.
inline constexpr Index factor_block = 256, factor_rows = 64;

}  // namespace detail

/// In place: the lower triangle of A[n×n] (column-major) becomes L, A = L·Lᵀ (POTRF);
/// false when A is not numerically positive definite. The upper triangle is untouched.
/// Right-looking and blocked (LAPACK's own order of the work), so that all but the
/// 256-column diagonal blocks is TRSM on row chunks and SYRK, both spread over
/// lowbit's pool: one POTRF call would keep GPTQ's n³/3 on one core.
inline bool cholesky_lower(Index n, float* a, Index lda) {
  using detail::factor_block;
  for (Index k0 = 0; k0 < n; k0 += factor_block) {
    const Index k1 = std::min(n, k0 + factor_block), w = k1 - k0, rest = n - k1;
    float* a11 = a + k0 + k0 * lda;
    if (!detail::cholesky_here(w, a11, lda)) return false;
    if (rest == 0) break;
    float* a21 = a + k1 + k0 * lda;  // rest × w, becomes L21 = A21·L11⁻ᵀ
    autograd::parallel_chunks(rest, detail::factor_rows, [&](Index r0, Index r1) {
      detail::solve_right_lower_trans_here(r1 - r0, w, a11, lda, a21 + r0, lda);
    });
    syrk_lower<float>(rest, w, -1.0f, a21, lda, 1.0f, a + k1 + k1 * lda, lda);  // A22 -= L21·L21ᵀ
  }
  return true;
}

/// In place: the upper triangle of T[n×n] (column-major, non-unit diagonal) becomes
/// T⁻¹ (TRTRI); false when a diagonal entry is exactly zero (the Eigen build: the
/// zero pivot's 1/0 spreads as inf/NaN instead). Entries below the diagonal are not read.
///
/// Above two factor blocks, one level of [A B; 0 C]⁻¹ = [A⁻¹  −A⁻¹·B·C⁻¹; 0  C⁻¹]:
/// A and C inverted at once on two threads, then the two triangular products on
/// fixed row and column chunks across lowbit's pool — n³/3 flops as TRTRI, of which
/// three quarters are in the products.
inline bool invert_upper(Index n, float* a, Index lda) {
  if (n <= 2 * detail::factor_block) return detail::invert_upper_here(n, a, lda);
  const Index h = n / 2;
  float* const ta = a;                 // A: h × h
  float* const tb = a + h * lda;       // B: h × (n − h)
  float* const tc = a + h + h * lda;   // C: (n − h) × (n − h)
  char inverted[2] = {0, 0};
  autograd::parallel_for(2, 1, [&](Index i0, Index i1, int) {
    for (Index i = i0; i < i1; ++i)
      inverted[i] = i == 0 ? detail::invert_upper_here(h, ta, lda) : detail::invert_upper_here(n - h, tc, lda);
  });
  if (!inverted[0] || !inverted[1]) return false;
  autograd::parallel_chunks(h, detail::factor_block, [&](Index r0, Index r1) {  // B ← B·C⁻¹, row by row
    detail::multiply_upper_here(false, r1 - r0, n - h, 1.0f, tc, lda, tb + r0, lda);
  });
  autograd::parallel_chunks(n - h, detail::factor_block, [&](Index c0, Index c1) {  // B ← −A⁻¹·B, column by column
    detail::multiply_upper_here(true, h, c1 - c0, -1.0f, ta, lda, tb + c0 * lda, lda);
  });
  return true;
}

}  // namespace lowbit::blas
