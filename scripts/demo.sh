#!/usr/bin/env bash
# Command one of the README: installs the dependencies, builds, starts the bundled kachery
# daemon emulator on 127.0.0.1 with sample data, mounts it with kacheryfs, and reads files
# by hash. Everything it starts is stopped and unmounted at the end (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "== building kacheryfs and the daemon emulator (a few minutes on 2 cores; make shows its progress)"
bash scripts/build.sh kacheryfs kacheryfs-cache kachery-daemon-emulator

work=$(mktemp -d /tmp/kacheryfs-demo-XXXXXX)
storage="$work/storage"; mnt="$work/mnt"; cache="$work/cache"
mkdir -p "$storage" "$mnt"
emulator_pid=""; fs_pid=""
cleanup() {
  if grep -qs " $mnt " /proc/mounts; then fusermount3 -u "$mnt" || fusermount3 -uz "$mnt"; fi
  [ -n "$fs_pid" ] && wait "$fs_pid" 2>/dev/null || true
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Sample data, placed the way a kachery daemon stores it: sha1/ab/cd/ef/<sha1>.
put() {
  local sha1; sha1=$(sha1sum "$1" | cut -c1-40)
  mkdir -p "$storage/sha1/${sha1:0:2}/${sha1:2:2}/${sha1:4:2}"
  cp "$1" "$storage/sha1/${sha1:0:2}/${sha1:2:2}/${sha1:4:2}/$sha1"
  echo "$sha1"
}
printf 'Hello from kachery!\nThis text is addressed by its SHA-1.\n' > "$work/hello.txt"
head -c 25000000 /dev/urandom > "$work/recording.bin"
hello=$(put "$work/hello.txt")
recording=$(put "$work/recording.bin")

build/tests/emulator/kachery-daemon-emulator --storage-dir "$storage" --port-file "$work/port" > "$work/emulator.log" &
emulator_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
echo "== kachery daemon emulator on 127.0.0.1:$port (pid $emulator_pid), storage $storage"

build/kacheryfs -f "http://127.0.0.1:$port" "$mnt" -o "cache_dir=$cache,auth_file=$storage/client-auth" 2> "$work/kacheryfs.log" &
fs_pid=$!
for _ in $(seq 200); do grep -qs " $mnt " /proc/mounts && break; sleep 0.05; done
echo "== mounted on $mnt (pid $fs_pid)"
echo
echo "\$ cat $mnt/sha1/$hello"
cat "$mnt/sha1/$hello"
echo
echo "\$ sha1sum $mnt/sha1/${recording:0:2}/${recording:2:2}/${recording:4:2}/$recording"
sha1sum "$mnt/sha1/${recording:0:2}/${recording:2:2}/${recording:4:2}/$recording"
echo
echo "\$ ls -l $mnt/sha1/    (what is cached here)"
ls -l "$mnt/sha1/"
echo
echo "\$ cat $mnt/kachery-node-id"
cat "$mnt/kachery-node-id"; echo
echo
echo "== kacheryfs log:"
cat "$work/kacheryfs.log"
echo
echo "== done; what this script started is stopped and unmounted as it exits. To mount by hand:"
echo "   build/tests/emulator/kachery-daemon-emulator --storage-dir DIR &    # or a real kachery daemon"
echo "   mkdir -p /tmp/kachery && build/kacheryfs HOST:PORT /tmp/kachery -o auth_file=DIR/client-auth"
echo "   ls /tmp/kachery/sha1/ && cat /tmp/kachery/sha1/<hash>"
echo "   fusermount3 -u /tmp/kachery                                           # unmount"
