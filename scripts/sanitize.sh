#!/usr/bin/env bash
# The readers', quantizers' and GPTQ's tests under AddressSanitizer and
# UndefinedBehaviorSanitizer (tests/CMakeLists.txt, LOWBIT_SANITIZER_TESTS), in a
# build folder of their own; then the fuzz targets for LOWBIT_FUZZ_SECONDS each.
# scripts/test.sh runs the core/io/quant part inside the suite; this script adds
# GPTQ's tests, and runs the fuzzers longer on request:
#   scripts/sanitize.sh                          # sanitized tests + 10 s per fuzzer
#   LOWBIT_FUZZ_SECONDS=300 scripts/sanitize.sh  # the 5-minute fuzz runs of docs/reliability.md
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh clang
build=${LOWBIT_SANITIZE_BUILD_DIR:-build/sanitize}
jobs=${LOWBIT_JOBS:-$(nproc)}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOWBIT_BUILD_TESTS=ON -DLOWBIT_BUILD_BENCHMARKS=OFF \
      -DLOWBIT_BUILD_EXAMPLES=OFF -DLOWBIT_CUDA=OFF -DLOWBIT_SANITIZER_TESTS=ON \
      -DLOWBIT_SANITIZER_AREAS="core;io;quant;gptq" \
      -DLOWBIT_FUZZ_SECONDS="${LOWBIT_FUZZ_SECONDS:-10}"
cmake --build "$build" -j "$jobs" --target lowbit_sanitizer_tests
cd "$build"
ctest --output-on-failure -j "$jobs" -R '^(sanitized\.|fuzz\.)'
