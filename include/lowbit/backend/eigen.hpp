// backend::Eigen — the CPU backend of the GPTQ solver and the Hessian accumulator.
//
// A backend supplies the three heavy steps of GPTQ and nothing else:
//   * a symmetric rank-k accumulator (H ← β·H + α·XᵀX, lower triangle kept);
//   * the upper Cholesky factor U of H⁻¹ (UᵀU = H⁻¹) of a damped Hessian;
//   * the lazy-batch trailing update W[:, i2:] -= Err · U[i1:i2, i2:].
// The column loop (quantize, error feedback inside a block) stays on the host in
// gptq/gptq.hpp, shared by every backend, so all backends quantize identically.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#include <Eigen/Core>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "lowbit/backend/blas.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/kernels.hpp"

namespace lowbit::backend {

namespace detail {

/// dst = src between storage orders, 32 × 32 tiles at a time so that the strided
/// side stays within a few pages (Eigen's plain assignment walks it element by element).
template <class Src, class Dst>
void copy_tiled(const Src& src, Dst&& dst) {
  constexpr Index tile = 32;
  const Index rows = src.rows(), cols = src.cols();
  for (Index r0 = 0; r0 < rows; r0 += tile)
    for (Index c0 = 0; c0 < cols; c0 += tile) {
      const Index r1 = std::min(r0 + tile, rows), c1 = std::min(c0 + tile, cols);
      dst.block(r0, c0, r1 - r0, c1 - c0) = src.block(r0, c0, r1 - r0, c1 - c0);
    }
}

// Huge-page advice and prefaulting live with the kernels (quant/kernels.hpp).
using kernels::advise_huge_pages;
using kernels::prefault;

/// A float buffer for the n² workspaces. Large ones are 2 MiB aligned and, on
/// Linux, advised to use transparent huge pages: on a virtual machine a page
/// fault can cost ~10 µs, so first touching 64 MiB in 4 KiB pages costs more
/// than the arithmetic done on it.
class BigBuffer {
 public:
  BigBuffer() = default;
  BigBuffer(const BigBuffer&) = delete;
  BigBuffer& operator=(const BigBuffer&) = delete;
  ~BigBuffer() { std::free(data_); }

  [[nodiscard]] float* data() { return data_; }
  [[nodiscard]] const float* data() const { return data_; }

  /// Room for `count` floats (contents undefined after growing).
  float* resize(std::size_t count) {
    if (count <= capacity_) return data_;
    std::free(data_);
    constexpr std::size_t huge = std::size_t{2} << 20;
    const std::size_t bytes = count * sizeof(float);
    const std::size_t align = bytes >= 2 * huge ? huge : 64;
    const std::size_t rounded = (bytes + align - 1) / align * align;
    data_ = static_cast<float*>(std::aligned_alloc(align, rounded));
    if (data_ == nullptr) throw std::bad_alloc();
    if (align == huge) prefault(data_, rounded);
    capacity_ = count;
    return data_;
  }

 private:
  float* data_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace detail

/// The default backend: the CPU, its dense steps through lowbit::blas (OpenBLAS, or
/// Eigen's kernels with LOWBIT_BLAS=none); the trailing GEMM splits over lowbit's pool.
struct Eigen {
  static constexpr const char* name = "eigen";

  /// Always usable; `why` stays untouched.
  static bool available(std::string* /*why*/ = nullptr) { return true; }

  /// H ← β·H + α·XᵀX on the lower triangle, accumulated in Scalar (float or double).
  template <class Scalar>
  class SymmetricAccumulator {
   public:
    using Matrix = ::Eigen::Matrix<Scalar, ::Eigen::Dynamic, ::Eigen::Dynamic>;

    explicit SymmetricAccumulator(Index n) : h_(Matrix::Zero(n, n)) {}

    /// x: tokens × n, row-major, i.e. Xᵀ as a column-major n × tokens matrix.
    void update(ConstMatrixView x, double alpha, double beta) {
      const Index n = h_.rows();
      if constexpr (std::is_same_v<Scalar, float>) {
        blas::syrk_lower<float>(n, x.rows, static_cast<float>(alpha), x.data, x.cols, static_cast<float>(beta),
                                h_.data(), n);
      } else {
        // Widen in slabs of tokens so that the double copy stays small.
        constexpr Index slab = 512;
        for (Index t0 = 0; t0 < x.rows; t0 += slab) {
          const Index k = std::min(slab, x.rows - t0);
          const ::Eigen::Map<const ::Eigen::MatrixXf, 0, ::Eigen::OuterStride<>> xt(x.row(t0), n, k,
                                                                                   ::Eigen::OuterStride<>(x.cols));
          const Matrix wide = xt.template cast<Scalar>();
          blas::syrk_lower<Scalar>(n, k, static_cast<Scalar>(alpha), wide.data(), n,
                                   static_cast<Scalar>(t0 == 0 ? beta : 1.0), h_.data(), n);
        }
      }
    }

    /// The full symmetric matrix in float.
    [[nodiscard]] ::Eigen::MatrixXf full() const {
      ::Eigen::MatrixXf out = h_.template cast<float>();
      out.template triangularView<::Eigen::StrictlyUpper>() = out.transpose();
      return out;
    }

    [[nodiscard]] Index size() const { return h_.rows(); }

   private:
    Matrix h_;
  };

  /// Holds the working weights (column-major rows × cols, columns in the solver's
  /// order) and U, the upper Cholesky factor of the damped H⁻¹.
  class GptqWorkspace {
   public:
    using RowMajorMatrix = ::Eigen::Matrix<float, ::Eigen::Dynamic, ::Eigen::Dynamic, ::Eigen::RowMajor>;

    /// Computes U for the Hessian as GPTQ uses it: H with its columns (and rows)
    /// in processing order perm (empty: as is), zero diagonal entries (dead
    /// columns) set to 1, and damp added to the diagonal. Only H's lower triangle
    /// is read, as torch.linalg.cholesky does. Returns false with a reason when
    /// that matrix is not numerically positive definite.
    ///
    /// The reference computes chol(H) → H⁻¹ → chol(H⁻¹, upper): three n³ steps.
    /// The same U comes from one Cholesky of H with rows and columns reversed:
    /// JHJ = L̃L̃ᵀ gives H = ŨŨᵀ with Ũ = JL̃J upper, so H⁻¹ = (Ũ⁻¹)ᵀŨ⁻¹ and
    /// U = Ũ⁻¹ (a triangular inverse, n³/3 flops). All in one n × n buffer.
    bool factor_inverse(const ::Eigen::MatrixXf& h, const std::vector<Index>& perm, float damp, std::string& why) {
      const Index n = h.rows();
      n_ = n;
      u_buf_.resize(static_cast<std::size_t>(n * n));
      auto m = u();
      if (perm.empty()) {
        m = h.reverse();
      } else {
        for (Index j = 0; j < n; ++j) {
          const Index src = perm[static_cast<std::size_t>(n - 1 - j)];
          for (Index i = 0; i < n; ++i) m(i, j) = h(perm[static_cast<std::size_t>(n - 1 - i)], src);
        }
      }
      for (Index d = 0; d < n; ++d) {
        float& x = m(d, d);
        x = (x == 0.0f ? 1.0f : x) + damp;
      }
      if (!blas::cholesky_lower(n, m.data(), n)) {
        why = "Cholesky factorization failed: H is not positive definite";
        return false;
      }
      m.reverseInPlace();  // JL̃J: upper
      m.template triangularView<::Eigen::StrictlyLower>().setZero();
      if (!blas::invert_upper(n, m.data(), n) || !m.allFinite() || (m.diagonal().array() <= 0.0f).any()) {
        why = "inverse Cholesky factor is not finite: H is numerically singular";
        return false;
      }
      return true;
    }

    /// The working weights: column p = W[:, perm[p]] (zero for dead columns),
    /// row-major like the input, so that loading it and returning Q need no
    /// transpose; the column loop works on column-major copies of one block.
    void load_weights(ConstMatrixView src, const std::vector<Index>& perm, const std::vector<bool>& dead) {
      const Index rows = src.rows, cols = src.cols;
      rows_ = rows;
      w_buf_.resize(static_cast<std::size_t>(rows * cols));
      float* out = w_buf_.data();
      bool any_dead = false;
      for (bool d : dead) any_dead = any_dead || d;
      for (Index r = 0; r < rows; ++r) {
        const float* in = src.row(r);
        float* o = out + r * cols;
        if (perm.empty() && !any_dead) {
          std::copy(in, in + cols, o);
          continue;
        }
        for (Index p = 0; p < cols; ++p) {
          const Index c = perm.empty() ? p : perm[static_cast<std::size_t>(p)];
          o[p] = dead[static_cast<std::size_t>(c)] ? 0.0f : in[c];
        }
      }
    }

    /// GPTQ treats each row of W on its own once U is known, so the column loop may
    /// run on disjoint row ranges at once: every call below names its rows [r0, r1).
    static constexpr bool splits_rows = true;

    /// Quantized columns [i1, i1 + q.cols()) of rows [r0, r0 + q.rows()) once their
    /// block is done: the working copy of those columns is never read again, so Q
    /// takes its place.
    void store_quantized(Index i1, const ::Eigen::MatrixXf& q, Index r0) {
      detail::copy_tiled(q, w().block(r0, i1, q.rows(), q.cols()));
    }

    /// Q (rows × cols, row-major, processing order) after the last block.
    [[nodiscard]] ::Eigen::Map<const RowMajorMatrix> quantized() const { return w(); }

    /// Columns [c0, c1) of rows [r0, r1) of the working weights as they are now
    /// (column-major copy).
    [[nodiscard]] ::Eigen::MatrixXf columns(Index c0, Index c1, Index r0, Index r1) const {
      ::Eigen::MatrixXf out(r1 - r0, c1 - c0);
      detail::copy_tiled(w().block(r0, c0, r1 - r0, c1 - c0), out);
      return out;
    }

    /// U[i1:i2, i1:i2].
    [[nodiscard]] ::Eigen::MatrixXf u_block(Index i1, Index i2) const {
      return u().block(i1, i1, i2 - i1, i2 - i1);
    }

    /// W[r0:r0+err.rows(), i2:] -= Err · U[i1:i2, i2:] — the one GEMM of each lazy
    /// batch, on the calling thread (the caller spreads row ranges over the pool).
    void trailing_update(Index i1, Index i2, const ::Eigen::MatrixXf& err, Index r0) {
      const Index rest = n_ - i2;
      if (rest <= 0) return;
      // In row-major terms: err (column-major rows × count) is the transpose of a
      // row-major count × rows matrix, and U's column-major block is the transpose of
      // its row-major view, so both operands go in transposed.
      const float* ut = u_buf_.data() + i2 * n_ + i1;
      blas::gemm<float>(err.rows(), rest, i2 - i1, -1.0f, err.data(), err.rows(), blas::Trans::yes, ut, n_,
                        blas::Trans::yes, 1.0f, w_buf_.data() + r0 * n_ + i2, n_, /*parallel=*/false);
    }

    [[nodiscard]] ::Eigen::Map<::Eigen::MatrixXf> u() { return {u_buf_.data(), n_, n_}; }
    [[nodiscard]] ::Eigen::Map<const ::Eigen::MatrixXf> u() const { return {u_buf_.data(), n_, n_}; }

   private:
    [[nodiscard]] ::Eigen::Map<RowMajorMatrix> w() { return {w_buf_.data(), rows_, n_}; }
    [[nodiscard]] ::Eigen::Map<const RowMajorMatrix> w() const { return {w_buf_.data(), rows_, n_}; }

    detail::BigBuffer u_buf_, w_buf_;
    Index n_ = 0, rows_ = 0;
  };
};

}  // namespace lowbit::backend
