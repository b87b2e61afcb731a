#!/usr/bin/env python3
"""Read benchmark: kacheryfs against baselines measured in the same run, as medians.

  python3 tests/bench/read_benchmark.py [--size-mb 300] [--runs 5] [--quick]

Rows (each kacheryfs figure next to its baseline, with the ratio):
  cold sequential read   fresh cache + fresh mount, `cat` of the file (size discovery,
                         fetch, SHA-1 verify, fsync, rename, then the read)
                         vs `curl` downloading the whole file from the same emulator
  warm sequential read   `cat` again through the mount (kernel page cache / cache file)
                         vs `cat` of the original file on local disk (page cache)
  cold first 4 KiB       fresh mount, `head -c 4096` of an uncached 4 KiB file
                         vs one `curl` range request of 4 KiB
Uses build/kacheryfs and build/tests/emulator/kachery-daemon-emulator (or KACHERYFS_BIN /
KACHERY_EMULATOR_BIN). Not part of the test suite; --quick is a smoke run.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import Emulator, Mount, put_random_file, require_fuse  # noqa: E402


def timed(cmd):
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="20 MB, 2 runs: a smoke test")
    a = ap.parse_args()
    if a.quick:
        a.size_mb, a.runs = 20, 2
    require_fuse()
    tmp = tempfile.mkdtemp(prefix="kfs-bench-")
    storage, originals = os.path.join(tmp, "storage"), os.path.join(tmp, "orig")
    os.makedirs(storage)
    size = a.size_mb * 1_000_000
    big, big_original = put_random_file(storage, size, 1, originals)
    smalls = [put_random_file(storage, 4096, 100 + i, originals)[0] for i in range(a.runs)]
    emulator = Emulator(storage, workdir=tmp)
    code = emulator.auth_code()
    url = "http://%s/downloadFileData" % emulator.address
    rows = {k: [] for k in ("cold", "curl", "warm", "cat", "first4k", "curl4k")}
    try:
        subprocess.run(["cat", big_original], stdout=subprocess.DEVNULL, check=True)  # page cache
        for run in range(a.runs):
            rows["curl"].append(timed(["curl", "-sf", "-o", "/dev/null", "-H", "KACHERY-CLIENT-AUTH-CODE: " + code,
                                       "-H", "Content-Type: application/json", "--data",
                                       '{"fileKey":{"sha1":"%s"}}' % big, url]))
            rows["curl4k"].append(timed(["curl", "-sf", "-o", "/dev/null", "-H", "KACHERY-CLIENT-AUTH-CODE: " + code,
                                         "-H", "Content-Type: application/json", "--data",
                                         '{"fileKey":{"sha1":"%s"},"startByte":0,"endByte":4096}' % smalls[run], url]))
            rows["cat"].append(timed(["cat", big_original]))
            mnt, cache = os.path.join(tmp, "mnt%d" % run), os.path.join(tmp, "cache%d" % run)
            m = Mount(emulator.address, mnt, cache, ["auth_file=" + emulator.auth_file])
            try:
                path = os.path.join(mnt, "sha1", big)
                rows["first4k"].append(timed(["head", "-c", "4096", os.path.join(mnt, "sha1", smalls[run])]))
                rows["cold"].append(timed(["cat", path]))
                rows["warm"].append(timed(["cat", path]))
                out = subprocess.run(["sha1sum", path], capture_output=True, text=True, check=True).stdout
                assert out.split()[0] == big, "bytes differ"
            finally:
                m.unmount()
            subprocess.run(["rm", "-rf", cache])
    finally:
        emulator.stop()
        subprocess.run(["rm", "-rf", tmp])

    med = {k: statistics.median(v) for k, v in rows.items()}
    mb = size / 1e6
    print("kacheryfs read benchmark: %d MB file, %d runs, medians" % (a.size_mb, a.runs))
    print("%-28s %14s %14s %8s" % ("", "kacheryfs", "baseline", "ratio"))
    print("%-28s %11.0f MB/s %11.0f MB/s %8.2f   (baseline: curl whole file from the emulator)" %
          ("cold sequential read", mb / med["cold"], mb / med["curl"], med["curl"] / med["cold"]))
    print("%-28s %11.0f MB/s %11.0f MB/s %8.2f   (baseline: cat of the local original, page cache)" %
          ("warm sequential read", mb / med["warm"], mb / med["cat"], med["cat"] / med["warm"]))
    print("%-28s %12.2f ms %12.2f ms %8.2f   (baseline: one curl range request; ratio = kacheryfs/baseline)" %
          ("cold first 4 KiB", med["first4k"] * 1e3, med["curl4k"] * 1e3, med["first4k"] / med["curl4k"]))
    print("throughput ratios are kacheryfs/baseline speed (higher is better); times include process start of cat/head/curl")


if __name__ == "__main__":
    main()
