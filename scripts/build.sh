#!/usr/bin/env bash
# Configures and builds kacheryfs into ./build: everything (tests and emulator included), or
# only the targets named as arguments (the demo builds kacheryfs and the emulator only).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
if [ $# -gt 0 ]; then
  targets=()
  for target in "$@"; do targets+=(--target "$target"); done
  cmake --build build -j "$(nproc)" "${targets[@]}"
else
  cmake --build build -j "$(nproc)"
fi
