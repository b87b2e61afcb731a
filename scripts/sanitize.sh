#!/usr/bin/env bash
# The test suite again, built with AddressSanitizer (LeakSanitizer included) and
# UndefinedBehaviorSanitizer, into ./build-sanitize. Every report fails the run, also one
# from a mount process whose exit status no test reads: reports go to files, checked at
# the end. The package, soak and benchmark tests are left to the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# -O1 -g1: the sanitizers need no more, and the build takes half the time on 2 cores.
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
  -DKACHERYFS_SANITIZE=ON > /dev/null
cmake --build build-sanitize -j "$(nproc)"
reports=$(mktemp -d /tmp/kacheryfs-sanitize-XXXXXX)
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=0"
status=0
(cd build-sanitize && ctest --output-on-failure -j 2 --timeout 900 \
  -E 'mount\.(workstation|soak|large_files)|bench\.' "$@") || status=$?
if compgen -G "$reports/*" > /dev/null; then
  echo "sanitize: sanitizer reports:"
  head -n 60 "$reports"/*
  status=1
else
  echo "sanitize: no sanitizer reports"
fi
rm -rf "$reports"
exit "$status"
