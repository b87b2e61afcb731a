#!/usr/bin/env python3
"""kacheryfs against one real kachery-daemon 1.2.1 on loopback (not part of CI: it needs the
real daemon): the rows of benchmark.py that the real daemon can answer, medians of --runs,
each against a baseline measured in the same run.

  KACHERY_DAEMON_DIR=/path/to/kachery-daemon/daemon python3 tests/bench/real_daemon_read.py [--runs 3] [--size-mb 1024]

  cold sequential read    fresh cache and mount, `cat`    vs one curl stream, and 4 parallel curl ranges
  CPU per GiB, cold       kacheryfs's user+system CPU seconds (/proc/PID/stat)
  first 4 KiB             fresh mount, open+read 4 KiB     vs one 4 KiB range on a warm connection
  warm sequential read    `cat` through the mount again    vs `cat` of the local file
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmark import cpu_seconds, in_threads, timed  # noqa: E402
from kacheryfs_testlib import Mount, put_random_file  # noqa: E402
from real_daemon import one_real_daemon  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("-o", default="", help="extra kacheryfs -o options, e.g. block_size=16M")
    a = ap.parse_args()
    with one_real_daemon("kfs-real-read-") as (tmp, daemon):
        storage, port, auth_file, code = daemon.storage, daemon.port, daemon.auth_file, daemon.auth_code
        size = a.size_mb << 20
        sha1, original = put_random_file(storage, size, 1, os.path.join(tmp, "orig"))

        def curl(start, end):
            subprocess.run(["curl", "-sf", "-o", "/dev/null", "-H", "KACHERY-CLIENT-AUTH-CODE: " + code(),
                            "-H", "Content-Type: application/json",
                            "--data", '{"fileKey":{"sha1":"%s"},"startByte":%d,"endByte":%d}' % (sha1, start, end),
                            "http://127.0.0.1:%d/downloadFileData" % port], check=True)

        mnt = os.path.join(tmp, "mnt")
        path = os.path.join(mnt, "sha1", sha1)
        rows = {k: [] for k in ("cold", "cpu", "curl", "curl4", "first", "small", "warm", "cat")}
        subprocess.run(["cat", original], stdout=subprocess.DEVNULL)
        for _ in range(a.runs):
            rows["curl"].append(timed(lambda: curl(0, size)))
            q = size // 4
            rows["curl4"].append(in_threads([lambda i=i: curl(i * q, (i + 1) * q) for i in range(4)]))
            cache = tempfile.mkdtemp(prefix="cache-", dir=tmp)
            m = Mount("127.0.0.1:%d" % port, mnt, cache, ["auth_file=" + auth_file] + ([a.o] if a.o else []))

            def first():
                with open(path, "rb", buffering=0) as f:
                    assert len(f.read(4096)) == 4096
            rows["first"].append(timed(first))
            m.unmount()
            shutil.rmtree(cache)
            conn = http.client.HTTPConnection("127.0.0.1", port)

            def small(offset):
                conn.request("POST", "/downloadFileData", body=json.dumps(
                    {"fileKey": {"sha1": sha1}, "startByte": offset, "endByte": offset + 4096}),
                    headers={"KACHERY-CLIENT-AUTH-CODE": code(), "Content-Type": "application/json"})
                assert len(conn.getresponse().read()) == 4096
            small(0)
            rows["small"].append(timed(lambda: small(4096)))
            conn.close()
            cache = tempfile.mkdtemp(prefix="cache-", dir=tmp)
            m = Mount("127.0.0.1:%d" % port, mnt, cache, ["auth_file=" + auth_file] + ([a.o] if a.o else []))
            before = cpu_seconds(m.proc.pid)
            rows["cold"].append(timed(lambda: subprocess.run(["cat", path], check=True, stdout=subprocess.DEVNULL)))
            rows["cpu"].append((cpu_seconds(m.proc.pid) - before) / (size / (1 << 30)))
            rows["warm"].append(timed(lambda: subprocess.run(["cat", path], check=True, stdout=subprocess.DEVNULL)))
            rows["cat"].append(timed(lambda: subprocess.run(["cat", original], check=True, stdout=subprocess.DEVNULL)))
            m.unmount()
            shutil.rmtree(cache)
        med = {k: statistics.median(v) for k, v in rows.items()}
        mb = size / 1e6
        print("kacheryfs (%s%s) against one real kachery-daemon, %d MiB, %d runs, medians" %
              (os.environ.get("KACHERYFS_BIN", "build/kacheryfs"), " -o " + a.o if a.o else "", a.size_mb, a.runs))
        print("| row | kacheryfs | baseline | ratio |\n| --- | --- | --- | --- |")
        print("| cold read vs one curl stream | %.0f MB/s | %.0f MB/s | %.2f |" % (mb / med["cold"], mb / med["curl"], med["curl"] / med["cold"]))
        print("| cold read vs 4 parallel curl ranges | %.0f MB/s | %.0f MB/s | %.2f |" % (mb / med["cold"], mb / med["curl4"], med["curl4"] / med["cold"]))
        print("| CPU per GiB, cold | %.2f s | | |" % med["cpu"])
        print("| first 4 KiB vs one 4 KiB range, warm connection | %.1f ms | %.2f ms | %.1fx |" % (med["first"] * 1e3, med["small"] * 1e3, med["first"] / med["small"]))
        print("| warm read vs cat of the local file | %.0f MB/s | %.0f MB/s | %.2f |" % (mb / med["warm"], mb / med["cat"], med["cat"] / med["warm"]))
        print("runs: cold %s; curl %s; cpu %s" % ([round(x, 2) for x in rows["cold"]], [round(x, 2) for x in rows["curl"]],
                                                 [round(x, 2) for x in rows["cpu"]]))


if __name__ == "__main__":
    main()
