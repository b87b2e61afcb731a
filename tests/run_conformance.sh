#!/usr/bin/env bash
# Runs ../shared/kachery-daemon-conformance.py against a fresh emulator, with a short auth
# rotation period so that the rotation check (2.10) runs too. Every check must pass.
set -euo pipefail
# Usage: run_conformance.sh EMULATOR SCRIPT [EMULATOR FLAGS...]  (e.g. --node-like)
emulator="$1"
script="$2"
shift 2
work=$(mktemp -d /tmp/kfs-conformance-XXXXXX)
"$emulator" --storage-dir "$work/storage" --port-file "$work/port" --auth-period 2 "$@" > "$work/emulator.out" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
out="$work/conformance.out"
python3 "$script" --url "http://127.0.0.1:$port" --storage-dir "$work/storage" --rotation-wait 20 | tee "$out"
if grep -q '^SKIP' "$out"; then
  echo "conformance: a check was skipped; every check must run" >&2
  exit 1
fi
