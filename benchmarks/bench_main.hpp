// The main() of lowbit's benchmark programs that do GEMMs: Google Benchmark's own,
// with the BLAS behind lowbit::blas (openblas or eigen) in the run's context, so
// that a figure always says which build made it.
#pragma once

#include <benchmark/benchmark.h>

#include <lowbit/backend/blas.hpp>

namespace bench {

inline int run_benchmarks(int argc, char** argv) {
  benchmark::AddCustomContext("blas", lowbit::blas::implementation);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace bench
