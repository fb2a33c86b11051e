#!/usr/bin/env bash
# lowbit's main job on a fresh machine: installs what is missing, builds, and runs the
# study (RTN vs GPTQ vs QAFT, layer MSE vs global NLL, loss landscape) on the real
# stories260K model with the reduced --quick grid. The report lands in study-out/.
# Data: --data DIR, $LOWBIT_DATA, or ../shared/data beside the project.
# Usage: scripts/demo.sh [lowbit-study flags]   (default: --quick --landscape)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
build=${LOWBIT_BUILD_DIR:-build/release}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "${LOWBIT_JOBS:-$(nproc)}" --target lowbit-study
if [ -z "${LOWBIT_DATA:-}" ] && [ -d ../shared/data ]; then
  export LOWBIT_DATA=$PWD/../shared/data
fi
if [ $# -eq 0 ]; then set -- --quick --landscape; fi
exec "$build/examples/lowbit-study" "$@"
