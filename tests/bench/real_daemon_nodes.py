#!/usr/bin/env python3
"""Two real kachery-daemon 1.2.1 processes on loopback, read through one kacheryfs mount:
cold read from one node against two with -o spread, and the failover stall when node A is
killed (SIGKILL) a third of the way into a read. Not part of CI (it needs the real daemon,
see real_daemon.py):

  KACHERY_DAEMON_DIR=/path/to/kachery-daemon/daemon python3 tests/bench/real_daemon_nodes.py [SIZE_BYTES]
"""
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kacheryfs_testlib import Mount, put_random_file, sha1_path  # noqa: E402
from real_daemon import RealDaemon  # noqa: E402

MiB = 1 << 20


def main():
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 30
    tmp = tempfile.mkdtemp(prefix="kfs-real-")
    mnt = os.path.join(tmp, "mnt")
    nodes = []
    try:
        for name in "ab":
            nodes.append(RealDaemon(os.path.join(tmp, "storage-" + name), os.path.join(tmp, name + ".log")))
        sha1, original = put_random_file(nodes[0].storage, size, 1, os.path.join(tmp, "orig"))
        target = sha1_path(nodes[1].storage, sha1)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.link(original, target)
        path = os.path.join(mnt, "sha1", sha1)

        def mount(ns, *options):
            cache = tempfile.mkdtemp(prefix="cache-", dir=tmp)
            auth = "auth_file=" + ":".join(n.auth_file for n in ns)
            return Mount(",".join(n.address for n in ns), mnt, cache, [auth, "whole_max=1M"] + list(options)), cache

        def cold(ns, *options):
            m, cache = mount(ns, *options)
            started = time.perf_counter()
            subprocess.run(["cat", path], check=True, stdout=subprocess.DEVNULL)
            elapsed = time.perf_counter() - started
            report = os.getxattr(mnt, "user.kachery.nodes").decode()
            m.unmount()
            shutil.rmtree(cache)
            return elapsed, report

        one, two = [], []
        for _ in range(3):
            one.append(cold(nodes[:1])[0])
            elapsed, report = cold(nodes, "spread")
            two.append(elapsed)
        print(report)
        mb = size / 1e6
        print("cold %d MiB, real daemons: one node %.0f MB/s, two nodes with spread %.0f MB/s (%.2fx); runs one %s two %s" % (
            size // MiB, mb / statistics.median(one), mb / statistics.median(two),
            statistics.median(one) / statistics.median(two), [round(x, 2) for x in one], [round(x, 2) for x in two]))

        # failover: kill node A a third of the way in
        m, cache = mount(nodes)
        returns, killed, got, digest = [], None, 0, hashlib.sha1()
        with open(path, "rb", buffering=0) as f:
            while True:
                chunk = f.read(MiB)
                returns.append(time.perf_counter())
                if not chunk:
                    break
                digest.update(chunk)
                got += len(chunk)
                if killed is None and got >= size // 3:
                    nodes[0].kill()
                    killed = time.perf_counter()
        before = [b - a for a, b in zip(returns, returns[1:]) if b <= killed]
        after = [t for t in returns if t >= killed]
        gaps = [b - a for a, b in zip([killed] + after, after)]
        print("failover with real daemons: byte-exact=%s, largest gap after the kill %.1f ms, median gap before %.2f ms, "
              "nioerr=%s" % (digest.hexdigest() == sha1 and got == size, max(gaps) * 1e3,
                             statistics.median(before) * 1e3, os.getxattr(mnt, "user.kachery.nioerr").decode()))
        m.unmount()
        shutil.rmtree(cache)
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
