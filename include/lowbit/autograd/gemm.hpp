// gemm: C = alpha·op(A)·op(B) + beta·C on row-major buffers, Eigen kernels split across threads.
#pragma once

#include <Eigen/Core>

#include "lowbit/autograd/thread_pool.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit::autograd {

enum class Trans { no, yes };

namespace detail {

template <class S>
using RowMat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using ConstMap = Eigen::Map<const RowMat<S>, 0, Eigen::OuterStride<>>;
template <class S>
using MutMap = Eigen::Map<RowMat<S>, 0, Eigen::OuterStride<>>;

// Stored matrix of op(X) (rows × cols) restricted to op-rows [r0, r1).
template <class S>
ConstMap<S> op_rows(const S* x, Index ld, Trans t, Index r0, Index r1, Index cols) {
  if (t == Trans::no) return ConstMap<S>(x + r0 * ld, r1 - r0, cols, Eigen::OuterStride<>(ld));
  return ConstMap<S>(x + r0, cols, r1 - r0, Eigen::OuterStride<>(ld));  // transposed later
}
template <class S>
ConstMap<S> op_cols(const S* x, Index ld, Trans t, Index rows, Index c0, Index c1) {
  if (t == Trans::no) return ConstMap<S>(x + c0, rows, c1 - c0, Eigen::OuterStride<>(ld));
  return ConstMap<S>(x + c0 * ld, c1 - c0, rows, Eigen::OuterStride<>(ld));
}

template <class S, class A, class B>
void gemm_block(MutMap<S> c, const A& a, const B& b, S alpha, S beta) {
  if (beta == S(0))
    c.noalias() = alpha * (a * b);
  else {
    if (beta != S(1)) c *= beta;
    c.noalias() += alpha * (a * b);
  }
}

template <class S>
void gemm_serial(Index m, Index n, Index k, const S* a, Index lda, Trans ta, const S* b, Index ldb,
                 Trans tb, S* c, Index ldc, S alpha, S beta, Index m0, Index m1, Index n0, Index n1) {
  MutMap<S> cm(c + m0 * ldc + n0, m1 - m0, n1 - n0, Eigen::OuterStride<>(ldc));
  const auto am = op_rows(a, lda, ta, m0, m1, k);
  const auto bm = op_cols(b, ldb, tb, k, n0, n1);
  (void)m;
  (void)n;
  if (ta == Trans::no && tb == Trans::no) gemm_block<S>(cm, am, bm, alpha, beta);
  else if (ta == Trans::no) gemm_block<S>(cm, am, bm.transpose(), alpha, beta);
  else if (tb == Trans::no) gemm_block<S>(cm, am.transpose(), bm, alpha, beta);
  else gemm_block<S>(cm, am.transpose(), bm.transpose(), alpha, beta);
}

}  // namespace detail

/// C[m×n] = alpha·op(A)·op(B) + beta·C, all row-major with leading dimensions lda/ldb/ldc;
/// op(A) is m×k, op(B) is k×n. Splits the longer side of C across the thread pool
/// when the product is big enough to be worth it; `parallel = false` keeps it on
/// the calling thread (used inside per-head loops that are already parallel).
template <class S>
void gemm(Index m, Index n, Index k, const S* a, Index lda, Trans ta, const S* b, Index ldb, Trans tb,
          S* c, Index ldc, S alpha = S(1), S beta = S(0), bool parallel = true) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    detail::MutMap<S> cm(c, m, n, Eigen::OuterStride<>(ldc));
    if (beta == S(0)) cm.setZero();
    else cm *= beta;
    return;
  }
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (!parallel || flops < 4e6 || num_threads() == 1) {
    detail::gemm_serial(m, n, k, a, lda, ta, b, ldb, tb, c, ldc, alpha, beta, 0, m, 0, n);
    return;
  }
  if (m >= n)
    parallel_for(m, 32, [&](Index b0, Index b1, int) {
      detail::gemm_serial(m, n, k, a, lda, ta, b, ldb, tb, c, ldc, alpha, beta, b0, b1, 0, n);
    });
  else
    parallel_for(n, 64, [&](Index b0, Index b1, int) {
      detail::gemm_serial(m, n, k, a, lda, ta, b, ldb, tb, c, ldc, alpha, beta, 0, m, b0, b1);
    });
}

}  // namespace lowbit::autograd
