#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, configures,
# builds (library, tests, benchmarks, examples) and runs ctest.
# Usage: scripts/test.sh        (LOWBIT_BUILD_DIR, default build/release; LOWBIT_JOBS)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh clang
build=${LOWBIT_BUILD_DIR:-build/release}
jobs=${LOWBIT_JOBS:-$(nproc)}
# The CUDA backend is compiled (and its tests skip without a GPU) wherever the
# toolkit is installed; LOWBIT_CUDA=OFF in the environment turns that off.
cuda=OFF
if [ "${LOWBIT_CUDA:-}" != OFF ] && [ -x /usr/local/cuda/bin/nvcc ]; then cuda=ON; fi
# The readers' and quantizers' tests also run under ASan+UBSan (sanitized.*), and
# every reader's fuzz target for 10 s (fuzz.*): docs/reliability.md.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOWBIT_BUILD_TESTS=ON \
      -DLOWBIT_BUILD_BENCHMARKS=ON -DLOWBIT_BUILD_EXAMPLES=ON -DLOWBIT_CUDA=$cuda \
      -DCUDAToolkit_ROOT=/usr/local/cuda \
      -DLOWBIT_SANITIZER_TESTS="${LOWBIT_SANITIZER_TESTS:-ON}" -DLOWBIT_SANITIZER_AREAS="core;io;quant"
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs"
