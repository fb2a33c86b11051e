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
  return t.codes.size() == w.size() ? 0 : 1;
}
