#!/usr/bin/env bash
# Command two of the README: installs the dependencies, builds, and runs every test
# (unit, client, emulator conformance, real FUSE mounts) through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j 2 --timeout 900 "$@"
