#!/bin/bash
# (usage: scripts/pretrain_resume_check.sh [path/to/lowbit_pretrain]; about 3 minutes on a busy machine)
# Tool-level resume check: straight run vs SIGTERM + --resume; compares state.bin at the last step.
B=${1:-build/dev/examples/lowbit_pretrain}
T=${TMPDIR:-/tmp}/lowbit_resume_check
F="--name rc --layers 2 --dim 32 --heads 2 --context 32 --batch 4 --steps 200 --warmup 10 --eval-every 20 --val-tokens 256 --data ${LOWBIT_DATA:-../shared/data} --directions 0"
rm -rf "$T"; mkdir -p "$T"
wait_for() { until grep -q "$2" "$1" 2>/dev/null; do sleep 0.2; done; }
$B $F --run-dir $T/rcA --out $T/rcA-out > $T/rcA.log 2>&1 & pa=$!
wait_for $T/rcA.log exporting; kill $pa; wait $pa
$B $F --run-dir $T/rcB --out $T/rcB-out > $T/rcB.log 2>&1 & pb=$!
wait_for $T/rcB.log "eval step 100"; kill -TERM $pb; wait $pb; echo "B stopped rc=$?"
grep stopped $T/rcB.log
$B $F --run-dir $T/rcB --out $T/rcB-out --resume > $T/rcB2.log 2>&1 & pb=$!
wait_for $T/rcB2.log exporting; kill $pb; wait $pb
grep resumed $T/rcB2.log
cmp $T/rcA/state.bin $T/rcB/state.bin && echo "STATE IDENTICAL"
# train_loss (column 3) of the first row after a resume averages fewer steps (docs/pretrain.md)
diff <(cut -d, -f1,2,4,5 $T/rcA/train_log.csv) <(cut -d, -f1,2,4,5 $T/rcB/train_log.csv) && echo "LOG (step, tokens, val_nll, lr) IDENTICAL"
