#!/usr/bin/env bash
# The study at the paper's full protocol (lowbit-study's defaults since 2026-12-07:
# bits 8 6 4 3 2; RTN, GPTQ with the damping grid 1e-3..1e4, QAFT 8 epochs of one
# sequence per step at 1e-6..1e-3; landscape with 8 directions) on stories260K and
# lowbit's pd family, one model after the other, into docs/results/<model>-paper/
# (issue #15). Every finished unit is a file there at once, so the job resumes where
# it stopped — also on another machine, once the folders are committed — and is safe
# to start again: a model whose results.json exists is skipped.
#
#   nohup nice -n 19 scripts/study_paper.sh [BUILD_DIR] > /tmp/study-paper.log 2>&1 &
#
# BUILD_DIR (default build/release) must have lowbit-study built. STUDY_THREADS
# (default 1) keeps a core free for other work.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
study="$build/examples/lowbit-study"
[[ -x "$study" ]] || { echo "study_paper: $study is not built" >&2; exit 2; }
threads=${STUDY_THREADS:-1}

# name | model (empty: stories260K from the data folder)
models=(stories260K pd-200k pd-1m pd-5m)
for name in "${models[@]}"; do
  out="docs/results/$name-paper"
  if [[ -f "$out/results.json" ]]; then
    echo "study_paper: $name: done ($out/results.json)"
    continue
  fi
  model_flag=()
  [[ "$name" == stories260K ]] || model_flag=(--model "models/$name")
  echo "study_paper: $name: starting or resuming in $out ($(date -u +%H:%M) UTC)"
  "$study" "${model_flag[@]}" --out "$out" --landscape --directions 8 --threads "$threads"
done
