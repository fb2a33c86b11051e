// backend::Cuda against backend::Eigen: same codes, Q and losses to fp32 tolerance.
// Runs where lowbit was configured with -DLOWBIT_CUDA=ON and a GPU is present;
// otherwise reports a skip with the reason.
#include <doctest/doctest.h>

#include <string>

#include "gptq_test_util.hpp"

#if defined(LOWBIT_HAS_CUDA)
#include "lowbit/backend/cuda.hpp"
#endif

using namespace lowbit;
using lowbit::test::RowMatrix;

namespace {

bool cuda_ready() {
#if defined(LOWBIT_HAS_CUDA)
  std::string why;
  if (!backend::Cuda::available(&why)) {
    MESSAGE("skipped: CUDA backend built but " << why);
    return false;
  }
  return true;
#else
  MESSAGE("skipped: built without the CUDA backend (configure with -DLOWBIT_CUDA=ON)");
  return false;
#endif
}

#if defined(LOWBIT_HAS_CUDA)
template <class Format, class Granularity>
void compare_backends(const RowMatrix& w, const Hessian& h, GptqOptions o, Granularity g = {}) {
  const SolveResult cpu = Gptq<Format, Granularity, AbsMax, backend::Eigen>(o, g).quantize(ConstMatrixView(w), h);
  const SolveResult gpu = Gptq<Format, Granularity, AbsMax, backend::Cuda>(o, g).quantize(ConstMatrixView(w), h);
  REQUIRE(gpu.info() == Eigen::Success);
  CHECK(test::codes_reproduce_weights(gpu));
  Index differ = 0;
  for (std::size_t i = 0; i < cpu.codes.size(); ++i) differ += cpu.codes[i] != gpu.codes[i];
  // Rounding of a value within an ulp of a grid midpoint may differ: allow 0.1%.
  CHECK(differ <= static_cast<Index>(cpu.codes.size() / 1000));
  CHECK(gpu.after->objective == doctest::Approx(cpu.after->objective).epsilon(1e-3));
  CHECK(gpu.total_loss() == doctest::Approx(cpu.total_loss()).epsilon(1e-3));
}
#endif

}  // namespace

TEST_CASE("cuda backend: GPTQ equals the Eigen backend (per-channel, groups, act-order, dead column)") {
  if (!cuda_ready()) return;
#if defined(LOWBIT_HAS_CUDA)
  const RowMatrix w = test::gaussian_matrix(96, 320, 0.05f, 91);
  RowMatrix x = test::correlated_activations(1024, 320, 92);
  x.col(17).setZero();
  const Hessian h = test::hessian_of(x);
  GptqOptions o;
  compare_backends<Int<4>, PerChannel>(w, h, o);
  o.act_order = true;
  o.block_size = 64;
  compare_backends<Int<3>, PerGroup<>>(w, h, o, PerGroup<>{32});
  o.static_groups = true;
  compare_backends<GptqGrid<4>, PerGroup<>>(w, h, o, PerGroup<>{64});
#endif
}

TEST_CASE("cuda backend: Hessian accumulation equals the Eigen backend") {
  if (!cuda_ready()) return;
#if defined(LOWBIT_HAS_CUDA)
  const RowMatrix x = test::correlated_activations(700, 200, 93);
  HessianAccumulator<float, backend::Eigen> cpu(200);
  HessianAccumulator<float, backend::Cuda> gpu(200);
  HessianAccumulator<double, backend::Cuda> gpu64(200);
  for (Index t0 : {Index{0}, Index{300}}) {
    const Index k = t0 == 0 ? 300 : 400;
    const ConstMatrixView batch(x.row(t0).data(), k, 200);
    cpu.add(batch);
    gpu.add(batch);
    gpu64.add(batch);
  }
  const Hessian a = cpu.hessian(), b = gpu.hessian(), c = gpu64.hessian();
  const float scale = a.matrix.cwiseAbs().maxCoeff();
  CHECK((a.matrix - b.matrix).cwiseAbs().maxCoeff() < 1e-4f * scale);
  CHECK((a.matrix - c.matrix).cwiseAbs().maxCoeff() < 1e-4f * scale);
#endif
}
