"""Real mounts against a daemon that is down, slow, rotating its auth code, corrupting
bytes, failing with 500s or dropping connections: readers get correct bytes or a clear
errno, never a hang, and nothing wrong is ever cached."""
import errno
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import (MountTestCase, discovery_bytes, fetched_ranges, free_port, overlaps,  # noqa: E402
                              put_random_file, tool_sha1)

# A guard against hangs, not a performance assertion: far above any expected duration.
HANG_GUARD = 60


class DaemonDown(MountTestCase):
    def test_cached_files_stay_readable_uncached_fail_with_eio(self):
        cached_sha1, cached_original = put_random_file(self.storage, 3_000_000, 1, self.originals)
        other_sha1, _ = put_random_file(self.storage, 100_000, 2, self.originals)
        m = self.mount()
        self.assertSameBytes(self.content(cached_sha1), cached_original)
        self.unmount(m)
        self.emulator.stop()

        m = self.mount("timeout=2", "connect_timeout=2")  # same port, nobody listening
        self.assertIn("unreachable", m.output())
        warning = [l for l in m.output().splitlines() if "unreachable" in l]
        self.assertEqual(len(warning), 1, m.output())
        self.assertSameBytes(self.content(cached_sha1), cached_original)
        self.assertIn(cached_sha1, os.listdir(os.path.join(self.mnt, "sha1")))
        self.assertEioReading(self.content(other_sha1), within=HANG_GUARD)
        # the daemon comes back: the same mount fetches again
        self.emulator.start()
        time.sleep(0.1)
        deadline = time.monotonic() + 15  # the negative entry for EIO is not cached: retry at once
        while True:
            try:
                self.assertEqual(tool_sha1(self.content(other_sha1)), other_sha1)
                break
            except (AssertionError, subprocess.CalledProcessError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def test_unreachable_daemon_is_one_clear_line_in_foreground(self):
        port = free_port()
        m = self.mount(source="127.0.0.1:%d" % port)
        lines = [l for l in m.output().splitlines() if "unreachable" in l]
        self.assertEqual(len(lines), 1, m.output())
        self.assertIn("127.0.0.1:%d" % port, lines[0])
        self.assertIn("onnection refused", lines[0])


class WrongBytes(MountTestCase):
    def test_hash_mismatch_is_eio_and_nothing_is_cached(self):
        small, _ = put_random_file(self.storage, 5000, 3, self.originals)
        big, _ = put_random_file(self.storage, 9_000_000, 4, self.originals)
        good, good_original = put_random_file(self.storage, 7000, 5, self.originals)
        self.emulator.restart("--wrong-bytes", small, "--wrong-bytes", big)
        m = self.mount()
        for sha1 in (small, big):
            with self.assertRaises(OSError) as ctx:
                with open(self.content(sha1), "rb") as f:
                    f.read()
            self.assertEqual(ctx.exception.errno, errno.EIO, sha1)
            # (the verifier fails the readers first, then logs the line)
            self.wait_for(lambda: any("mismatch" in l and sha1 in l for l in m.output().splitlines()),
                          "the mismatch of %s to be logged" % sha1)
        self.assertSameBytes(self.content(good), good_original)
        complete, temps = self.cache_entries()
        names = [os.path.basename(p) for p in complete]
        self.assertNotIn(small, names)
        self.assertNotIn(big, names)
        self.assertIn(good, names)
        self.assertEqual(temps, [])


class AuthRotation(MountTestCase):
    emulator_flags = ("--auth-period", "1")

    def test_reads_keep_working_while_the_code_rotates(self):
        files = [put_random_file(self.storage, 2_000_000 + i, 10 + i, self.originals) for i in range(6)]
        self.mount("range_size=256K")
        for sha1, original in files:
            self.assertSameBytes(self.content(sha1), original)
            time.sleep(0.8)  # six reads over ~5 s: several rotations, each past the previous code
        rejected = [l for l in self.emulator.log_lines() if "status=403" in l]
        self.assertEqual(rejected, [])  # 403s are not logged as downloads; the reads above are the proof


class RemountFromCache(MountTestCase):
    def test_remount_serves_from_cache_without_requests(self):
        files = [put_random_file(self.storage, size, 20 + i, self.originals)
                 for i, size in enumerate([10, 70_000, 5_000_000])]
        m = self.mount()
        for sha1, original in files:
            self.assertSameBytes(self.content(sha1), original)
        self.unmount(m)
        before = len(self.emulator.downloads())
        self.mount()
        for sha1, original in files:
            self.assertSameBytes(self.content(sha1), original)
            self.assertEqual(os.stat(self.content(sha1, layout=True)).st_size, os.path.getsize(original))
        self.assertEqual(self.emulator.downloads()[before:], [])


class ParallelReaders(MountTestCase):
    def test_eight_readers_cause_one_download(self):
        sha1, original = put_random_file(self.storage, 30_000_000, 30, self.originals)
        self.emulator.restart("--first-byte-delay-ms", "200")
        self.mount()
        os.stat(self.content(sha1))  # size discovery first; then all readers race for the bytes
        # Size discovery's last windows below EOF are logged once the node has sent them,
        # after the stat has its answer.
        self.wait_for(self.emulator.all_answered, "the node to answer what was sent")
        discovered = len(self.emulator.downloads(sha1))
        barrier = threading.Barrier(8)
        digests = [None] * 8

        def reader(i):
            barrier.wait()
            digests[i] = subprocess.run(["sha1sum", self.content(sha1)], capture_output=True, text=True).stdout.split()[0]

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD)
        self.assertEqual(digests, [sha1] * 8)
        # Every byte once, counting what size discovery brought (kept, not fetched again).
        ranges = discovery_bytes(self.emulator.downloads(sha1)[:discovered]) + \
            fetched_ranges(self.emulator.downloads(sha1)[discovered:])
        self.assertEqual(overlaps(ranges), [], "bytes were fetched twice")
        self.assertEqual(sum(end - start for start, end in ranges), 30_000_000)
        self.assertSameBytes(self.content(sha1), original)


class SlowAndBrokenTransfers(MountTestCase):
    def test_ctrl_c_on_a_stalled_lookup_returns_eintr_promptly(self):
        sha1, _ = put_random_file(self.storage, 6_000_000, 40, self.originals)
        # Size discovery's first answer stalls: the open's lookup waits for it.
        self.emulator.restart("--fault-sha1", sha1, "--stall-after-bytes", "1000", "--stall-ms", "100000")
        self.mount("timeout=120")
        arrived = self.emulator.downloads_arrived()
        reader = subprocess.Popen([sys.executable, "-c",
                                   "import sys\ntry:\n open(sys.argv[1],'rb')\nexcept KeyboardInterrupt:\n"
                                   " print('interrupted')\n", self.content(sha1)], stdout=subprocess.PIPE, text=True)
        self.wait_for(lambda: self.emulator.downloads_arrived() > arrived, "the lookup to reach the node")
        self.assertIsNone(reader.poll(), "the open should be stuck on the stalled lookup")
        interrupted_at = time.monotonic()
        reader.send_signal(signal.SIGINT)
        out, _ = reader.communicate(timeout=HANG_GUARD)
        self.assertEqual(out.strip(), "interrupted")  # open() failed with EINTR, so Python ran the handler
        print("Ctrl-C to return: %.3f s" % (time.monotonic() - interrupted_at), file=sys.stderr)

    def test_ctrl_c_on_a_stalled_read_ends_the_reader_promptly(self):
        sha1, original = put_random_file(self.storage, 6_000_000, 42, self.originals)
        self.mount("timeout=120")
        os.stat(self.content(sha1))  # size discovery, before the node starts to stall
        self.emulator.restart("--fault-sha1", sha1, "--stall-after-bytes", "1000", "--stall-ms", "100000")
        arrived = self.emulator.downloads_arrived()
        # A read past what size discovery brought waits for its own pages, which stall. The
        # kernel waits for pages killably: Ctrl-C, fatal to a reader such as tail, ends it.
        reader = subprocess.Popen(["tail", "-c", "+3000001", self.content(sha1)], stdout=subprocess.DEVNULL)
        self.wait_for(lambda: self.emulator.downloads_arrived() > arrived, "the read to reach the node")
        self.assertIsNone(reader.poll(), "the read should be stuck on the stalled fetch")
        reader.send_signal(signal.SIGINT)
        self.assertEqual(reader.wait(HANG_GUARD), -signal.SIGINT)
        self.emulator.flags = []  # no more stalls
        self.emulator.restart()
        self.assertSameBytes(self.content(sha1), original)  # the mount goes on

    def test_stall_past_the_idle_timeout_is_eio(self):
        sha1, _ = put_random_file(self.storage, 6_000_000, 41, self.originals)
        self.emulator.restart("--fault-sha1", sha1, "--stall-after-bytes", "1000", "--stall-ms", "100000")
        self.mount("timeout=1", "retries=0")
        self.assertEioReading(self.content(sha1), within=HANG_GUARD)

    def test_dropped_connections_are_resumed(self):
        sha1, original = put_random_file(self.storage, 9_000_000, 42, self.originals)
        self.emulator.restart("--fault-sha1", sha1, "--drop-after-bytes", "1500000")
        self.mount()
        self.assertSameBytes(self.content(sha1), original)
        dropped = [l for l in self.emulator.downloads(sha1) if "dropped" in l]
        self.assertTrue(dropped, "the fault did not trigger")

    def test_a_few_500s_are_retried(self):
        sha1, original = put_random_file(self.storage, 3_000_000, 43, self.originals)
        self.emulator.restart("--fault-sha1", sha1, "--fail-500", "2")
        self.mount("retries=2")
        self.assertSameBytes(self.content(sha1), original)
        self.assertEqual(len([l for l in self.emulator.downloads(sha1) if "status=500" in l]), 2)

    def test_persistent_500s_are_eio(self):
        sha1, _ = put_random_file(self.storage, 3_000_000, 44, self.originals)
        self.emulator.restart("--fault-sha1", sha1, "--fail-500", "1000")
        self.mount("retries=1")
        with self.assertRaises(OSError) as ctx:
            os.stat(self.content(sha1))
        self.assertEqual(ctx.exception.errno, errno.EIO)


if __name__ == "__main__":
    unittest.main()
