#!/usr/bin/env bash
# Installs the Debian 12 packages kacheryfs needs to build and test, if any are missing:
# the build (compiler, CMake, libraries), the tests (curl, socat, attr, useradd) and the
# package checks (dpkg-dev for shlibdeps, lintian, binutils' objdump) and the automount test
# (autofs; its daemon is only started by the test, in the foreground, on its own map), and
# the network benchmark's baselines (sshfs with an sshd it starts itself on loopback, and
# h5py for its HDF5 row), and the metrics test's parser (python3-prometheus-client).
set -euo pipefail
# The fuzzers' runtime matches the release's default clang: 14 on Debian 12, 19 on Debian 13.
clang_major() {
  case "$(cut -d. -f1 /etc/debian_version 2>/dev/null)" in
    13) echo 19 ;;
    *) echo 14 ;;
  esac
}
packages=(build-essential cmake pkg-config libfuse3-dev fuse3 libboost-dev nlohmann-json3-dev
          libssl-dev libspdlog-dev libgtest-dev libgmock-dev python3 curl iproute2
          openssl socat libsqlite3-dev bsdutils
          dpkg-dev lintian binutils attr passwd autofs clang "libclang-rt-$(clang_major)-dev"
          sshfs openssh-server python3-h5py python3-prometheus-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all build dependencies are installed"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
# No service is started by the install (openssh-server would start an sshd on port 22):
# policy-rc.d refuses every start while it exists.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" > /dev/null
  $sudo chmod 755 "$policy"
  own_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" > /dev/null || status=$?
[ -z "$own_policy" ] || $sudo rm -f "$policy"
exit "$status"
