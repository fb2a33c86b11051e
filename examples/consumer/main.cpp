// Built against an installed lowbit by the test suite (package.consumer_* test).
#include <cstdio>
#include <vector>

#include <lowbit/lowbit.hpp>

int main() {
  std::vector<float> w = {0.1f, -0.4f, 0.25f, 0.7f, -0.05f, 0.3f};
  lowbit::Quantizer<lowbit::Int<4>, lowbit::PerChannel, lowbit::HistogramMse<>> q;
  const auto t = q.quantize(lowbit::ConstMatrixView(w.data(), 2, 3));
  std::vector<float> back(w.size());
  t.dequantize(lowbit::MatrixView(back.data(), 2, 3));
  std::printf("lowbit %s: scales %g %g, first value %g -> %g\n", lowbit::version, t.params.scales[0],
              t.params.scales[1], w[0], back[0]);
  // One GEMM through lowbit::blas: links against the BLAS the package was built with.
  const std::vector<float> a = {1, 2, 3, 4};  // 2x2
  std::vector<float> c(4);
  lowbit::blas::gemm<float>(2, 2, 2, 1.0f, a.data(), 2, lowbit::blas::Trans::no, a.data(), 2,
                            lowbit::blas::Trans::yes, 0.0f, c.data(), 2);  // A·Aᵀ = [5 11; 11 25]
  std::printf("blas %s: A*A^T = %g %g %g %g\n", lowbit::blas::implementation, c[0], c[1], c[2], c[3]);
  const bool gemm_ok = c[0] == 5 && c[1] == 11 && c[2] == 11 && c[3] == 25;
  return t.codes.size() == w.size() && gemm_ok ? 0 : 1;
}
