#!/usr/bin/env bash
# The study's cross-run outputs from the finished paper-protocol runs under
# docs/results/ (issue #15): Figure 2 of the pd family (--compare over pd-*-paper,
# into docs/results/pd-family/); each model's schemes beside its paper run, with
# every finding in one table (--compare into docs/results/<model>-schemes/); and the
# landscape predictor over every finished run, judged leaving one model out
# (--predict, into docs/results/predictor/). Uses whatever has finished (a folder
# with results.json); rerun it as more runs land.
#
#   scripts/study_summary.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
study="$build/examples/lowbit-study"
[[ -x "$study" ]] || { echo "study_summary: $study is not built" >&2; exit 2; }
finished() {  # the folders among "$@" that hold a finished run, comma-separated
  local out=() d
  for d in "$@"; do
    d=${d%/}
    [[ -f "$d/results.json" && -f "$d/run.json" ]] && out+=("$d")
  done
  (IFS=,; echo "${out[*]}")
}
family=$(finished docs/results/pd-*-paper)
all=$(finished docs/results/*-paper docs/results/*-schemes/*/)
if [[ -n "$family" ]]; then
  echo "study_summary: pd family: $family"
  "$study" --compare "$family" --out docs/results/pd-family
fi
for schemes in docs/results/*-schemes; do
  model=$(basename "$schemes" -schemes)
  runs=$(finished "docs/results/$model-paper" "$schemes"/*/)
  [[ "$runs" == *,* ]] || continue  # the paper run and at least one scheme
  echo "study_summary: $model across schemes: $runs"
  "$study" --compare "$runs" --out "$schemes"
done
[[ -n "$all" ]] || { echo "study_summary: no finished run under docs/results" >&2; exit 2; }
echo "study_summary: predictor over: $all"
"$study" --predict "$all" --out docs/results/predictor
