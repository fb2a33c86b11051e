#!/usr/bin/env bash
# The study with the schemes engines run (issue #15): RTN vs GPTQ vs QAFT at the
# paper's protocol (lowbit-study's defaults) in finer-scaled integer grids and in
# llama.cpp's block formats, each layer in the type llama-quantize gives it
# (docs/study.md, "Block formats"). One folder per model and scheme:
# docs/results/<model>-schemes/<scheme>/, with the landscape (where ‖Δw‖ sits
# against R(w)) and, for the TinyStories model, the held-out re-measure. Every
# finished unit is a file at once, so the job resumes where it stopped and skips a
# folder whose results.json exists, or that another runner holds (start a second
# runner for the same model on a free core and the two share its schemes).
#
#   nohup nice -n 19 scripts/study_schemes.sh [BUILD_DIR] [MODEL...] > /tmp/study-schemes.log 2>&1 &
#
# MODEL: stories260K, pd-200k, pd-1m, pd-5m (default: all four, in that order). QUICK=1 runs
# the reduced grid into <model>-schemes-quick/ instead. STUDY_THREADS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
shift || true
study="$build/examples/lowbit-study"
[[ -x "$study" ]] || { echo "study_schemes: $study is not built" >&2; exit 2; }
threads=${STUDY_THREADS:-1}
models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(stories260K pd-200k pd-1m pd-5m)

# The schemes a model's widths allow (rows of 32 for q4_0/iq4_nl/q8_0, of 256 for the
# k-quants and tq2_0; stories260K's 64/172-wide rows take 32-blocks where they can;
# pd-200k's 64 and pd-1m's 128 fit no 256-block).
schemes_for() {  # (called once per model before the loop too, so a wrong name stops at once)
  case "$1" in
    stories260K) echo "q4_0 int4:g32 iq4_nl q8_0" ;;
    pd-200k) echo "int4:g32 q4_0" ;;
    pd-1m) echo "int4:g32 q4_0 iq4_nl" ;;
    pd-5m) echo "int4:g128 q4_k q3_k q2_k q4_0 tq2_0" ;;
    *) echo "study_schemes: unknown model $1" >&2; exit 2 ;;
  esac
}

for name in "${models[@]}"; do schemes_for "$name" > /dev/null; done
suffix=schemes
extra=()
if [[ "${QUICK:-0}" == 1 ]]; then suffix=schemes-quick; extra=(--quick); fi
for name in "${models[@]}"; do
  model_flag=(--model "models/$name")
  heldout=()
  if [[ "$name" == stories260K ]]; then model_flag=(); heldout=(--heldout); fi
  for scheme in $(schemes_for "$name"); do
    bits=()
    [[ "$scheme" == int* ]] && bits=(--bits 4,3,2)
    out="docs/results/$name-$suffix/${scheme//:/-}"
    if [[ -f "$out/results.json" ]]; then echo "study_schemes: $out: done"; continue; fi
    echo "study_schemes: $name $scheme: starting or resuming in $out ($(date -u +%H:%M) UTC)"
    rc=0
    "$study" "${model_flag[@]}" --scheme "$scheme" "${bits[@]}" --out "$out" --landscape --directions 8 \
      "${heldout[@]}" "${extra[@]}" --threads "$threads" || rc=$?
    # 75: another runner holds the folder (lowbit-study's own lock decides, so two
    # runners started at any moment cannot both take it); leave it to that runner.
    if [[ $rc == 75 ]]; then echo "study_schemes: $out: another run holds it, next"; continue; fi
    [[ $rc == 0 ]] || exit "$rc"
  done
done
