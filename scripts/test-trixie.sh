#!/usr/bin/env bash
# Builds and tests kacheryfs on Debian 13 (trixie), in a tree made with debootstrap from
# Debian's own archive under /var/cache/kacheryfs-ci/trixie (KACHERYFS_TRIXIE_ROOT), kept
# outside the checkout so that a machine that keeps /var/cache reuses it from one clean
# clone to the next (a tree that is not Debian 13 is made again). Inside it, with
# /proc, /sys, /dev and /dev/pts bound in: the dependencies from scripts/install-deps.sh, a
# build, the CTest suite except what needs the host's systemd and package state or takes
# long (mount.workstation, mount.soak, bench.*), and a .deb that is built, installed with
# apt and checked (it must depend on trixie's libfuse3-4), then purged. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
root=${KACHERYFS_TRIXIE_ROOT:-/var/cache/kacheryfs-ci/trixie}
mirror=${KACHERYFS_TRIXIE_MIRROR:-http://deb.debian.org/debian}
started=$(date +%s)
[ "$(id -u)" -eq 0 ] || { echo "test-trixie: needs root (debootstrap, chroot, mounts)"; exit 1; }
command -v debootstrap > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap > /dev/null

# A run killed before its cleanup leaves /proc, /sys and /dev bound in the tree: unmount
# them before anything is removed, and never remove across a file system boundary.
unmount_leftovers() {
  local target
  while read -r target; do umount -R -l "$target" 2>/dev/null || true; done < <(
    awk -v root="$root/" 'index($2, root) == 1 { print $2 }' /proc/self/mounts | sort -r)
  if awk -v root="$root/" 'index($2, root) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    echo "test-trixie: file systems are still mounted under $root"
    exit 1
  fi
}
mkdir -p "$(dirname "$root")"
unmount_leftovers
if [[ "$(cut -d. -f1 "$root/etc/debian_version" 2>/dev/null)" != 13 ]]; then
  rm -rf --one-file-system "$root"
  mkdir -p "$root"
  echo "test-trixie: debootstrap trixie into $root"
  debootstrap --variant=minbase trixie "$root" "$mirror" > "$root.debootstrap.log" 2>&1 ||
    { tail -n 20 "$root.debootstrap.log"; exit 1; }
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"

# The kernel's file systems, unmounted again however this script ends.
bound=()
cleanup() {
  for ((i = ${#bound[@]} - 1; i >= 0; i--)); do
    umount -R "${bound[i]}" 2>/dev/null || umount -R -l "${bound[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
mount -t proc proc "$root/proc" && bound+=("$root/proc")
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys" && bound+=("$root/sys")
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev" && bound+=("$root/dev")

# The checkout as committed (plus local edits), and ../shared beside it as CI has it.
rm -rf "$root/src" && mkdir -p "$root/src/main"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$root/src/main"
[ -d "$repo/../shared" ] && cp -rL "$repo/../shared" "$root/src/shared"  # -L: it may be a link

in_tree() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive bash -c "$1"; }
in_tree "apt-get update -qq && apt-get install -y -qq git > /dev/null && cd /src/main && bash scripts/install-deps.sh"
echo "test-trixie: Debian $(in_tree 'cat /etc/debian_version; dpkg-query -W -f="libfuse3 \${Version}, " libfuse3-dev; g++ --version | head -n 1' | tr "\n" " ")"
in_tree "cd /src/main && bash scripts/build.sh"
in_tree "cd /src/main/build && ctest --output-on-failure -j 2 --timeout 900 -E '^(mount\\.workstation|mount\\.soak|bench\\..*)\$'"

# The package: built here, installed with apt (which resolves its dependencies), checked.
in_tree "cd /src/main/build && rm -rf deb && cpack -G DEB -B deb > /dev/null"
in_tree "apt-get install -y -qq /src/main/build/deb/kacheryfs_*.deb > /dev/null"
depends=$(in_tree "dpkg-query -W -f='\${Depends}' kacheryfs")
echo "test-trixie: the .deb depends on: $depends"
[[ "$depends" == *libfuse3-4* ]] || { echo "test-trixie: the .deb does not depend on libfuse3-4"; exit 1; }
in_tree "kacheryfs --version && kacheryfs-cache --version && test -x /usr/sbin/mount.kacheryfs"
in_tree "apt-get purge -y -qq kacheryfs > /dev/null"
echo "test-trixie: built, tested and packaged on Debian 13 in $(( $(date +%s) - started )) s"
