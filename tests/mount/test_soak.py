"""A bounded soak (CTest mount.soak, about 60 s): 64 readers over 200 files of mixed sizes
through one mount, while the emulator answers 500, drops connections and stalls at random
(--chaos) and rotates its auth code every 2 s. Then kacheryfs-cache verify.

Asserts: 0 wrong bytes; no reader past its deadline; no growth of the mount's fds (pipes
aside: libfuse's splice pipes, one pair per worker thread, are bounded by the threads) or
threads between two idle points (each once the kernel released every open, the mount's
connections closed as idle and no object file is open); no temp file left; a verify that passes. EIO is allowed
(a fault can outlast the retries) and counted.

  KFS_SOAK_SECONDS=600 python3 -m unittest test_soak     # a longer run, same checks"""
import hashlib
import os
import random
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import KACHERYFS, MountTestCase, mount_connections, put_bytes  # noqa: E402

TOOL = os.environ.get("KACHERYFS_CACHE_BIN", os.path.join(os.path.dirname(KACHERYFS), "kacheryfs-cache"))
SECONDS = float(os.environ.get("KFS_SOAK_SECONDS", "60"))
READERS = 64
DEADLINE = 45.0  # seconds one read may take: timeouts and retries, never a hang


def counts(pid):
    """The mount's fds other than pipes, its pipe fds and its threads. libfuse gives each
    worker thread a pipe pair of its own at its first splice and keeps it while the thread
    lives: pipes are bounded by the threads, not by the work."""
    targets = fd_targets(pid)
    pipes = sum(t.startswith("pipe:") for t in targets)
    threads = len(os.listdir("/proc/%d/task" % pid))
    return len(targets) - pipes, pipes, threads


def fd_targets(pid):
    """What the mount's fds point to (for the message of a failed check)."""
    targets = []
    for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
        try:
            targets.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    return targets


class Soak(MountTestCase):
    emulator_flags = ("--chaos", "4:7", "--auth-period", "2")
    hang_guard = 120

    def test_soak(self):
        rnd = random.Random(5)
        sizes = [rnd.randrange(0, 100_000) for _ in range(170)] + \
                [rnd.randrange(1 << 20, 3 << 20) for _ in range(25)] + \
                [rnd.randrange(5 << 20, 9 << 20) for _ in range(5)]  # streamed: whole_max=4M
        files = [put_bytes(self.storage, rnd.randbytes(size)) for size in sizes]
        # A cache smaller than the files: evictions make readers fetch again and again.
        # keep_warm=0: an idle mount then holds no connection at all, so that one leaked is seen.
        m = self.mount("whole_max=4M", "cache_max=40M", "timeout=3", "connect_timeout=2",
                       "low_speed_time=3", "retries=3", "keep_warm=0")
        pid = m.proc.pid
        port = self.emulator.port
        stats = {"reads": 0, "eio": 0, "wrong": 0, "late": 0, "longest": 0.0, "bytes": 0}
        lock = threading.Lock()

        def reader(seed, stop):
            r = random.Random(seed)
            while time.monotonic() < stop:
                sha1 = r.choice(files)
                started = time.monotonic()
                try:
                    with open(self.content(sha1), "rb") as f:
                        data = f.read()
                    wrong = hashlib.sha1(data).hexdigest() != sha1
                    eio = False
                except OSError:
                    wrong, eio, data = False, True, b""
                took = time.monotonic() - started
                with lock:
                    stats["reads"] += 1
                    stats["eio"] += eio
                    stats["wrong"] += wrong
                    stats["late"] += took > DEADLINE
                    stats["longest"] = max(stats["longest"], took)
                    stats["bytes"] += len(data)

        def load(seconds, seed):
            stop = time.monotonic() + seconds
            threads = [threading.Thread(target=reader, args=(seed + i, stop)) for i in range(READERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(seconds + 2 * DEADLINE)
            self.assertFalse(any(t.is_alive() for t in threads), "a reader hangs")
            # Idle: the kernel's releases of the readers' opens have arrived (they are sent in
            # the background, after close returns), background transfers end, the emulator
            # closes idle keep-alive connections and the mount prunes them. A leaked
            # connection never goes.
            self.wait_for(lambda: os.getxattr(self.mnt, "user.kachery.open_files") == b"0",
                          "the kernel to release the readers' opens")
            self.wait_for(lambda: not mount_connections(pid, port), "the mount's connections to close when idle")
            # ...and the background work on the objects (whole-file fetches, verification)
            # has let go of their files: an idle mount holds no object open. An entry that
            # leaked would keep its files open and fail here, naming them.
            objects = (os.path.join(self.cache, "objects"), os.path.join(self.cache, "partial"))
            self.wait_for(lambda: not [t for t in fd_targets(pid) if t.startswith(objects)],
                          "the mount to let go of its object files when idle: %s" % fd_targets(pid))
            return counts(pid)

        # Two loads, each followed by an idle point: what a leak adds grows with the work
        # done, so the second idle point must not be above the first.
        fds_first, _, threads_first = load(SECONDS / 3, 0)
        fds_second, pipes_second, threads_second = load(SECONDS * 2 / 3, 1000)
        print("\nsoak %.0f s: %d reads, %.0f MB, %d EIO, %d wrong, longest read %.1f s; "
              "fds %d -> %d, threads %d -> %d" %
              (SECONDS, stats["reads"], stats["bytes"] / 1e6, stats["eio"], stats["wrong"], stats["longest"],
               fds_first, fds_second, threads_first, threads_second), file=sys.stderr)
        self.assertEqual(stats["wrong"], 0, "wrong bytes reached a reader")
        self.assertEqual(stats["late"], 0, "a read took longer than %d s" % DEADLINE)
        self.assertGreater(stats["reads"], 200)
        self.assertLessEqual(fds_second, fds_first + 2, "file descriptors grow: %s" % fd_targets(pid))
        self.assertLessEqual(pipes_second, 2 * threads_second, "pipes outnumber the threads' splice pipes")
        self.assertLessEqual(threads_second, max(threads_first, 16) + 2, "threads grow")
        self.unmount(m)
        self.assertEqual(os.listdir(os.path.join(self.cache, "tmp")), [], "temp files left behind")
        r = subprocess.run([TOOL, "-o", "cache_dir=" + self.cache, "verify"], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        print(r.stdout.strip().splitlines()[-1], file=sys.stderr)
        self.assertIn(" 0 index entries repaired", r.stdout, "the index drifted from the cache")


if __name__ == "__main__":
    unittest.main()
