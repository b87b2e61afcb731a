#!/usr/bin/env python3
"""kacheryfs with several nodes: what -o spread gains, and how long a reader stalls when its
node dies. Medians, with baselines measured in the same run.

  python3 tests/bench/nodes_benchmark.py [--runs 3] [--quick] [--emulator node-like|fast]

Two emulators (--node-like by default: paced like the real daemon) serve the same 1 GiB file.
  cold 1 GiB, one node           fresh cache, `cat` through a mount of node A
  cold 1 GiB, two nodes, spread  fresh cache, `cat` through a mount of A,B with -o spread
  one curl stream                the same file from node A, for scale
  failover stall                 a mount of A,B; a reader reads 1 MiB at a time; node A is
                                 killed (SIGKILL) a third of the way in: the largest gap
                                 between two read() returns from the kill on, against the
                                 median gap before it
Both mounts use the same max_conns (ranges in flight), so the only difference is the nodes.
"""
import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import Emulator, Mount, put_random_file, require_fuse, sha1_path  # noqa: E402

MiB = 1 << 20


class NodesBench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="kfs-nodes-bench-")
        self.size = (64 if args.quick else 1024) * MiB
        self.flags = ("--node-like",) if args.emulator == "node-like" else ()
        self.storages = [os.path.join(self.tmp, "storage-" + n) for n in "ab"]
        for s in self.storages:
            os.makedirs(s)
        self.sha1, self.original = put_random_file(self.storages[0], self.size, 1,
                                                   os.path.join(self.tmp, "orig"))
        target = sha1_path(self.storages[1], self.sha1)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.link(self.original, target)
        self.nodes = []
        for storage, name in zip(self.storages, "ab"):
            workdir = os.path.join(self.tmp, "node-" + name)
            os.makedirs(workdir)
            self.nodes.append(Emulator(storage, *self.flags, workdir=workdir))
        self.mnt = os.path.join(self.tmp, "mnt")
        self.max_conns = args.max_conns

    def close(self):
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mount(self, nodes, *options):
        cache = tempfile.mkdtemp(prefix="cache-", dir=self.tmp)
        source = ",".join(n.address for n in nodes)
        auth = "auth_file=" + ":".join(n.auth_file for n in nodes)
        # whole_max=1M: even the --quick file streams (the 1 GiB file would anyway).
        opts = [auth, "max_conns=%d" % self.max_conns, "whole_max=1M"] + list(options)
        return Mount(source, self.mnt, cache, opts), cache

    def done(self, m, cache):
        m.unmount()
        shutil.rmtree(cache, ignore_errors=True)

    def path(self):
        return os.path.join(self.mnt, "sha1", self.sha1)

    def cold_cat(self, nodes, *options):
        subprocess.run(["sync"])
        m, cache = self.mount(nodes, *options)
        try:
            started = time.perf_counter()
            subprocess.run(["cat", self.path()], check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter() - started
        finally:
            self.done(m, cache)

    def curl(self, node):
        with open(node.auth_file) as f:
            code = f.read()
        body = '{"fileKey":{"sha1":"%s"},"startByte":0,"endByte":%d}' % (self.sha1, self.size)
        started = time.perf_counter()
        subprocess.run(["curl", "-sf", "-o", "/dev/null", "-H", "KACHERY-CLIENT-AUTH-CODE: " + code,
                        "--data-binary", body, "http://%s/downloadFileData" % node.address], check=True)
        return time.perf_counter() - started

    def failover_stall(self):
        m, cache = self.mount(self.nodes)
        returns = []
        killed_at = None
        digest = hashlib.sha1()
        got = 0
        try:
            with open(self.path(), "rb", buffering=0) as f:
                while True:
                    chunk = f.read(MiB)
                    returns.append(time.perf_counter())
                    if not chunk:
                        break
                    digest.update(chunk)
                    got += len(chunk)
                    if killed_at is None and got >= self.size // 3:
                        self.nodes[0].proc.kill()
                        self.nodes[0].proc.wait()
                        killed_at = time.perf_counter()
        finally:
            self.done(m, cache)
            self.nodes[0].start()  # the same port, for the next run
        if digest.hexdigest() != self.sha1 or got != self.size:
            raise SystemExit("failover read was not byte-exact: %d bytes, sha1 %s" % (got, digest.hexdigest()))
        before = [b - a for a, b in zip(returns, returns[1:]) if b <= killed_at]
        after = [t for t in returns if t >= killed_at]
        gaps_after = [b - a for a, b in zip([killed_at] + after, after)]
        return max(gaps_after), statistics.median(before)

    def run(self):
        one, spread, curl, stall, normal_gap = [], [], [], [], []
        for _ in range(self.args.runs):
            curl.append(self.curl(self.nodes[0]))
            one.append(self.cold_cat(self.nodes[:1]))
            spread.append(self.cold_cat(self.nodes, "spread"))
            s, g = self.failover_stall()
            stall.append(s)
            normal_gap.append(g)
        mb = self.size / 1e6
        med = statistics.median
        print("\nkacheryfs with two nodes (%s emulators), %d runs, medians, file %d MiB, max_conns=%d"
              % (self.args.emulator, self.args.runs, self.size // MiB, self.max_conns))
        print("| row | kacheryfs | baseline | ratio |")
        print("| --- | --- | --- | --- |")
        print("| cold read, two nodes with spread vs one node | %.0f MB/s | %.0f MB/s | %.2f× |"
              % (mb / med(spread), mb / med(one), med(one) / med(spread)))
        print("| cold read, one node vs one curl stream | %.0f MB/s | %.0f MB/s | %.2f× |"
              % (mb / med(one), mb / med(curl), med(curl) / med(one)))
        print("| cold read, two nodes with spread vs one curl stream | %.0f MB/s | %.0f MB/s | %.2f× |"
              % (mb / med(spread), mb / med(curl), med(curl) / med(spread)))
        print("| failover stall: largest gap between read() returns after the kill, vs the median gap before | %.1f ms | %.2f ms | %.0f× |"
              % (med(stall) * 1000, med(normal_gap) * 1000, med(stall) / med(normal_gap)))
        print("runs: one node %s s; spread %s s; curl %s s; stall %s ms" % (
            [round(x, 2) for x in one], [round(x, 2) for x in spread], [round(x, 2) for x in curl],
            [round(x * 1000, 1) for x in stall]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="64 MiB, for a smoke run")
    ap.add_argument("--emulator", choices=("node-like", "fast"), default="node-like")
    ap.add_argument("--max-conns", type=int, default=4)
    args = ap.parse_args()
    if args.quick:
        args.runs = 1
    require_fuse()
    bench = NodesBench(args)
    try:
        bench.run()
    finally:
        bench.close()


if __name__ == "__main__":
    main()
