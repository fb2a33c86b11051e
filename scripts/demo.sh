#!/usr/bin/env bash
# lowbit's main job on a fresh machine: installs what is missing, builds, and runs
# the demo on the real stories260K model (data: --data DIR, $LOWBIT_DATA, or
# ../shared/data beside the project).
# Usage: scripts/demo.sh [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
build=${LOWBIT_BUILD_DIR:-build/release}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "${LOWBIT_JOBS:-$(nproc)}" --target quantize_demo
if [ -z "${LOWBIT_DATA:-}" ] && [ -d ../shared/data ]; then
  export LOWBIT_DATA=$PWD/../shared/data
fi
exec "$build/examples/quantize_demo" "$@"
