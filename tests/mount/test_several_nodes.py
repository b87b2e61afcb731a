"""Real mounts of two or three emulators as one source ("A,B[,C]"): failover mid-stream,
not-found per node, bad bytes from one node, all nodes down, the return to the first node,
spread, channel loads through the node that can, nodes that do not answer at mount time
(probed together), and what xattrs and the tool show."""
import errno
import hashlib
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import (CACHE_TOOL, Emulator, HostileServer, Mount, MountTestCase,  # noqa: E402
                               put_bytes, put_random_file, round_trips, sha1_path)

# A guard against hangs, not a performance assertion: far above any expected duration.
HANG_GUARD = 60
MiB = 1 << 20


def xattr(path, name):
    return os.getxattr(path, "user.kachery." + name).decode()


class SeveralNodes(MountTestCase):
    hang_guard = HANG_GUARD
    first_flags = ()   # node A (self.emulator)
    second_flags = ()  # node B

    def setUp(self):
        self.emulator_flags = self.first_flags
        super().setUp()
        self.a = self.emulator
        self.b = self.add_node("b", *self.second_flags)

    def add_node(self, name, *flags):
        storage = os.path.join(self.tmp, "storage-" + name)
        workdir = os.path.join(self.tmp, "node-" + name)
        os.makedirs(storage)
        os.makedirs(workdir)
        node = Emulator(storage, *flags, workdir=workdir)
        self.addCleanup(node.stop)
        return node

    def mount_nodes(self, nodes, *options):
        source = ",".join(n.address for n in nodes)
        auth = "auth_file=" + ":".join(n.auth_file for n in nodes)
        m = Mount(source, self.mnt, self.cache, [auth] + list(options))
        self.mounts.append(m)
        return m

    def on_both(self, size, seed):
        """A random file stored on nodes A and B; returns (sha1, original)."""
        sha1, original = put_random_file(self.a.storage, size, seed, self.originals)
        target = sha1_path(self.b.storage, sha1)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.link(original, target)
        return sha1, original

    def url(self, node):
        return "http://" + node.address

    def node_line(self, node):
        lines = [l for l in xattr(self.mnt, "nodes").splitlines() if l.startswith(self.url(node) + " ")]
        self.assertEqual(len(lines), 1, xattr(self.mnt, "nodes"))
        return lines[0]


class Failover(SeveralNodes):
    # A is slow enough that the reader is mid-file when A is killed.
    first_flags = ("--total-rate", "100")

    def test_killing_the_first_node_mid_stream_completes_the_read_byte_exact(self):
        size = 300 * 1000 * 1000
        sha1, original = self.on_both(size, 1)
        m = self.mount_nodes([self.a, self.b])
        path = self.content(sha1)
        digest = hashlib.sha1()
        returns = []  # (time, bytes read so far) after each read()
        killed_at = None
        got = 0
        started = time.monotonic()
        with open(path, "rb", buffering=0) as f:
            while True:
                chunk = f.read(MiB)
                returns.append((time.monotonic(), got))
                if not chunk:
                    break
                digest.update(chunk)
                got += len(chunk)
                if killed_at is None and got >= 100 * MiB:
                    self.assertIsNotNone(self.a.proc)
                    self.a.proc.kill()  # SIGKILL, by PID: the node dies mid-stream
                    self.a.proc.wait()
                    killed_at = time.monotonic()
                self.assertLess(time.monotonic() - started, HANG_GUARD)
        self.assertIsNotNone(killed_at, "the file was read before the node could be killed")
        self.assertEqual(got, size)
        self.assertEqual(digest.hexdigest(), sha1)
        self.assertSameBytes(path, original)
        self.assertEqual(xattr(self.mnt, "nioerr"), "0")
        # The stall: the largest gap between two read() returns from the kill on.
        after = [t for t, _ in returns if t >= killed_at]
        gaps = [b - a for a, b in zip([killed_at] + after, after)]
        print("failover stall: largest gap between read() returns after the kill: %.1f ms"
              % (max(gaps) * 1000), file=sys.stderr)
        # B served the rest, from where A stopped (ranges that start inside the file).
        starts = [int(l.split("start=")[1].split()[0]) for l in self.b.downloads(sha1)]
        self.assertTrue(starts, self.b.log_lines())
        self.assertGreater(min(starts), 0, "B was asked from the byte A reached, not from 0")
        self.assertIn("down", self.node_line(self.a))
        self.assertIn("up", self.node_line(self.b))
        self.assertEqual(xattr(self.content(sha1), "served_by"), self.url(self.a) + "," + self.url(self.b))
        self.assertIn("is offline", m.output())
        self.assertEqual(xattr(self.mnt, "online"), "1")

    def test_all_nodes_down_fails_with_eio_and_cached_files_stay_readable(self):
        cached, cached_original = self.on_both(200_000, 2)
        other, _ = self.on_both(300_000, 3)
        self.mount_nodes([self.a, self.b], "timeout=2", "connect_timeout=2")
        self.assertSameBytes(self.content(cached), cached_original)
        self.a.stop()
        self.b.stop()
        self.assertEioReading(self.content(other), within=HANG_GUARD)
        self.assertEqual(xattr(self.mnt, "online"), "0")
        self.assertIn(" down ", self.node_line(self.a))
        self.assertIn(" down ", self.node_line(self.b))
        self.assertSameBytes(self.content(cached), cached_original)

    def test_the_mount_returns_to_the_first_node_once_it_is_back(self):
        first, first_original = self.on_both(150_000, 4)
        second, second_original = self.on_both(160_000, 5)
        self.a.stop()
        self.mount_nodes([self.a, self.b])
        self.assertSameBytes(self.content(first), first_original)
        self.assertEqual(xattr(self.content(first), "served_by"), self.url(self.b))
        self.a.start()  # the same port
        self.wait_for(lambda: " up " in self.node_line(self.a), "the prober to find node A back")
        self.assertSameBytes(self.content(second), second_original)
        # All from A (in one request or in size discovery's rounds, as A's round trip,
        # unmeasured at mount time, is found), nothing from B.
        self.assertTrue(self.a.downloads(second), self.a.log_lines())
        self.assertEqual(self.b.downloads(second), [])
        self.assertEqual(xattr(self.content(second), "served_by"), self.url(self.a))


class NotFoundPerNode(SeveralNodes):
    def test_a_hash_only_on_the_second_node_is_read_from_it(self):
        small_data = os.urandom(100_000)
        small = put_bytes(self.b.storage, small_data)
        large, large_original = put_random_file(self.b.storage, 80 * MiB, 6, self.originals)
        self.mount_nodes([self.a, self.b])
        with open(self.content(small), "rb") as f:
            self.assertEqual(f.read(), small_data)
        self.assertSameBytes(self.content(large), large_original)
        self.assertEqual(xattr(self.content(large), "served_by"), self.url(self.b))
        # A was asked, said no, and was not asked again for each range.
        self.assertEqual(len(round_trips(self.a.downloads(large))), 1, self.a.log_lines())
        self.assertIn(" up ", self.node_line(self.a))
        nowhere = hashlib.sha1(b"on no node").hexdigest()
        with self.assertRaises(OSError) as ctx:
            os.stat(self.content(nowhere))
        self.assertEqual(ctx.exception.errno, errno.ENOENT)
        self.assertEqual(len(round_trips(self.a.downloads(nowhere))), 1)
        self.assertEqual(len(round_trips(self.b.downloads(nowhere))), 1)

    def test_the_tool_shows_each_node(self):
        self.mount_nodes([self.a, self.b])
        self.b.stop()
        # A read that needs B marks it down; the mount writes its view for the tool.
        with self.assertRaises(OSError):
            os.stat(self.content(hashlib.sha1(b"needs b").hexdigest()))
        self.wait_for(lambda: b" down " in self.status(), "the mount's node lines in status")
        out = self.status().decode()
        self.assertIn("node:       %s reachable" % self.url(self.a), out)
        self.assertIn("node:       %s unreachable" % self.url(self.b), out)

    def status(self):
        r = subprocess.run([CACHE_TOOL, "-o", "cache_dir=" + self.cache, "status"], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout


class WrongBytesOnOneNode(SeveralNodes):
    def setUp(self):
        super().setUp()
        # Small enough for size discovery's head on any link (128 KiB), so fetched whole at once.
        self.small, self.small_original = self.on_both(100_000, 7)
        self.large, self.large_original = self.on_both(20 * MiB, 8)
        self.a.restart("--wrong-bytes", self.small, "--wrong-bytes", self.large)

    def test_a_whole_file_is_fetched_again_from_the_other_node_in_the_same_read(self):
        m = self.mount_nodes([self.a, self.b])
        self.assertSameBytes(self.content(self.small), self.small_original)
        self.assertEqual(xattr(self.content(self.small), "served_by"), self.url(self.b))
        line = [l for l in m.output().splitlines() if "sha1 mismatch" in l and self.small in l]
        self.assertEqual(len(line), 1, m.output())
        self.assertIn(self.url(self.a), line[0])

    def test_a_streamed_file_fails_once_then_comes_from_the_other_node(self):
        m = self.mount_nodes([self.a, self.b], "whole_max=1M")
        path = self.content(self.large)
        try:
            with open(path, "rb") as f:
                first = hashlib.sha1(f.read()).hexdigest()
        except OSError as e:
            self.assertEqual(e.errno, errno.EIO)
            first = None
        self.assertNotEqual(first, self.large, "the corrupt node served the whole file undetected?")
        self.wait_for(lambda: "sha1 mismatch" in m.output(), "the mismatch to be reported")
        asked = len(self.a.downloads(self.large))
        self.assertSameBytes(path, self.large_original)
        self.assertEqual(len(self.a.downloads(self.large)), asked, "A is not asked for it again")
        self.assertEqual(xattr(path, "served_by"), self.url(self.b))
        line = [l for l in m.output().splitlines() if "sha1 mismatch" in l and self.large in l]
        self.assertIn(self.url(self.a), line[0])


class Spread(SeveralNodes):
    # Each node alone is slower than the reader, so every one of them gets blocks.
    first_flags = ("--total-rate", "150")
    second_flags = ("--total-rate", "150")

    def test_spread_fetches_the_blocks_of_one_file_from_every_node(self):
        c = self.add_node("c", "--total-rate", "150")
        sha1, original = self.on_both(96 * MiB, 9)  # streamed: larger than whole_max
        os.makedirs(os.path.dirname(sha1_path(c.storage, sha1)), exist_ok=True)
        os.link(original, sha1_path(c.storage, sha1))
        self.mount_nodes([self.a, self.b, c], "spread", "max_conns=6")
        self.assertSameBytes(self.content(sha1), original)
        for node in (self.a, self.b, c):
            self.assertGreater(len(node.downloads(sha1)), 1, node.address)
        self.assertEqual(xattr(self.content(sha1), "served_by"),
                         ",".join(self.url(n) for n in (self.a, self.b, c)))
        for node in (self.a, self.b, c):
            served = int(self.node_line(node).split("served=")[1].split()[0])
            self.assertGreater(served, 4 * MiB, xattr(self.mnt, "nodes"))

    def test_without_spread_only_the_first_node_serves(self):
        sha1, original = self.on_both(32 * MiB, 10)
        self.mount_nodes([self.a, self.b])
        self.assertSameBytes(self.content(sha1), original)
        self.assertEqual(self.b.downloads(sha1), [])


class ChannelLoads(SeveralNodes):
    def test_the_load_goes_to_the_node_that_can(self):
        network = os.path.join(self.tmp, "network")
        sha1, original = put_random_file(network, 300_000, 11, self.originals)
        self.b.restart("--network-dir", network, "--load-delay-ms", "100")
        self.mount_nodes([self.a, self.b], "channel=lab")
        self.assertSameBytes(self.content(sha1), original)
        loads = lambda node: [l for l in node.log_lines() if l.startswith("POST /loadFile")]  # noqa: E731
        self.assertEqual(len(loads(self.a)), 1, self.a.log_lines())
        self.assertEqual(len(loads(self.b)), 1, self.b.log_lines())
        self.assertEqual(xattr(self.content(sha1), "served_by"), self.url(self.b))
        self.assertIn(" up ", self.node_line(self.a))


class MountTimeProbes(SeveralNodes):
    def test_nodes_that_do_not_answer_are_probed_together(self):
        silent = [HostileServer(self.a.storage, "silent", os.path.join(self.tmp, "silent-%d.log" % i))
                  for i in range(2)]
        for server in silent:
            self.addCleanup(server.stop)
        sha1 = put_bytes(self.a.storage, b"from the node that answers\n")
        source = ",".join([server.address for server in silent] + [self.a.address])
        m = Mount(source, self.mnt, self.cache, ["auth_file=::" + self.a.auth_file, "timeout=3", "connect_timeout=2"])
        self.mounts.append(m)
        arrivals = []
        for server in silent:
            probes = [line for line in server.requests() if line.startswith("GET /probe")]
            self.assertTrue(probes, server.requests())
            arrivals.append(float(probes[0].rsplit(" at ", 1)[1]))
        # Probed one after the other, the second node would be asked only once the first had
        # timed out (3 s).
        self.assertLess(abs(arrivals[1] - arrivals[0]), 2.0, arrivals)
        with open(self.content(sha1), "rb") as f:
            self.assertEqual(f.read(), b"from the node that answers\n")
        nodes = xattr(self.mnt, "nodes")
        for server in silent:
            self.assertIn(server.address + " down ", nodes)
        self.assertIn(self.url(self.a) + " up ", nodes)


class Options(unittest.TestCase):
    def run_kacheryfs(self, *args):
        from kacheryfs_testlib import KACHERYFS
        return subprocess.run([KACHERYFS, *args], capture_output=True, text=True, timeout=30)

    def test_auth_files_must_match_the_nodes(self):
        r = self.run_kacheryfs("-f", "127.0.0.1:1,127.0.0.1:2", "/nonexistent-mnt", "-o", "auth_file=/a:/b:/c")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("auth_file: 3 files separated by ':' for 2 nodes", r.stderr)

    def test_a_node_listed_twice_is_refused(self):
        r = self.run_kacheryfs("-f", "127.0.0.1:7,http://127.0.0.1:7", "/nonexistent-mnt")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("listed twice", r.stderr)


if __name__ == "__main__":
    unittest.main()
