#!/usr/bin/env python3
"""kacheryfs benchmark: every row against a baseline measured in the same run, medians.

  python3 tests/bench/benchmark.py [--runs 5] [--quick] [--emulator node-like|fast] [-o opt=val,...]

The emulator runs --node-like by default: paced like the real Node.js daemon (65,536-byte
chunks, 400 MB/s a download, 700 MB/s in all, 1 ms a request), so that no row is flattered.

It creates its data, starts the emulator on loopback, mounts, and prints:
  warm sequential read (1 GiB)   `cat` through the mount again   vs `cat` of the local file (page cache)
  warm read, passthrough on/off  a remount with -o passthrough=auto and =off, `cat` again, vs the same;
                                 and the page cache two reads leave (Cached), auto vs off
  cold sequential read (1 GiB)   fresh cache + mount, `cat`      vs `curl` of the whole file from the emulator
  cold first 4 KiB (1 GiB file)  fresh mount: `head -c 4096`     vs one `curl` range request
  cold random 4 KiB (4 GiB file) 200 offsets, p50 and p99        vs single range requests (keep-alive)
  stat of cached entries         10,000 stats through the mount, first and again, vs 10,000 stats of local files
  peak RSS streaming 4 GiB       kacheryfs's VmRSS high-water mark
Ratios are kacheryfs / baseline in time (so lower is better), except for throughput rows,
which show kacheryfs / baseline in speed (higher is better). --quick shrinks everything for
a smoke run (CTest runs it as bench.smoke); real figures need the default sizes.
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import (cached_path, Emulator, Mount, PeakRss, put_bytes, put_manifest, put_sparse_file, rss_kib,  # noqa: E402
                              require_fuse, sha1_path)


def ab_order(run):
    """passthrough=auto and =off, in ABBA order across runs: neither is always measured first."""
    return ("auto", "off") if run % 2 == 0 else ("off", "auto")


def timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_quiet(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def cpu_seconds(pid):
    """User + system CPU time of a process so far, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def meminfo_kib(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def drop_page_cache():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def read_all(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


def in_threads(fns):
    """Runs the functions at once, one thread each; returns the time until all are done."""
    import threading
    errors = []

    def wrap(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="kfs-bench-")
        self.storage = os.path.join(self.tmp, "storage")
        self.originals = os.path.join(self.tmp, "orig")
        os.makedirs(self.storage)
        self.emulator = None
        self.count = 0

    def mount(self, cache=None, options=()):
        self.count += 1
        mnt = os.path.join(self.tmp, "mnt%d" % self.count)
        cache = cache or os.path.join(self.tmp, "cache%d" % self.count)
        opts = ["auth_file=" + self.emulator.auth_file] + list(options) + ([self.a.o] if self.a.o else [])
        return Mount(self.emulator.address, mnt, cache, opts), cache

    def warm_passthrough_rows(self, cache, path_of, rows, mode):
        """On a remount of a cache holding the 1 GiB file, with -o passthrough=mode: its warm
        `cat` (after one `cat`), and the page cache that two reads leave, from a dropped
        page cache (Cached in /proc/meminfo)."""
        m, _ = self.mount(cache, ["passthrough=" + mode])
        path = path_of(m)
        drop_page_cache()
        before = meminfo_kib("Cached")
        run_quiet(["cat", path])
        rows["warm_" + mode].append(timed(lambda: run_quiet(["cat", path])))
        rows["held_" + mode].append((meminfo_kib("Cached") - before) / 1024)
        rows["status_" + mode].append(os.getxattr(m.mountpoint, "user.kachery.passthrough").decode())
        self.done_with(m, cache, keep_cache=True)

    def done_with(self, m, cache, keep_cache=False):
        m.unmount()
        if not keep_cache:
            shutil.rmtree(cache, ignore_errors=True)

    def range_request(self, conn, sha1, start, length, exact=True):
        conn.request("POST", "/downloadFileData",
                     body=json.dumps({"fileKey": {"sha1": sha1}, "startByte": start, "endByte": start + length}),
                     headers={"KACHERY-CLIENT-AUTH-CODE": self.emulator.auth_code(), "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200 and (len(data) == length or not exact), (r.status, len(data))
        return data

    def through_passthrough(self, directory, names, measure):
        """Mounts `directory` with a minimal libfuse passthrough (what the kernel allows any
        FUSE mount) and returns measure(paths of names there); None when it is not built."""
        program = os.environ.get("KACHERYFS_PASSTHROUGH_BIN",
                                 os.path.join(os.path.dirname(os.environ.get("KACHERYFS_BIN", "build/kacheryfs")),
                                              "tests", "passthrough-fuse"))
        if not os.path.exists(program):
            return None
        mnt = os.path.join(self.tmp, "passthrough")
        os.makedirs(mnt, exist_ok=True)
        proc = subprocess.Popen([program, directory, mnt])
        try:
            paths = [os.path.join(mnt, n) for n in names]
            deadline = time.time() + 10
            while not os.path.exists(paths[0]):
                if time.time() > deadline or proc.poll() is not None:
                    return None
                time.sleep(0.02)
            return measure(paths)
        finally:
            subprocess.run(["fusermount3", "-u", mnt])
            proc.wait()

    def passthrough_warm(self, original):
        def measure(paths):
            run_quiet(["cat", paths[0]])  # into its page cache
            return timed(lambda: run_quiet(["cat", paths[0]]))
        return self.through_passthrough(os.path.dirname(original), [os.path.basename(original)], measure)

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.emulator.port)

    def requests_for(self, sha1):
        return len(self.emulator.downloads(sha1))

    def run(self):
        a = self.a
        big_size, huge_size = a.big_mb << 20, a.huge_mb << 20
        rnd = random.Random(1)
        # The 1 GiB file is dense random data; the 4 GiB one is sparse (random islands).
        big_original = os.path.join(self.originals, "big")
        os.makedirs(self.originals)
        with open(big_original, "wb") as f:
            block = os.urandom(1 << 20)
            for i in range(a.big_mb):
                f.write(hashlib.sha256(str(i).encode()).digest() + block[32:])
        big = subprocess.run(["sha1sum", big_original], capture_output=True, text=True).stdout.split()[0]
        os.makedirs(os.path.dirname(sha1_path(self.storage, big)))
        os.link(big_original, sha1_path(self.storage, big))
        big_manifest = put_manifest(self.storage, big_original)
        islands = sorted(rnd.randrange(0, huge_size - 65536) for _ in range(64))
        huge, huge_original = put_sparse_file(self.storage, huge_size, islands, 2, self.originals)
        smalls = [put_bytes(self.storage, b"entry %d\n" % i) for i in range(a.entries)]
        # 32 distinct 100 KiB files per run (parallel cold opens), and 2,000 files of ~3 KB
        mediums = [[put_bytes(self.storage, hashlib.sha256(b"m%d-%d" % (r, i)).digest() * 3200)
                    for i in range(32)] for r in range(a.runs)]
        manies = [[put_bytes(self.storage, hashlib.sha256(b"s%d-%d" % (r, i)).digest() * 94 + b"%d" % i)
                   for i in range(a.many)] for r in range(a.runs)]
        flags = ("--node-like",) if a.emulator == "node-like" else ()
        self.emulator = Emulator(self.storage, *flags, workdir=self.tmp)
        rows = {k: [] for k in ("warm", "cat", "passthrough", "cold", "curl", "curl4", "cpu", "first", "first_base", "first_requests",
                                "first_manifest", "first_manifest_requests",
                                "stat", "stat_base", "stat_again", "opens", "opens_base",
                                "rss_touched", "rss_forgotten", "inodes_held", "inodes_left",
                                "many_cold", "many_cold_base", "many_cached", "many_cached_base",
                                "many_warm", "many_warm_base", "many_passthrough", "many_warm_auto", "many_warm_off",
                                "warm_auto", "warm_off", "held_auto", "held_off", "status_auto", "status_off")}
        random_p50, random_p99, base_p50, base_p99, peaks = [], [], [], [], []
        try:
            run_quiet(["cat", big_original])
            for _ in range(a.runs):
                # Every run starts with the node's files in the page cache (the small-file rows
                # below drop it): the baselines and the emulator read from memory alike.
                for original in (big_original, huge_original):
                    run_quiet(["cat", original])
                for s in smalls:
                    os.stat(sha1_path(self.storage, s))
                rows["cat"].append(timed(lambda: run_quiet(["cat", big_original])))
                rows["curl"].append(timed(lambda: run_quiet(
                    ["curl", "-sf", "-o", "/dev/null", "-H", "KACHERY-CLIENT-AUTH-CODE: " + self.emulator.auth_code(),
                     "-H", "Content-Type: application/json", "--data", '{"fileKey":{"sha1":"%s"}}' % big,
                     "http://%s/downloadFileData" % self.emulator.address])))
                m, cache = self.mount()
                path = os.path.join(m.mountpoint, "sha1", big)
                before = self.requests_for(big)

                def first_4k():
                    with open(path, "rb", buffering=0) as f:
                        assert len(f.read(4096)) == 4096
                rows["first"].append(timed(first_4k))
                rows["first_requests"].append(self.requests_for(big) - before)
                self.done_with(m, cache)
                # the same, named with its manifest (sha1://...?manifest=...): no size discovery
                m, cache = self.mount()
                manifest_path = os.path.join(m.mountpoint, "sha1", big + "?manifest=" + big_manifest)
                before = len(self.emulator.downloads())

                def first_4k_manifest():
                    with open(manifest_path, "rb", buffering=0) as f:
                        assert len(f.read(4096)) == 4096
                rows["first_manifest"].append(timed(first_4k_manifest))
                rows["first_manifest_requests"].append(len(self.emulator.downloads()) - before)
                conn = self.connection()
                self.range_request(conn, big, 0, 4096)  # warm the connection
                rows["first_base"].append(timed(lambda: self.range_request(conn, big, 4096, 4096)))
                conn.close()
                self.done_with(m, cache)

                m, cache = self.mount()
                path = os.path.join(m.mountpoint, "sha1", big)
                cpu_before = cpu_seconds(m.proc.pid)
                rows["cold"].append(timed(lambda: run_quiet(["cat", path])))
                rows["cpu"].append((cpu_seconds(m.proc.pid) - cpu_before) / (big_size / (1 << 30)))
                rows["warm"].append(timed(lambda: run_quiet(["cat", path])))
                self.done_with(m, cache, keep_cache=True)
                for mode in ab_order(len(rows["warm_auto"])):
                    self.warm_passthrough_rows(cache, lambda m: os.path.join(m.mountpoint, "sha1", big), rows, mode)
                shutil.rmtree(cache, ignore_errors=True)
                drop_page_cache()
                for original in (big_original, huge_original):  # the emulator's files, as before
                    run_quiet(["cat", original])
                rows["passthrough"].append(self.passthrough_warm(big_original))
                # 4 parallel curl ranges of the whole file
                quarter = big_size // 4
                rows["curl4"].append(in_threads([
                    (lambda i=i: run_quiet(
                        ["curl", "-sf", "-o", "/dev/null", "-H", "KACHERY-CLIENT-AUTH-CODE: " + self.emulator.auth_code(),
                         "-H", "Content-Type: application/json", "--data",
                         '{"fileKey":{"sha1":"%s"},"startByte":%d,"endByte":%d}' % (big, i * quarter, (i + 1) * quarter),
                         "http://%s/downloadFileData" % self.emulator.address])) for i in range(4)]))

                # 32 parallel cold opens of distinct 100 KiB files, against 32 parallel downloads
                run_mediums = mediums[len(rows["opens"])]
                m, cache = self.mount()
                rows["opens"].append(in_threads([
                    (lambda s=s: read_all(os.path.join(m.mountpoint, "sha1", s))) for s in run_mediums]))
                self.done_with(m, cache)

                def download(sha1):
                    c = self.connection()
                    self.range_request(c, sha1, 0, 1 << 20, exact=False)
                    c.close()
                rows["opens_base"].append(in_threads([(lambda s=s: download(s)) for s in run_mediums]))


                # random 4 KiB reads of the 4 GiB file, cold
                m, cache = self.mount()
                path = os.path.join(m.mountpoint, "sha1", huge)
                os.stat(path)
                offsets = [rnd.randrange(0, huge_size - 4096) for _ in range(a.random_reads)]
                fd = os.open(path, os.O_RDONLY)
                posix_fadvise = getattr(os, "posix_fadvise", None)
                if posix_fadvise:
                    posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # as a random reader would
                times = []
                for off in offsets:
                    times.append(timed(lambda: os.pread(fd, 4096, off)))
                os.close(fd)
                random_p50.append(percentile(times, 50))
                random_p99.append(percentile(times, 99))
                conn = http.client.HTTPConnection("127.0.0.1", self.emulator.port)
                base = [timed(lambda: self.range_request(conn, huge, off, 4096)) for off in offsets]
                conn.close()
                base_p50.append(percentile(base, 50))
                base_p99.append(percentile(base, 99))
                self.done_with(m, cache)

                # peak RSS while streaming the 4 GiB file
                m, cache = self.mount()
                path = os.path.join(m.mountpoint, "sha1", huge)
                with PeakRss(m.proc.pid) as rss:
                    run_quiet(["cat", path])
                peaks.append(rss.peak_mib)
                self.done_with(m, cache)

                # stat of cached entries: a cache that holds them, a fresh mount
                cache = os.path.join(self.tmp, "stat-cache")
                if not os.path.exists(cache):
                    for s in smalls:
                        os.makedirs(os.path.dirname(cached_path(cache, s)), exist_ok=True)
                        shutil.copyfile(sha1_path(self.storage, s), cached_path(cache, s))
                m, cache = self.mount(cache)
                paths = [os.path.join(m.mountpoint, "sha1", s) for s in smalls]
                locals_ = [sha1_path(self.storage, s) for s in smalls]
                rss_before = rss_kib(m.proc.pid)
                rows["stat"].append(timed(lambda: [os.stat(p) for p in paths]))
                rss_touched = rss_kib(m.proc.pid)
                rows["stat_again"].append(timed(lambda: [os.stat(p) for p in paths]))
                rows["stat_base"].append(timed(lambda: [os.stat(p) for p in locals_]))
                # The mount's memory per object touched, and what it holds once the kernel
                # forgets them (dentries and inodes dropped: FUSE forgets reach the mount).
                held = int(os.getxattr(m.mountpoint, "user.kachery.inodes"))
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("2\n")
                deadline = time.time() + 10
                while int(os.getxattr(m.mountpoint, "user.kachery.inodes")) > held // 10 and time.time() < deadline:
                    time.sleep(0.05)
                rows["rss_touched"].append((rss_touched - rss_before) * 1e5 / a.entries / 1024)
                rows["rss_forgotten"].append((rss_kib(m.proc.pid) - rss_before) * 1e5 / a.entries / 1024)
                rows["inodes_held"].append(held)
                rows["inodes_left"].append(int(os.getxattr(m.mountpoint, "user.kachery.inodes")))
                self.done_with(m, cache, keep_cache=True)

                # Last in the run: these rows drop the page cache.
                # 2,000 small files one after another: cold, cached after a remount, warm
                run_many = manies[len(rows["many_cold"])]
                m, cache = self.mount()
                paths = [os.path.join(m.mountpoint, "sha1", s) for s in run_many]
                rows["many_cold"].append(timed(lambda: [read_all(p) for p in paths]))
                conn = self.connection()
                rows["many_cold_base"].append(timed(
                    lambda: [self.range_request(conn, s, 0, 1 << 20, exact=False) for s in run_many]))
                conn.close()
                self.done_with(m, cache, keep_cache=True)
                m, cache = self.mount(cache)
                paths = [os.path.join(m.mountpoint, "sha1", s) for s in run_many]
                cached = [cached_path(cache, s) for s in run_many]
                drop_page_cache()
                rows["many_cached"].append(timed(lambda: [read_all(p) for p in paths]))
                drop_page_cache()
                rows["many_cached_base"].append(timed(lambda: [read_all(p) for p in cached]))
                rows["many_warm"].append(timed(lambda: [read_all(p) for p in paths]))
                rows["many_warm_base"].append(timed(lambda: [read_all(p) for p in cached]))
                self.done_with(m, cache, keep_cache=True)
                # Warm through a remount as through the minimal libfuse mount below: one pass
                # into the page caches, then the timed one.
                modes = ab_order(len(rows["many_warm_auto"]))
                for mode in modes:
                    m, cache = self.mount(cache, ["passthrough=" + mode])
                    paths = [os.path.join(m.mountpoint, "sha1", s) for s in run_many]
                    [read_all(p) for p in paths]
                    rows["many_warm_" + mode].append(timed(lambda: [read_all(p) for p in paths]))
                    self.done_with(m, cache, keep_cache=mode != modes[-1])
                flat = os.path.join(self.tmp, "flat")
                shutil.rmtree(flat, ignore_errors=True)
                os.makedirs(flat)
                for s in run_many:
                    shutil.copyfile(sha1_path(self.storage, s), os.path.join(flat, s))

                def warm_files(paths):
                    [read_all(p) for p in paths]
                    return timed(lambda: [read_all(p) for p in paths])
                rows["many_passthrough"].append(self.through_passthrough(flat, run_many, warm_files))
        finally:
            self.emulator.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

        med = {k: statistics.median(v) for k, v in rows.items()
               if k not in ("passthrough", "many_passthrough", "status_auto", "status_off")}
        print("kacheryfs benchmark: %d runs, medians; emulator %s; files %d MiB and %d MiB; %d random reads; %d entries%s" %
              (a.runs, a.emulator, a.big_mb, a.huge_mb, a.random_reads, a.entries, " (QUICK: smoke test only)" if a.quick else ""))
        print("%-34s %14s %14s %8s" % ("", "kacheryfs", "baseline", "ratio"))
        mb = big_size / 1e6
        print("%-34s %9.0f MB/s %9.0f MB/s %8.2f  speed vs cat of the local file (page cache)" %
              ("warm sequential read", mb / med["warm"], mb / med["cat"], med["cat"] / med["warm"]))
        passthrough = [t for t in rows["passthrough"] if t is not None]
        if passthrough:
            pt = statistics.median(passthrough)
            print("%-34s %9.0f MB/s %9.0f MB/s %8.2f  a minimal libfuse passthrough mount, warm, vs the same cat" %
                  ("warm read, FUSE passthrough", mb / pt, mb / med["cat"], med["cat"] / pt))
            print("%-34s %9.0f MB/s %9.0f MB/s %8.2f  kacheryfs vs that passthrough: what FUSE itself allows" %
                  ("warm read, kacheryfs vs passthrough", mb / med["warm"], mb / pt, pt / med["warm"]))
        print("%-34s %9.0f MB/s %9.0f MB/s %8.2f  a remount, passthrough=auto (%s), vs the same cat" %
              ("warm read, kernel passthrough", mb / med["warm_auto"], mb / med["cat"], med["cat"] / med["warm_auto"],
               rows["status_auto"][-1]))
        print("%-34s %9.0f MB/s %9.0f MB/s %8.2f  a remount, passthrough=off, vs the same cat" %
              ("warm read, passthrough=off", mb / med["warm_off"], mb / med["cat"], med["cat"] / med["warm_off"]))
        print("%-34s %10.0f MiB %10.0f MiB %8.2f  page cache after two reads of the %d MiB file: auto vs off" %
              ("page cache held, warm file", med["held_auto"], med["held_off"], med["held_auto"] / med["held_off"],
               a.big_mb))
        print("%-34s %9.0f MB/s %9.0f MB/s %8.2f  speed vs curl of the whole file" %
              ("cold sequential read", mb / med["cold"], mb / med["curl"], med["curl"] / med["cold"]))
        print("%-34s %9.0f MB/s %9.0f MB/s %8.2f  speed vs 4 parallel curl ranges" %
              ("cold sequential read", mb / med["cold"], mb / med["curl4"], med["curl4"] / med["cold"]))
        print("%-34s %12.2f s %14s %8s  kacheryfs's user+system CPU per GiB, cold `cat`" %
              ("CPU per GiB, cold", med["cpu"], "", ""))
        print("%-34s %11.2f ms %11.2f ms %8.2f  time vs one 4 KiB range on a warm connection; %d requests before it" %
              ("cold first 4 KiB", med["first"] * 1e3, med["first_base"] * 1e3, med["first"] / med["first_base"],
               med["first_requests"]))
        print("%-34s %11.2f ms %11.2f ms %8.2f  the same with ?manifest= (no size discovery); %d requests before it" %
              ("cold first 4 KiB, with manifest", med["first_manifest"] * 1e3, med["first_base"] * 1e3,
               med["first_manifest"] / med["first_base"], med["first_manifest_requests"]))
        print("%-34s %11.2f ms %11.2f ms %8.2f  time vs 32 parallel downloads (one connection each)" %
              ("32 parallel cold opens, 100 KiB", med["opens"] * 1e3, med["opens_base"] * 1e3, med["opens"] / med["opens_base"]))
        n = a.many
        print("%-34s %11.1f us %11.1f us %8.2f  per file, vs a keep-alive client downloading them in turn" %
              ("%d small files, cold" % n, med["many_cold"] / n * 1e6, med["many_cold_base"] / n * 1e6,
               med["many_cold"] / med["many_cold_base"]))
        print("%-34s %11.1f us %11.1f us %8.2f  per file, after a remount, page cache dropped, vs the cache files" %
              ("%d small files, cached" % n, med["many_cached"] / n * 1e6, med["many_cached_base"] / n * 1e6,
               med["many_cached"] / med["many_cached_base"]))
        print("%-34s %11.1f us %11.1f us %8.2f  per file, the mount's pages dropped, vs the cache files (page cache)" %
              ("%d small files, cache files warm" % n, med["many_warm"] / n * 1e6, med["many_warm_base"] / n * 1e6,
               med["many_warm"] / med["many_warm_base"]))
        print("%-34s %11.1f us %11.1f us %8.2f  per file, a remount read twice: passthrough=auto (under 32 KiB: the "
              "normal path) vs off" % ("%d small files, warm, auto vs off" % n, med["many_warm_auto"] / n * 1e6,
                                       med["many_warm_off"] / n * 1e6, med["many_warm_auto"] / med["many_warm_off"]))
        print("%-34s %11.1f us %11.1f us %8.2f  per file, the same (auto) vs the cache files (page cache)" %
              ("%d small files, warm" % n, med["many_warm_auto"] / n * 1e6, med["many_warm_base"] / n * 1e6,
               med["many_warm_auto"] / med["many_warm_base"]))
        many_pt = [t for t in rows["many_passthrough"] if t is not None]
        if many_pt:
            pt = statistics.median(many_pt)
            print("%-34s %11.1f us %11.1f us %8.2f  per file, the same (auto) vs a minimal libfuse passthrough (an "
                  "open round trip each), read the same way" % ("%d small files, warm, vs FUSE" % n,
                                                               med["many_warm_auto"] / n * 1e6, pt / n * 1e6,
                                                               med["many_warm_auto"] / pt))
        p50, p99 = statistics.median(random_p50), statistics.median(random_p99)
        b50, b99 = statistics.median(base_p50), statistics.median(base_p99)
        print("%-34s %11.2f ms %11.2f ms %8.2f  time vs single range requests" % ("cold random 4 KiB p50", p50 * 1e3, b50 * 1e3, p50 / b50))
        print("%-34s %11.2f ms %11.2f ms %8.2f" % ("cold random 4 KiB p99", p99 * 1e3, b99 * 1e3, p99 / b99))
        print("%-34s %11.2f us %11.2f us %8.2f  time vs stat of local files (first stat: a FUSE lookup)" %
              ("stat of a cached entry, first", med["stat"] / a.entries * 1e6, med["stat_base"] / a.entries * 1e6, med["stat"] / med["stat_base"]))
        print("%-34s %11.2f us %11.2f us %8.2f  (kernel dentry/attr cache: day-long timeouts)" %
              ("stat of a cached entry, again", med["stat_again"] / a.entries * 1e6, med["stat_base"] / a.entries * 1e6, med["stat_again"] / med["stat_base"]))
        print("%-34s %10.1f MiB %14s %8s  limit 100 MiB" % ("peak RSS streaming %d MiB" % a.huge_mb, max(peaks), "", ""))
        print("%-34s %10.1f MiB %14s %8s  RSS growth per 10^5 objects looked up (%d entries)" %
              ("RSS per 10^5 objects touched", med["rss_touched"], "", "", a.entries))
        print("%-34s %10.1f MiB %14s %8s  the same once the kernel forgot them: inodes %d -> %d (freed memory is "
              "reused, not returned)" % ("RSS per 10^5, forgotten", med["rss_forgotten"], "", "",
                                         med["inodes_held"], med["inodes_left"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--emulator", choices=("node-like", "fast"), default="node-like",
                    help="node-like (default): paced like the real Node.js daemon; fast: loopback speed")
    ap.add_argument("-o", default="", help="extra kacheryfs -o options, e.g. block_size=1M")
    a = ap.parse_args()
    a.big_mb, a.huge_mb, a.random_reads, a.entries, a.many = 1024, 4096, 200, 10000, 2000
    if a.quick:
        a.big_mb, a.huge_mb, a.random_reads, a.entries, a.many, a.runs = 96, 256, 20, 300, 100, 1
    require_fuse()
    Bench(a).run()


if __name__ == "__main__":
    main()
