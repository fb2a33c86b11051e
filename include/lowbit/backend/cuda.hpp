// backend::Cuda — cuBLAS + cuSOLVER for the heavy steps of GPTQ and the Hessian.
//
// Host code only (compiles with the C++ compiler, links CUDA::cudart, cublas and
// cusolver; CMake defines LOWBIT_HAS_CUDA when configured with -DLOWBIT_CUDA=ON):
//   * Hessian: cublas{S,D}syrk, H ← β·H + α·XᵀX on the device, lower triangle;
//   * U: cusolverDn potrf → potri → potrf, the reference's chol → cholesky_inverse
//     → chol(upper) (the upper factor of H⁻¹ is the transpose of its lower one);
//   * lazy-batch trailing update: cublasSgemm, W[:, i2:] -= Err · U[i1:i2, i2:].
// The per-column loop stays on the host (gptq/gptq.hpp), shared with backend::Eigen:
// each block ships rows × block_size floats each way, W and U stay on the device.
#pragma once

#if !defined(LOWBIT_HAS_CUDA)
#error "lowbit/backend/cuda.hpp needs CUDA: configure with -DLOWBIT_CUDA=ON"
#endif

#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <Eigen/Core>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit::backend {

namespace cuda_detail {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) lowbit::detail::fail("CUDA backend: ", what, " failed: ", cudaGetErrorString(e));
}
inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) lowbit::detail::fail("CUDA backend: ", what, " failed with cuBLAS status ", int(s));
}
inline void check(cusolverStatus_t s, const char* what) {
  if (s != CUSOLVER_STATUS_SUCCESS)
    lowbit::detail::fail("CUDA backend: ", what, " failed with cuSOLVER status ", int(s));
}

inline int to_int(Index n, const char* what) {
  lowbit::detail::check(n >= 0 && n <= std::numeric_limits<int>::max(), "CUDA backend: ", what, " = ", n,
                        " does not fit the 32-bit cuBLAS interface");
  return static_cast<int>(n);
}

/// Device memory of `count` T's (RAII).
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) { resize(count); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  void resize(std::size_t count) {
    if (count <= count_) return;
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    count_ = 0;
    check(cudaMalloc(reinterpret_cast<void**>(&ptr_), count * sizeof(T)), "cudaMalloc");
    count_ = count;
  }
  void upload(const T* host, std::size_t count, std::size_t offset = 0) {
    check(cudaMemcpy(ptr_ + offset, host, count * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy to device");
  }
  void download(T* host, std::size_t count, std::size_t offset = 0) const {
    check(cudaMemcpy(host, ptr_ + offset, count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
  }
  [[nodiscard]] T* get() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
};

class Blas {
 public:
  Blas() { check(cublasCreate(&h_), "cublasCreate"); }
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  ~Blas() { cublasDestroy(h_); }
  [[nodiscard]] cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_{};
};

class Solver {
 public:
  Solver() { check(cusolverDnCreate(&h_), "cusolverDnCreate"); }
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;
  ~Solver() { cusolverDnDestroy(h_); }
  [[nodiscard]] cusolverDnHandle_t get() const { return h_; }

 private:
  cusolverDnHandle_t h_{};
};

}  // namespace cuda_detail

struct Cuda {
  static constexpr const char* name = "cuda";

  /// True when a CUDA device is present; otherwise `why` says what is missing.
  static bool available(std::string* why = nullptr) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      if (why != nullptr)
        *why = e != cudaSuccess ? std::string("no usable CUDA device (") + cudaGetErrorString(e) + ")"
                                : std::string("no CUDA device found");
      return false;
    }
    return true;
  }

  /// H ← β·H + α·XᵀX on the device (SYRK on the lower triangle).
  template <class Scalar>
  class SymmetricAccumulator {
   public:
    explicit SymmetricAccumulator(Index n) : n_(n), h_(static_cast<std::size_t>(n * n)) {
      cuda_detail::check(cudaMemset(h_.get(), 0, static_cast<std::size_t>(n * n) * sizeof(Scalar)), "cudaMemset");
    }

    /// x: tokens × n row-major = Xᵀ column-major (n × tokens), so H += α·(Xᵀ)(Xᵀ)ᵀ.
    void update(ConstMatrixView x, double alpha, double beta) {
      const int n = cuda_detail::to_int(n_, "in_features"), k = cuda_detail::to_int(x.rows, "tokens");
      x_.resize(static_cast<std::size_t>(x.size()));
      if constexpr (std::is_same_v<Scalar, float>) {
        x_.upload(x.data, static_cast<std::size_t>(x.size()));
      } else {
        std::vector<double> wide(x.data, x.data + x.size());
        x_.upload(wide.data(), wide.size());
      }
      const Scalar a = static_cast<Scalar>(alpha), b = static_cast<Scalar>(beta);
      if constexpr (std::is_same_v<Scalar, float>)
        cuda_detail::check(cublasSsyrk(blas_.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, k, &a, x_.get(), n, &b,
                                       h_.get(), n),
                           "cublasSsyrk");
      else
        cuda_detail::check(cublasDsyrk(blas_.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, k, &a, x_.get(), n, &b,
                                       h_.get(), n),
                           "cublasDsyrk");
    }

    [[nodiscard]] ::Eigen::MatrixXf full() const {
      ::Eigen::Matrix<Scalar, ::Eigen::Dynamic, ::Eigen::Dynamic> h(n_, n_);
      h_.download(h.data(), static_cast<std::size_t>(n_ * n_));
      ::Eigen::MatrixXf out = h.template cast<float>();
      out.template triangularView<::Eigen::StrictlyUpper>() = out.transpose();
      return out;
    }

    [[nodiscard]] Index size() const { return n_; }

   private:
    Index n_;
    cuda_detail::Blas blas_;
    cuda_detail::DeviceBuffer<Scalar> h_;
    cuda_detail::DeviceBuffer<Scalar> x_;
  };

  /// W (column-major, processing order) and L = Uᵀ on the device; host copies of
  /// L (for the diagonal blocks the column loop reads) and of Q.
  class GptqWorkspace {
   public:
    bool factor_inverse(const ::Eigen::MatrixXf& h, const std::vector<Index>& perm, float damp, std::string& why) {
      n_ = h.rows();
      const int n = cuda_detail::to_int(n_, "in_features");
      ::Eigen::MatrixXf hp(n_, n_);
      for (Index j = 0; j < n_; ++j) {
        const Index cj = perm.empty() ? j : perm[static_cast<std::size_t>(j)];
        for (Index i = 0; i < n_; ++i) hp(i, j) = h(perm.empty() ? i : perm[static_cast<std::size_t>(i)], cj);
      }
      for (Index d = 0; d < n_; ++d) {
        float& x = hp(d, d);
        x = (x == 0.0f ? 1.0f : x) + damp;
      }
      l_dev_.resize(static_cast<std::size_t>(n_ * n_));
      l_dev_.upload(hp.data(), static_cast<std::size_t>(n_ * n_));
      cuda_detail::DeviceBuffer<int> info(1);
      int lwork = 0, lwork_inv = 0;
      const cublasFillMode_t lower = CUBLAS_FILL_MODE_LOWER;
      cuda_detail::check(cusolverDnSpotrf_bufferSize(solver_.get(), lower, n, l_dev_.get(), n, &lwork),
                         "cusolverDnSpotrf_bufferSize");
      cuda_detail::check(cusolverDnSpotri_bufferSize(solver_.get(), lower, n, l_dev_.get(), n, &lwork_inv),
                         "cusolverDnSpotri_bufferSize");
      cuda_detail::DeviceBuffer<float> work(static_cast<std::size_t>(std::max({lwork, lwork_inv, 1})));
      auto failed = [&](const char* step) {
        int h_info = 0;
        info.download(&h_info, 1);
        if (h_info != 0) why = std::string(step) + " failed (info " + std::to_string(h_info) + "): H is not positive definite";
        return h_info != 0;
      };
      // chol(H) → H⁻¹ (lower) → chol(H⁻¹) = L, and U = Lᵀ.
      cuda_detail::check(cusolverDnSpotrf(solver_.get(), lower, n, l_dev_.get(), n, work.get(), lwork, info.get()),
                         "cusolverDnSpotrf");
      if (failed("Cholesky factorization")) return false;
      cuda_detail::check(
          cusolverDnSpotri(solver_.get(), lower, n, l_dev_.get(), n, work.get(), lwork_inv, info.get()),
          "cusolverDnSpotri");
      if (failed("Cholesky inverse")) return false;
      cuda_detail::check(cusolverDnSpotrf(solver_.get(), lower, n, l_dev_.get(), n, work.get(), lwork, info.get()),
                         "cusolverDnSpotrf");
      if (failed("Cholesky factorization of H⁻¹")) return false;
      l_host_.resize(n_, n_);
      l_dev_.download(l_host_.data(), static_cast<std::size_t>(n_ * n_));
      l_host_.template triangularView<::Eigen::StrictlyUpper>().setZero();
      if (!l_host_.allFinite() || (l_host_.diagonal().array() <= 0.0f).any()) {
        why = "inverse Cholesky factor is not finite: H is numerically singular";
        return false;
      }
      return true;
    }

    void load_weights(ConstMatrixView src, const std::vector<Index>& perm, const std::vector<bool>& dead) {
      rows_ = src.rows;
      q_.resize(rows_, n_);  // the permuted working copy, staged on the host
      for (Index p = 0; p < n_; ++p) {
        const Index c = perm.empty() ? p : perm[static_cast<std::size_t>(p)];
        const bool zero = dead[static_cast<std::size_t>(c)];
        for (Index r = 0; r < rows_; ++r) q_(r, p) = zero ? 0.0f : src(r, c);
      }
      w_dev_.resize(static_cast<std::size_t>(rows_ * n_));
      w_dev_.upload(q_.data(), static_cast<std::size_t>(rows_ * n_));
    }

    // The device runs all rows at once: GPTQ's column loop calls it with [0, rows).
    static constexpr bool splits_rows = false;

    [[nodiscard]] ::Eigen::MatrixXf columns(Index c0, Index c1, Index r0, Index r1) const {
      all_rows(r0, r1);
      ::Eigen::MatrixXf out(rows_, c1 - c0);
      w_dev_.download(out.data(), static_cast<std::size_t>(out.size()), static_cast<std::size_t>(c0 * rows_));
      return out;
    }

    /// U[i1:i2, i1:i2] = L[i1:i2, i1:i2]ᵀ.
    [[nodiscard]] ::Eigen::MatrixXf u_block(Index i1, Index i2) const {
      return l_host_.block(i1, i1, i2 - i1, i2 - i1).transpose();
    }

    /// W[:, i2:] -= Err · U[i1:i2, i2:] = Err · (L[i2:, i1:i2])ᵀ.
    void trailing_update(Index i1, Index i2, const ::Eigen::MatrixXf& err, Index r0) {
      all_rows(r0, r0 + err.rows());
      const Index rest = n_ - i2;
      if (rest <= 0) return;
      const int m = cuda_detail::to_int(rows_, "rows"), nn = cuda_detail::to_int(rest, "columns"),
                k = cuda_detail::to_int(i2 - i1, "block"), ld = cuda_detail::to_int(n_, "in_features");
      err_dev_.resize(static_cast<std::size_t>(err.size()));
      err_dev_.upload(err.data(), static_cast<std::size_t>(err.size()));
      const float minus_one = -1.0f, one = 1.0f;
      cuda_detail::check(cublasSgemm(blas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, m, nn, k, &minus_one, err_dev_.get(), m,
                                     l_dev_.get() + i2 + i1 * n_, ld, &one, w_dev_.get() + i2 * rows_, m),
                         "cublasSgemm");
    }

    void store_quantized(Index i1, const ::Eigen::MatrixXf& q, Index r0) {
      all_rows(r0, r0 + q.rows());
      q_.middleCols(i1, q.cols()) = q;
    }

    [[nodiscard]] ::Eigen::Map<const ::Eigen::MatrixXf> quantized() const { return {q_.data(), rows_, n_}; }

   private:
    void all_rows(Index r0, Index r1) const {
      lowbit::detail::check(r0 == 0 && r1 == rows_, "CUDA GPTQ workspace: rows [", r0, ", ", r1,
                            ") asked of a workspace that runs all ", rows_, " rows at once");
    }

    Index n_ = 0, rows_ = 0;
    cuda_detail::Blas blas_;
    cuda_detail::Solver solver_;
    cuda_detail::DeviceBuffer<float> l_dev_, w_dev_, err_dev_;
    ::Eigen::MatrixXf l_host_, q_;
  };
};

}  // namespace lowbit::backend
