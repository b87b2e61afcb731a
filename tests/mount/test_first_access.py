"""First access through one read path: an open waits only for the size, a reader's first
bytes come before the rest of the file, the end of a file waits for its verification, a
wrong byte fetched in the background is EIO at the end and leaves nothing cached, sizes
are found in rounds of pipelined requests across a link with latency, a first access finds
a connection ready (keep_warm), and `pin -j` pins a batch in parallel and reports each URI."""
import errno
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import (cached_path, CACHE_TOOL, MountTestCase, fetched_ranges, log_fields, mount_connections,  # noqa: E402
                               put_bytes, put_random_file, put_sparse_file, round_trips, sha1_path)

LINK_PROXY = os.path.join(os.environ.get("KACHERYFS_BUILD_DIR", "build"), "tests", "link-proxy")


def head_bytes(path, n):
    with open(path, "rb", buffering=0) as f:
        return f.read(n)


def completed_bytes(lines):
    return sum(end - start for start, end in fetched_ranges(lines))


class Link:
    """tests/bench/link_proxy.cc between the mount and the emulator: a one-way delay and a
    bandwidth cap, as a LAN or VPN has them. Stopped by its PID."""

    def __init__(self, target_port, delay_us, rate_mbit):
        self.proc = subprocess.Popen([LINK_PROXY, "--target", str(target_port), "--delay-us", str(delay_us),
                                      "--rate-mbit", str(rate_mbit)], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class FirstAccess(MountTestCase):
    hang_guard = 120

    def test_the_first_bytes_come_before_the_rest_of_a_45_mb_file(self):
        sha1, original = put_random_file(self.storage, 45_000_000, 1, self.originals)
        self.emulator.restart("--rate", "20")  # 20 MB/s a download: the whole file takes > 0.5 s
        self.mount()
        path = self.content(sha1)
        with open(original, "rb") as f:
            expected = f.read(4096)
        self.assertEqual(head_bytes(path, 4096), expected)
        # The log has a line per answered request: what had come when the read returned.
        fetched = completed_bytes(self.emulator.downloads(sha1))
        self.assertLess(fetched, 45_000_000 // 4, "the read waited for much of the file")
        self.assertFalse(os.path.exists(cached_path(self.cache, sha1)))
        # Once read, a file up to whole_max is fetched whole in the background.
        self.wait_for(lambda: os.path.exists(cached_path(self.cache, sha1)), "the background fetch")
        self.assertSameBytes(path, original)

    def test_the_end_of_a_file_waits_for_its_verification(self):
        sha1, original = put_random_file(self.storage, 20_000_000, 2, self.originals)
        self.emulator.restart("--rate", "20")
        self.mount()
        path = self.content(sha1)
        with open(path, "rb", buffering=0) as f:
            f.seek(20_000_000 - 4096)
            last = f.read(4096)
            # The read that returned the last bytes waited for the whole-file check.
            self.assertTrue(os.path.exists(cached_path(self.cache, sha1)), "EOF served unverified")
        with open(original, "rb") as f:
            f.seek(20_000_000 - 4096)
            self.assertEqual(last, f.read())

    def test_a_wrong_byte_fetched_in_the_background_is_eio_at_the_end(self):
        sha1, original = put_random_file(self.storage, 10_000_000, 3, self.originals)
        self.emulator.restart("--wrong-bytes", sha1, "--corrupt-offset", "7000000")
        m = self.mount()
        path = self.content(sha1)
        with open(original, "rb") as f:
            self.assertEqual(head_bytes(path, 4096), f.read(4096), "the first bytes are right")
        with self.assertRaises(OSError) as raised:
            with open(path, "rb") as f:
                f.read()
        self.assertEqual(raised.exception.errno, errno.EIO)
        self.wait_for(lambda: "sha1 mismatch" in m.output(), "the mismatch to be logged")
        self.assertFalse(os.path.exists(cached_path(self.cache, sha1)), "a corrupt file was cached")
        self.assertEqual([n for n in os.listdir(os.path.join(self.cache, "partial")) if n.startswith(sha1)], [],
                         "its pages were kept")

    def test_sizes_are_found_in_rounds_across_a_link_with_latency(self):
        size = 1 << 30
        sha1, _ = put_sparse_file(self.storage, size, [0, size - 65536], 4, self.originals)
        small = put_bytes(self.storage, os.urandom(5000))
        link = Link(self.emulator.port, 10_000, 200)  # a VPN: 20 ms round trip, 200 Mbit/s
        self.addCleanup(link.stop)
        self.mount(source="127.0.0.1:%d" % link.port)
        self.assertEqual(os.stat(self.content(small)).st_size, 5000)
        small_lines = self.emulator.downloads(small)
        # One round trip: its head, with probes pipelined behind it that the answer made moot.
        self.assertEqual(round_trips(small_lines), small_lines[:1])
        self.assertEqual(os.stat(self.content(sha1)).st_size, size)
        lines = self.emulator.downloads(sha1)
        rounds = round_trips(lines)
        print("\n1 GiB across a 20 ms link: %d requests in %d round trips" % (len(lines), len(rounds)),
              file=sys.stderr)
        # One after another this takes about 2*log2(1 GiB / 128 KiB) = 26 round trips; the
        # round budget across a link with latency is 4.
        self.assertLessEqual(len(rounds), 4)
        self.assertGreater(len(lines), 3 * len(rounds), "rounds carry several probes each")
        # Nothing is probed again: the size is remembered, also across a remount.
        self.unmount(self.mounts[0])
        self.mount(source="127.0.0.1:%d" % link.port)
        self.assertEqual(os.stat(self.content(sha1)).st_size, size)
        self.assertEqual(len(self.emulator.downloads(sha1)), len(lines))

    def test_the_last_round_is_windows_from_the_top_down(self):
        size = 45_000_000
        sha1, original = put_sparse_file(self.storage, size, [0, size - 65536], 5, self.originals)
        link = Link(self.emulator.port, 10_000, 200)
        self.addCleanup(link.stop)
        self.mount(source="127.0.0.1:%d" % link.port)
        self.assertEqual(os.stat(self.content(sha1)).st_size, size)
        lines = self.emulator.downloads(sha1)
        starts = [i for i, line in enumerate(lines) if not line.endswith(" pipelined")]
        print("\n45 MB across a 20 ms link: %d requests in %d round trips" % (len(lines), len(starts)),
              file=sys.stderr)
        # The head's round, a round of probes, then windows that tile an interval around
        # EOF, sent highest first: the one that straddles EOF is the first to bring bytes.
        # (A round of probes and then one window took a round trip more.)
        self.assertEqual(len(starts), 3)
        last = [log_fields(line) for line in lines[starts[-1]:]]
        windows = [(int(f["start"]), int(f["end"])) for f in last]
        self.assertGreater(len(windows), 1)
        self.assertEqual([w[0] for w in windows], sorted((w[0] for w in windows), reverse=True))
        for above, below in zip(windows, windows[1:]):
            self.assertEqual(below[1], above[0], "the windows tile the interval")
        straddling = [w for w in windows if w[0] < size < w[1]]
        self.assertEqual(len(straddling), 1)
        # The file's last bytes came with it, and are kept: neither the read of them nor the
        # background fetch of the whole file that it starts asks for them again.
        with open(original, "rb") as f:
            f.seek(straddling[0][0])
            tail = f.read()
        with open(self.content(sha1), "rb", buffering=0) as f:
            f.seek(straddling[0][0])
            self.assertEqual(f.read(len(tail)), tail)
        self.wait_for(lambda: os.path.exists(cached_path(self.cache, sha1)), "the background fetch")
        later = fetched_ranges(self.emulator.downloads(sha1)[len(lines):])
        self.assertTrue(later, "the background fetch")
        self.assertEqual([r for r in later if r[1] > straddling[0][0]], [])

    def test_a_first_access_finds_a_connection_ready(self):
        data = os.urandom(5000)
        small = put_bytes(self.storage, data)
        m = self.mount("keep_warm=6")
        port = self.emulator.port
        ready = lambda: mount_connections(m.proc.pid, port)  # noqa: E731
        # The mount keeps one connection open, renewed every few seconds (the emulator, as
        # the daemon, closes one idle for 5 s). Waiting for a renewal makes the one in use
        # below fresh, so that no renewal can fall within the read.
        self.wait_for(lambda: len(ready()) == 1, "the mount's ready connection")
        first = ready()
        self.wait_for(lambda: len(ready()) == 1 and ready() != first, "the ready connection's renewal")
        before = ready()
        self.assertEqual(head_bytes(self.content(small), 5000), data)
        # One round trip: the head, and size discovery's probes beside it when the mount
        # measures its link as slow (as under a sanitizer).
        lines = self.emulator.downloads(small)
        self.assertEqual(len(round_trips(lines)), 1, lines)
        self.assertEqual(ready(), before, "the first access connected anew instead of using the ready one")
        # The window (6 s here) runs from the last request: then no connection is kept.
        self.wait_for(lambda: not ready(), "the ready connection to go once keep_warm has passed", timeout=30)

    def test_pin_j_of_many_uris_reports_each(self):
        good = [put_bytes(self.storage, os.urandom(3000 + i)) for i in range(12)]
        missing = "0" * 40
        listed = os.path.join(self.tmp, "uris")
        with open(listed, "w") as f:
            f.write("# a dataset\n" + "".join("sha1://%s/part%d.bin\n" % (s, i) for i, s in enumerate(good[6:])))
        r = subprocess.run([CACHE_TOOL, "--daemon", self.emulator.address, "--create", "-o",
                            "cache_dir=%s,auth_file=%s" % (self.cache, self.emulator.auth_file), "--json",
                            "pin", "-j", "4", "--from", listed, "-", missing] + good[:3],
                           input="\n".join(good[3:6]) + "\n", capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        results = json.loads(r.stdout)
        self.assertEqual([x["sha1"] for x in results], good[3:6] + [missing] + good[:3] + good[6:])
        by_sha1 = {x["sha1"]: x for x in results}
        self.assertEqual(by_sha1[missing]["ok"], False)
        self.assertEqual(by_sha1[missing]["error"], "the node does not have it")
        for s in good:
            self.assertTrue(by_sha1[s]["ok"], by_sha1[s])
            self.assertTrue(os.path.exists(cached_path(self.cache, s)))
        self.assertIn("cannot pin %s: the node does not have it" % missing, r.stderr)


if __name__ == "__main__":
    unittest.main()
