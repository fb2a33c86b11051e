#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, configures,
# builds (library, tests, benchmarks, examples) and runs ctest.
# Usage: scripts/test.sh        (LOWBIT_BUILD_DIR, default build/release; LOWBIT_JOBS)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh clang
build=${LOWBIT_BUILD_DIR:-build/release}
jobs=${LOWBIT_JOBS:-$(nproc)}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOWBIT_BUILD_TESTS=ON \
      -DLOWBIT_BUILD_BENCHMARKS=ON -DLOWBIT_BUILD_EXAMPLES=ON
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs"
