#!/usr/bin/env bash
# Configures and builds kacheryfs, its tests and the daemon emulator into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j "$(nproc)"
