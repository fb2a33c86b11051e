#!/usr/bin/env bash
# The measurements behind docs/results/llama.cpp.md: every llama.cpp type lowbit
# writes, for stories260K, pd-1m and pd-5m, quantized by llama.cpp's own quantizer with
# an importance matrix (TYPE/llama.cpp-imatrix) and by lowbit (TYPE: round-to-nearest,
# checked tensor for tensor against llama.cpp's own quantizer without one; TYPE/gptq),
# each file scored by llama.cpp and by lowbit (tests/llama_cpp/judge.cpp).
#
#   scripts/llama_cpp_results.sh [MODEL[@WINDOWS]...] > judge.log
#   scripts/llama_cpp_table.py judge.log        # the tables
#     default: stories260K models/pd-1m@64 models/pd-5m@32 (the first test windows)
# LOWBIT_JUDGE_TYPES / LOWBIT_JUDGE_PRESETS: the llama.cpp types / llama-quantize presets.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${LOWBIT_LLAMA_CPP_CACHE:-$HOME/.cache/lowbit/llama.cpp-3.21.1}
data=${LOWBIT_DATA:-$root/../shared/data}
scripts/fixtures/fetch_llama_cpp.sh "$cache" >/dev/null
types=${LOWBIT_JUDGE_TYPES:-"q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0 q3_k q2_k tq2_0 iq4_nl mxfp4"}
presets=${LOWBIT_JUDGE_PRESETS:-"Q5_K_M Q4_K_M Q4_K_S Q3_K_L Q3_K_M Q2_K"}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(stories260K "$root/models/pd-1m@64" "$root/models/pd-5m@32")
runs=""
for m in "${models[@]}"; do
  run="$m,f32"
  for t in $types $presets; do run="$run,$t,$t/llama.cpp-imatrix,$t/gptq"; done
  runs="${runs:+$runs|}$run"
done
cmake -DCXX="${CXX:-g++}" -DSOURCE="$root/tests/llama_cpp/judge.cpp" -DINCLUDE_DIR="$root/include" \
      -DSYSTEM_INCLUDES=/usr/include/eigen3 -DCACHE="$cache" -DDATA="$data" \
      -DWORK_DIR="${LOWBIT_JUDGE_DIR:-$root/build/llama_cpp_results}" "-DRUNS=$runs" -DKEEP_GOING=ON \
      -P "$root/tests/llama_cpp/run_judge.cmake"
