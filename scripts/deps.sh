#!/usr/bin/env bash
# Installs the Debian packages lowbit's build needs, only those that are missing.
# Usage: scripts/deps.sh [extra-package ...]
set -euo pipefail

# python3.11-doc: the Python docs pretraining corpus (text/python_docs.hpp, issue #7).
# libopenblas-dev: the BLAS under lowbit::blas (LOWBIT_BLAS=auto picks it up; issue #16).
packages=(cmake make g++ libeigen3-dev libxsimd-dev doctest-dev libbenchmark-dev libopenblas-dev python3.11-doc "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "lowbit: installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "lowbit: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
