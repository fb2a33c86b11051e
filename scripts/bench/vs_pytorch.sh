#!/usr/bin/env bash
# lowbit vs PyTorch 1.13 + OpenBLAS, interleaved: ROUNDS rounds (default 3), each
# running lowbit's benchmark and then PyTorch's on the same shapes and thread counts,
# so that both sides see the same machine load. Prints the raw lines; the medians go
# to docs/performance.md (*A BLAS under every GEMM*).
#   scripts/bench/vs_pytorch.sh [BUILD_DIR] > vs_pytorch.log
# Needs python3-torch and libopenblas0-pthread (Debian): torch then calls OpenBLAS
# through libblas.so.3; scripts/bench/torch_threads.py sets its threads.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
rounds=${ROUNDS:-3}
uptime
for r in $(seq 1 "$rounds"); do
  echo "== round $r $(date -u +%H:%M:%S)"
  "$build"/benchmarks/bench_autograd --benchmark_filter='Gpt2' 2>/dev/null | grep '^BM_'
  /usr/bin/python3 scripts/bench/torch_block.py 1 2 | grep -v '^torch' || true
  "$build"/benchmarks/bench_pretrain --benchmark_filter='PretrainStep/4/256/4/128/16/' 2>/dev/null | grep '^BM_'
  /usr/bin/python3 scripts/bench/torch_pretrain.py 1 2 | grep -v '^torch' || true
done
/usr/bin/python3 -c 'import sys; sys.path.insert(0, "scripts/bench"); from torch_threads import describe; print(describe())'
uptime
