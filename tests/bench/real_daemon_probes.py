#!/usr/bin/env python3
"""Does size discovery gain from parallel probes against the real daemon? (not in CI)

  KACHERY_DAEMON_DIR=/path/to/kachery-daemon/daemon python3 tests/bench/real_daemon_probes.py [--probes 24] [--runs 7]

No daemon route reports a file's size, so kacheryfs bisects with 1-byte range probes, one
after another. This runs one real kachery-daemon on loopback with a 1 GiB file and times,
in the same run (medians): one 1-byte probe on a warm keep-alive connection; N probes one
after another on that connection; and the same N probes at once, each on its own warm
connection. If the daemon served requests in parallel, the last row would approach the
first; a daemon that serves them one at a time keeps it near the second."""
import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kacheryfs_testlib import put_random_file  # noqa: E402
from real_daemon import one_real_daemon  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=24)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    with one_real_daemon("kfs-real-probes-") as (tmp, daemon):
        size = 1 << 30
        sha1, _ = put_random_file(daemon.storage, size, 1, os.path.join(tmp, "orig"))
        code = daemon.auth_code().strip()

        def probe(conn, offset):
            body = json.dumps({"fileKey": {"sha1": sha1}, "startByte": offset, "endByte": offset + 1})
            conn.request("POST", "/downloadFileData", body=body,
                         headers={"KACHERY-CLIENT-AUTH-CODE": code, "Content-Type": "application/json"})
            got = conn.getresponse().read()
            assert len(got) == 1, got

        offsets = [i * (size // a.probes) for i in range(a.probes)]
        conns = [http.client.HTTPConnection("127.0.0.1", daemon.port) for _ in offsets]
        for conn in conns:
            probe(conn, 0)  # connect and warm each one
        one, sequential, parallel = [], [], []
        for _ in range(a.runs):
            started = time.perf_counter()
            probe(conns[0], 5)
            one.append(time.perf_counter() - started)
            started = time.perf_counter()
            for offset in offsets:
                probe(conns[0], offset)
            sequential.append(time.perf_counter() - started)
            threads = [threading.Thread(target=probe, args=(conn, offset)) for conn, offset in zip(conns, offsets)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            parallel.append(time.perf_counter() - started)
        for conn in conns:
            conn.close()
        ms = lambda xs: statistics.median(xs) * 1e3  # noqa: E731
        print("real kachery-daemon, 1 GiB file, %d runs, medians" % a.runs)
        print("| row | time | per probe |")
        print("| --- | --- | --- |")
        print("| one 1-byte probe, warm connection | %.2f ms | %.2f ms |" % (ms(one), ms(one)))
        print("| %d probes one after another | %.1f ms | %.2f ms |" % (a.probes, ms(sequential), ms(sequential) / a.probes))
        print("| %d probes at once, one connection each | %.1f ms | %.2f ms |" % (a.probes, ms(parallel), ms(parallel) / a.probes))


if __name__ == "__main__":
    main()
