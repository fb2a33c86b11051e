#!/usr/bin/env bash
# Starts (or resumes) the pretraining runs of docs/pretrain.md in the background,
# one thread each, run folders under $RUNS (default /work/pretrain-runs). Safe to run
# again at any time: a run whose process is alive is left alone, a killed one resumes
# bit-exactly from its last saved state, a finished one (models/NAME/results.json) is skipped.
#
#   scripts/pretrain.sh [BUILD_DIR]      # default build/dev (must have lowbit_pretrain built)
#   scripts/pretrain.sh status           # progress of every run
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-/work/pretrain-runs}
DATA=${LOWBIT_DATA:-$(realpath ../shared/data 2>/dev/null || echo /work/shared/data)}

# name | shape and schedule (the choice is explained in docs/pretrain.md)
RUN_NAMES=(pd-200k pd-1m pd-5m)
declare -A RUN_FLAGS=(
  [pd-200k]="--layers 4 --dim 64 --heads 4 --context 128 --batch 16 --steps 3000 --lr 3e-3 --warmup 100 --seed 1"
  [pd-1m]="--layers 5 --dim 128 --heads 4 --context 128 --batch 16 --steps 3000 --lr 2e-3 --warmup 100 --seed 1"
  [pd-5m]="--layers 6 --dim 256 --heads 8 --context 128 --batch 16 --steps 4500 --lr 1e-3 --warmup 100 --seed 1"
)
# Threads do not enter the run key: a run may resume with another count (PRETRAIN_THREADS).
COMMON="--eval-every 50 --val-tokens 16384 --threads ${PRETRAIN_THREADS:-1} --dtype f16 --directions 3"

if [[ "${1:-}" == status ]]; then
  for name in "${RUN_NAMES[@]}"; do
    dir="$RUNS/$name"
    alive=no
    [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && alive=yes
    echo "== $name (process alive: $alive)"
    [[ -f "$dir/stdout.log" ]] && grep -E '^step|^eval' "$dir/stdout.log" | tail -2
  done
  exit 0
fi

BUILD=${1:-build/dev}
mkdir -p "$RUNS/bin"
# A private copy of the binary: rebuilding the tree does not touch running processes.
cp "$BUILD/examples/lowbit_pretrain" "$RUNS/bin/lowbit_pretrain.new"
mv "$RUNS/bin/lowbit_pretrain.new" "$RUNS/bin/lowbit_pretrain"

for name in "${RUN_NAMES[@]}"; do
  dir="$RUNS/$name"
  mkdir -p "$dir"
  # Finished means exported by a run with these flags: pd-5m's first, compute-limited
  # export (1,500 steps) stays committed until the longer run replaces it.
  if [[ -f "$PWD/models/$name/results.json" ]] &&
     grep -q -- "${RUN_FLAGS[$name]}" "$PWD/models/$name/command.txt" 2>/dev/null; then
    echo "$name: finished (models/$name/results.json exists; delete it to export again)"
    continue
  fi
  if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "$name: already running (pid $(cat "$dir/pid"))"
    continue
  fi
  # shellcheck disable=SC2086
  nohup "$RUNS/bin/lowbit_pretrain" --name "$name" ${RUN_FLAGS[$name]} $COMMON \
    --run-dir "$dir" --resume --out "$PWD/models/$name" --data "$DATA" >>"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  echo "$name: started (pid $!), log $dir/stdout.log"
done
