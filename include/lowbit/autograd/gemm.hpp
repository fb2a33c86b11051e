// gemm: C = alpha·op(A)·op(B) + beta·C on row-major buffers — the autograd engine's
// spelling of lowbit::blas::gemm (OpenBLAS or Eigen kernels, split across the pool).
#pragma once

#include "lowbit/backend/blas.hpp"

namespace lowbit::autograd {

using Trans = blas::Trans;

/// C[m×n] = alpha·op(A)·op(B) + beta·C, all row-major with leading dimensions lda/ldb/ldc;
/// op(A) is m×k, op(B) is k×n. Splits the longer side of C across the thread pool
/// when the product is big enough to be worth it; `parallel = false` keeps it on
/// the calling thread (used inside per-head loops that are already parallel).
template <class S>
void gemm(Index m, Index n, Index k, const S* a, Index lda, Trans ta, const S* b, Index ldb, Trans tb,
          S* c, Index ldc, S alpha = S(1), S beta = S(0), bool parallel = true) {
  blas::gemm<S>(m, n, k, alpha, a, lda, ta, b, ldb, tb, beta, c, ldc, parallel);
}

}  // namespace lowbit::autograd
