#!/usr/bin/env bash
# The test suite again under the sanitizers. First AddressSanitizer (LeakSanitizer
# included) with UndefinedBehaviorSanitizer, in ./build-sanitize: all but the package, memory,
# soak and 4 GiB tests. Then ThreadSanitizer, in ./build-tsan: the unit and client tests
# and a subset of the mount tests. Every report fails the run, also one from a mount
# process whose exit status no test reads: reports go to files, checked at the end.
# -g1: the sanitizers need no more debug information. ASan + UBSan build at -O0: at -O1 GCC
# took twice as long on 2 cores (886 s against 423 s), and the tests ran no faster (145 s
# against 141 s). TSan builds at -O1, as its runtime asks for (the build takes 290 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
reports=$(mktemp -d /tmp/kacheryfs-sanitize-XXXXXX)
trap 'rm -rf "$reports"' EXIT
status=0

# sanitized_run DIR CMAKE_OPTION OPTIMIZATION "NAME=VALUE ..." CTEST_ARGS...: builds the
# suite in DIR with the sanitizer CMAKE_OPTION and runs the chosen tests with the
# sanitizer's settings.
sanitized_run() {
  local dir=$1 option=$2 optimization=$3 settings=$4
  shift 4
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="$optimization -g1" "$option" > /dev/null
  cmake --build "$dir" -j "$(nproc)"
  # shellcheck disable=SC2086 # the settings are NAME=VALUE words without spaces
  (cd "$dir" && env $settings ctest --output-on-failure -j 2 --timeout 900 "$@") || status=$?
}

echo "== sanitize: ASan + LSan + UBSan"
sanitized_run build-sanitize -DKACHERYFS_SANITIZE=ON -O0 \
  "ASAN_OPTIONS=log_path=$reports/asan:detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=0" \
  -E 'mount\.(workstation|soak|large_files|memory)|bench\.' "$@"

echo "== sanitize: TSan"
sanitized_run build-tsan -DKACHERYFS_TSAN=ON -O1 \
  "TSAN_OPTIONS=log_path=$reports/tsan:halt_on_error=0:second_deadlock_stack=1 KACHERYFS_SANITIZER=thread" \
  -R '^(unit\.|client\.|mount\.(read_by_hash|network_faults|large_files|client_replay|cache_quota|several_nodes|first_access|passthrough))' "$@"

if compgen -G "$reports/*" > /dev/null; then
  echo "sanitize: sanitizer reports:"
  head -n 80 "$reports"/*
  status=1
else
  echo "sanitize: no sanitizer reports"
fi
exit "$status"
