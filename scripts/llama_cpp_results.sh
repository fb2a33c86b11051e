#!/usr/bin/env bash
# The measurements behind docs/results/llama.cpp.md: every llama.cpp type lowbit
# writes, for stories260K, pd-1m and pd-5m, quantized by llama.cpp's own quantizer with
# an importance matrix (TYPE/llama.cpp-imatrix) and by lowbit (TYPE: round-to-nearest,
# checked tensor for tensor against llama.cpp's own quantizer without one; TYPE/gptq;
# TYPE/qaft),
# each file scored by llama.cpp and by lowbit (tests/llama_cpp/judge.cpp).
#
#   scripts/llama_cpp_results.sh [MODEL[@WINDOWS]...] > judge.log
#   scripts/llama_cpp_table.py judge.log        # the tables
#     default: stories260K models/pd-1m@64 models/pd-5m@32 (the first test windows)
# LOWBIT_JUDGE_TYPES / LOWBIT_JUDGE_PRESETS: the llama.cpp types / llama-quantize presets;
# LOWBIT_JUDGE_METHODS: which of rtn llama.cpp-imatrix gptq qaft (default all; QAFT
# trains twice per type, the slow part), e.g.
#   LOWBIT_JUDGE_METHODS=qaft LOWBIT_JUDGE_LOG=qaft.log scripts/llama_cpp_results.sh models/pd-5m@32
# LOWBIT_JUDGE_LOG=FILE: resumable, one file at a time appended to FILE (see below).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${LOWBIT_LLAMA_CPP_CACHE:-$HOME/.cache/lowbit/llama.cpp-3.21.1}
data=${LOWBIT_DATA:-$root/../shared/data}
scripts/fixtures/fetch_llama_cpp.sh "$cache" >/dev/null
types=${LOWBIT_JUDGE_TYPES:-"q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0 q3_k q2_k tq2_0 iq4_nl mxfp4"}
presets=${LOWBIT_JUDGE_PRESETS:-"Q5_K_M Q4_K_M Q4_K_S Q3_K_L Q3_K_M Q2_K"}
methods=${LOWBIT_JUDGE_METHODS:-"rtn llama.cpp-imatrix gptq qaft"}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(stories260K "$root/models/pd-1m@64" "$root/models/pd-5m@32")
runs=""
for m in "${models[@]}"; do
  run="$m,f32"
  for t in $types $presets; do
    for h in $methods; do run="$run,$t/$h"; done
  done
  runs="${runs:+$runs|}$run"
done
work=${LOWBIT_JUDGE_DIR:-$root/build/llama_cpp_results}
if [ -n "${LOWBIT_JUDGE_LOG:-}" ]; then
  # Resumable (long runs: QAFT on pd-5m takes hours): one judge process per file,
  # its line appended to $LOWBIT_JUDGE_LOG; a file already there is not redone.
  mkdir -p "$work"
  lib=$cache/npm/lx/package/bins/linux-x64
  ${CXX:-g++} -O2 -std=c++20 -ffp-contract=off -march=native -I"$root/include" -isystem /usr/include/eigen3 \
      -I"$cache/llama.cpp/include" -I"$cache/llama.cpp/ggml/include" "$root/tests/llama_cpp/judge.cpp" -L"$lib" \
      -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,"$lib" -o "$work/judge"
  touch "$LOWBIT_JUDGE_LOG"
  IFS='|' read -r -a model_runs <<< "$runs"
  for run in "${model_runs[@]}"; do
    IFS=',' read -r -a specs <<< "$run"
    model=${specs[0]}
    for spec in "${specs[@]:1}"; do
      # a model's lines follow its "judge" header; a spec is done once its line is in
      if awk -v m="judge $model:" -v s="$spec" '$0 ~ /^judge / {cur = $0} cur == m && $1 == s {f = 1} END {exit !f}' \
          "$LOWBIT_JUDGE_LOG"; then continue; fi
      line=$("$work/judge" "$data" "$lib" "$work/out" "$model" "$spec" | grep -v '^judge ' || true)
      [ -n "$line" ] || { echo "judge $model $spec: no result" >&2; continue; }
      # under a header of this model (repeated headers merge in llama_cpp_table.py)
      [ "$(grep '^judge ' "$LOWBIT_JUDGE_LOG" | tail -1)" = "judge $model:" ] || echo "judge $model:" >> "$LOWBIT_JUDGE_LOG"
      echo "$line" >> "$LOWBIT_JUDGE_LOG"
    done
  done
  exit 0
fi
cmake -DCXX="${CXX:-g++}" -DSOURCE="$root/tests/llama_cpp/judge.cpp" -DINCLUDE_DIR="$root/include" \
      -DSYSTEM_INCLUDES=/usr/include/eigen3 -DCACHE="$cache" -DDATA="$data" \
      -DWORK_DIR="$work" "-DRUNS=$runs" -DKEEP_GOING=ON \
      -P "$root/tests/llama_cpp/run_judge.cmake"
