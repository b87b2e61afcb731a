"""A daemon that answers wrongly on purpose (tests/hostile_daemon.py), through real mounts:
every case ends in a clear errno within a bounded time, with bounded traffic, and nothing
unverified or forged reaches a reader, the cache or the log."""
import errno
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import (cached_path, Emulator, HostileServer, Mount, put_bytes, put_random_file,  # noqa: E402
                               require_fuse, sha1_path)

class HostileDaemon(unittest.TestCase):
    mode = None

    def setUp(self):
        require_fuse()
        self.tmp = tempfile.mkdtemp(prefix="kfs-hostile-")
        self.storage = os.path.join(self.tmp, "storage")
        os.makedirs(self.storage)
        self.small = put_bytes(self.storage, os.urandom(3000))
        self.mnt = os.path.join(self.tmp, "mnt")
        self.cache = os.path.join(self.tmp, "cache")
        self.log = os.path.join(self.tmp, "requests.log")
        self.server = None
        self.mounts = []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for m in self.mounts:
            m.unmount()
        if self.server:
            self.server.stop()
        subprocess.run(["rm", "-rf", self.tmp])

    def start(self, mode):
        self.server = HostileServer(self.storage, mode, self.log)

    def mount(self, mode, *options):
        self.server_mode = mode
        self.start(mode)
        m = Mount(self.server.address, self.mnt, self.cache,
                  ["timeout=3", "connect_timeout=2", "low_speed_time=3"] + list(options))
        self.mounts.append(m)
        return m

    def requests(self):
        """The content requests the server got (not /probe: keep_warm times some in the
        background)."""
        lines = self.server.requests() if self.server else []
        return [line for line in lines if "/probe" not in line]

    def assertEioWithin(self, seconds, action):
        started = time.monotonic()
        with self.assertRaises(OSError) as ctx:
            action()
        elapsed = time.monotonic() - started
        self.assertEqual(ctx.exception.errno, errno.EIO, ctx.exception)
        self.assertLess(elapsed, seconds, "took %.1f s" % elapsed)
        self.report("EIO", elapsed)
        return elapsed

    def report(self, outcome, elapsed):
        # One row of the hostile matrix: case, outcome, time, the mount's peak RSS, requests.
        peak = "?"
        if self.mounts and self.mounts[-1].proc.poll() is None:
            with open("/proc/%d/status" % self.mounts[-1].proc.pid) as f:
                peak = next((l.split()[1] for l in f if l.startswith("VmHWM")), "?")
        print("\nhostile %-14s %-4s %6.2f s  peak RSS %s kB  %d requests" %
              (self.server_mode, outcome, elapsed, peak, len(self.requests())), file=sys.stderr)

    def read(self, sha1):
        with open(os.path.join(self.mnt, "sha1", sha1), "rb") as f:
            return f.read()

    def test_lookups_of_different_files_in_sha1_reach_the_node_at_once(self):
        # The server answers the first 4 downloads only when all 4 are in flight together:
        # lookups that the kernel (or kacheryfs) serializes cannot pass. Debian's libfuse
        # 3.14 never tells the kernel FUSE_PARALLEL_DIROPS; kacheryfs adds it (session_io_hook).
        files = [put_bytes(self.storage, os.urandom(3000)) for _ in range(4)]
        m = self.mount("rendezvous", "retries=0")
        results = {}

        def look(sha1):
            try:
                results[sha1] = os.stat(os.path.join(self.mnt, "sha1", sha1)).st_size
            except OSError as e:
                results[sha1] = e
        threads = [threading.Thread(target=look, args=(f,)) for f in files]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, {f: 3000 for f in files}, m.output())
        self.assertIn("parallel_dirops=true", m.output())

    def test_oversize_replies_are_an_error_at_once(self):
        m = self.mount("oversize")
        self.assertEioWithin(20, lambda: self.read(self.small))
        self.assertLessEqual(len(self.requests()), 5, self.requests())
        self.assertIn("more than the", m.output())
        self.assertFalse(os.path.exists(cached_path(self.cache, self.small)))

    def test_size_discovery_is_bounded(self):
        self.mount("endless-size")
        self.assertEioWithin(60, lambda: os.stat(os.path.join(self.mnt, "sha1", "1" * 40)))
        self.assertLessEqual(len(self.requests()), 80, "at most 64 doublings")

    def test_a_file_of_petabytes_is_refused_and_the_mount_lives_on(self):
        # 2^51 bytes: the size is found, but a page map for it would take 64 GiB of memory.
        m = self.mount("huge-size")
        path = os.path.join(self.mnt, "sha1", "2" * 40)
        self.assertEqual(os.stat(path).st_size, 1 << 51)
        with self.assertRaises(OSError) as ctx:
            os.open(path, os.O_RDONLY)
        self.assertEqual(ctx.exception.errno, errno.EFBIG, (ctx.exception, m.output()))
        self.assertIsNone(m.proc.poll(), m.output())
        self.assertEqual(os.stat(path).st_size, 1 << 51, "the mount still answers")

    def test_a_trickling_body_is_cut_by_the_low_speed_limit(self):
        m = self.mount("trickle")
        elapsed = self.assertEioWithin(30, lambda: self.read(self.small))
        self.assertGreaterEqual(elapsed, 2.5, "not before low_speed_time")
        self.assertIn("slower than", m.output())

    def test_an_endless_body_is_cut(self):
        self.mount("endless-body")
        self.assertEioWithin(20, lambda: self.read(self.small))

    def test_100_continue_is_skipped_and_never_poisons_a_connection(self):
        files = {put_bytes(self.storage, os.urandom(5000 + i)): None for i in range(4)}
        self.mount("continue")
        started = time.monotonic()
        for sha1 in list(files) * 2:
            with open(os.path.join(self.mnt, "sha1", sha1), "rb") as f:
                data = f.read()
            self.assertEqual(subprocess.run(["sha1sum"], input=data, capture_output=True).stdout.split()[0].decode(), sha1)
        self.report("ok", time.monotonic() - started)

    def test_forged_probe_fields_go_nowhere(self):
        m = self.mount("bad-probe")
        self.assertEioWithin(20, lambda: open(os.path.join(self.mnt, "kachery-node-id")).read())
        output = m.output()
        self.assertFalse(any(l.startswith("INJECTED") for l in output.splitlines()), output)
        self.assertNotIn("\x1b", output)
        self.assertNotIn("\x00", output)
        self.assertFalse(os.path.exists(os.path.join(self.cache, "meta", "kachery-node-id")))
        self.assertEqual(self.read(self.small)[:0], b"", "content still reads")

    def test_a_content_length_reply_is_not_taken_for_end_of_file(self):
        self.mount("content-length")
        self.assertEioWithin(20, lambda: os.stat(os.path.join(self.mnt, "sha1", self.small)))


# The rest of the matrix: (mode, what the reader does, mount options, what the log must say).
# Each ends in EIO within the deadline (http10: the right bytes), and the mount survives
# with bounded RSS and fds, having cached nothing it did not verify.
MATRIX = [
    ("bad-chunk", "read", (), "malformed"),
    ("header-flood", "read", (), "header"),
    # Fields that arrive one by one, each read parsed before the next arrives.
    ("header-drip", "read", (), "header limit exceeded"),
    ("slow-status", "read", (), "first-byte timeout"),
    ("redirect", "read", (), "302"),
    ("http10", "read-ok", (), None),
    ("forbidden", "read", (), "auth code"),
    ("silent", "read", (), "first-byte timeout"),
    ("probe-not-json", "node-id", (), "not a kachery daemon"),
    ("probe-huge", "node-id", (), "not a kachery daemon"),
    ("probe-array", "node-id", (), "not a kachery daemon"),
    ("load-endless", "load", ("channel=testchannel", "load_timeout=3"), "did not finish within load_timeout"),
    ("load-huge", "load", ("channel=testchannel",), "JsonSocket message"),
]
DEADLINE = 30  # seconds: the timeouts here are 2-3 s, plus retries


def matrix_case(mode, action, options, cause):
    def test(self):
        m = self.mount(mode, *options)
        target = {"read": os.path.join(self.mnt, "sha1", self.small),
                  "read-ok": os.path.join(self.mnt, "sha1", self.small),
                  "node-id": os.path.join(self.mnt, "kachery-node-id"),
                  "load": os.path.join(self.mnt, "sha1", "2" * 40)}[action]
        if action == "read-ok":
            started = time.monotonic()
            self.assertEqual(self.read(self.small), open(os.path.join(
                self.storage, "sha1", self.small[0:2], self.small[2:4], self.small[4:6], self.small), "rb").read())
            self.report("ok", time.monotonic() - started)
        else:
            self.assertEioWithin(DEADLINE, lambda: open(target, "rb").read())
            if action == "read":
                self.assertFalse(os.path.exists(cached_path(self.cache, self.small)), "nothing unverified cached")
        self.assertTrue(os.listdir(self.mnt), "the mount survives")
        pid = m.proc.pid
        with open("/proc/%d/status" % pid) as f:
            peak_kb = int(next(l.split()[1] for l in f if l.startswith("VmHWM")))
        limit_mb = 1024 if "ASAN_OPTIONS" in os.environ else 200  # the sanitizers' overhead
        self.assertLess(peak_kb, limit_mb * 1024, "peak RSS")
        self.assertLess(len(os.listdir("/proc/%d/fd" % pid)), 100, "fds")
        if cause:
            self.assertIn(cause, m.output())
    return test


for _mode, _action, _options, _cause in MATRIX:
    setattr(HostileDaemon, "test_matrix_" + _mode.replace("-", "_"), matrix_case(_mode, _action, _options, _cause))


class CorruptLargeFile(unittest.TestCase):
    """verify=normal serves a large file's bytes before the whole file is verified, but no
    reader reaches the end of a corrupt file with success."""

    def test_cat_of_a_corrupt_large_file_fails(self):
        require_fuse()
        tmp = tempfile.mkdtemp(prefix="kfs-corrupt-")
        self.addCleanup(subprocess.run, ["rm", "-rf", tmp])
        storage = os.path.join(tmp, "storage")
        sha1, original = put_random_file(storage, 30_000_000, 7, os.path.join(tmp, "orig"))
        emulator = Emulator(storage, "--wrong-bytes", sha1, "--corrupt-offset", "12345678", workdir=tmp)
        self.addCleanup(emulator.stop)
        m = Mount(emulator.address, os.path.join(tmp, "mnt"), os.path.join(tmp, "cache"),
                  ["auth_file=" + emulator.auth_file, "whole_max=10M"])
        self.addCleanup(m.unmount)
        path = os.path.join(tmp, "mnt", "sha1", sha1)
        for tool in (["cat", path], ["sha1sum", path], ["cp", path, os.path.join(tmp, "copy")]):
            r = subprocess.run(tool, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
            self.assertNotEqual(r.returncode, 0, "%s finished successfully on corrupt bytes" % tool[0])
            self.assertIn(b"Input/output error", r.stderr)


if __name__ == "__main__":
    unittest.main()
