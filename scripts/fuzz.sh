#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer and UBSan too) into
# ./build-fuzz and runs each for FUZZ_SECONDS (default 30) from its committed seed corpus
# (tests/fuzz/corpus/<target>), as many at once as there are cores. Fails if any target
# finds a crash, leak or sanitizer report, and prints the executions per target. A longer
# run: FUZZ_SECONDS=600 bash scripts/fuzz.sh; a run to a number of executions:
# FUZZ_RUNS=10000000 (no time limit then); a subset of the targets:
# FUZZ_TARGETS="names http_response". The fuzz build has ASan and most of UBSan
# (CMakeLists.txt says which checks it leaves out); scripts/sanitize.sh runs all of UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
seconds=${FUZZ_SECONDS:-30}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
  -DKACHERYFS_FUZZ=ON \
  -DKACHERYFS_WERROR=OFF > /dev/null
read -r -a targets <<< "${FUZZ_TARGETS:-jsonsocket manifest names options address partial_file http_response daemon_client}"
limits=(-max_total_time="$seconds")
[[ -n "${FUZZ_RUNS:-}" ]] && limits=(-runs="$FUZZ_RUNS" -max_total_time=0)
build_args=()
for target in "${targets[@]}"; do build_args+=(--target "fuzz_$target"); done
cmake --build build-fuzz -j "$(nproc)" "${build_args[@]}"
# The scratch corpora live on tmpfs where there is one: a run from the seeds writes thousands
# of new inputs, and on disk that took a sixth of http_response's time.
scratch_base=/tmp
[[ -d /dev/shm && -w /dev/shm ]] && scratch_base=/dev/shm
work=$(mktemp -d "$scratch_base/kacheryfs-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
# fuzz_one TARGET: runs one target; its outcome goes to $work/TARGET.status (0: no crash).
fuzz_one() {
  local target=$1 scratch=${TMPDIR:-/tmp} dict=() outcome=0
  mkdir -p "$work/$target"
  # partial_file writes a small cache dir per input: on tmpfs, disk I/O does not limit it.
  [[ $target == partial_file && -d /dev/shm && -w /dev/shm ]] && scratch=/dev/shm
  # The targets that read HTTP responses get the protocol's tokens as a dictionary.
  [[ $target == http_response || $target == daemon_client ]] && dict=(-dict=tests/fuzz/http.dict)
  # New inputs go to a scratch corpus; the committed seeds are read only.
  TMPDIR=$scratch "build-fuzz/tests/fuzz/fuzz_$target" "${limits[@]}" "${dict[@]}" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/$target-" "$work/$target" \
    "tests/fuzz/corpus/$target" > "$work/$target.log" 2>&1 || outcome=$?
  echo "$outcome" > "$work/$target.status"
}
# One target per core at a time (each is one process on one thread), then the outcomes
# in the targets' order.
for target in "${targets[@]}"; do
  while (( $(jobs -rp | wc -l) >= $(nproc) )); do wait -n || true; done
  fuzz_one "$target" &
done
wait
status=0
for target in "${targets[@]}"; do
  if [[ "$(cat "$work/$target.status")" == 0 ]]; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$')
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$work/$target.log" | grep -o '[0-9]* second' | grep -o '[0-9]*')
    echo "fuzz: $target: $runs executions in ${took:-$seconds} s, no crash"
  else
    echo "fuzz: $target FAILED:"
    tail -n 40 "$work/$target.log"
    for artifact in "$work/$target-"*; do
      [[ -e $artifact ]] || continue
      echo "crash input: ${artifact##*/}"
      cp "$artifact" build-fuzz/
    done
    status=1
  fi
done
exit "$status"
