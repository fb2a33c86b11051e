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
#include <cstddef>
#include <type_traits>

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
  /// Panel i of parallel_for's order: 0, last, 1, last-1, … — consecutive pairs carry
  /// equal work (a panel's work falls linearly with its position), so the
  /// pool's contiguous shares are balanced.
  [[nodiscard]] Index zigzag(Index i) const { return i % 2 == 0 ? i / 2 : count - 1 - i / 2; }
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

/// In place: the lower triangle of A[n×n] (column-major) becomes L, A = L·Lᵀ (POTRF);
/// false when A is not numerically positive definite.
inline bool cholesky_lower(Index n, float* a, Index lda) {
  if (n == 0) return true;
#if defined(LOWBIT_HAS_BLAS)
  detail::use_one_blas_thread();
  const int in = detail::blas_int(n, "n"), ia = detail::blas_int(lda, "lda");
  int info = 0;
  spotrf_("L", &in, a, &ia, &info, 1);
  return info == 0;
#else
  return eigen::cholesky_lower(n, a, lda);
#endif
}

/// In place: the upper triangle of T[n×n] (column-major, non-unit diagonal) becomes
/// T⁻¹ (TRTRI); false when a diagonal entry is exactly zero. Entries below the
/// diagonal are not read.
inline bool invert_upper(Index n, float* a, Index lda) {
  if (n == 0) return true;
#if defined(LOWBIT_HAS_BLAS)
  detail::use_one_blas_thread();
  const int in = detail::blas_int(n, "n"), ia = detail::blas_int(lda, "lda");
  int info = 0;
  strtri_("U", "N", &in, a, &ia, &info, 1, 1);
  return info == 0;
#else
  eigen::invert_upper(n, a, lda);
  return true;
#endif
}

}  // namespace lowbit::blas
