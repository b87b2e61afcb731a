"""Offline work and crash safety: with the daemon gone, cached files read and ls works,
uncached reads fail with EIO within the timeout, the state change is logged once, the
root's xattrs tell it; the mount notices the daemon's return without a remount. kill -9
during downloads leaves nothing that a new mount or `kacheryfs-cache verify` rejects, and
the cache is a valid KACHERY_OFFLINE_STORAGE_DIR."""
import errno
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import (cached_path, KACHERYFS, Emulator, MountTestCase, free_port, is_mounted,  # noqa: E402
                              put_random_file, sha1_path, tool_sha1)

TOOL = os.environ.get("KACHERYFS_CACHE_BIN", os.path.join(os.path.dirname(KACHERYFS), "kacheryfs-cache"))
HANG_GUARD = 60


def root_xattr(mnt, name):
    return os.getxattr(mnt, "user.kachery." + name).decode()


class Offline(MountTestCase):
    hang_guard = HANG_GUARD

    def test_daemon_killed_and_restarted_during_a_run(self):
        cached, cached_original = put_random_file(self.storage, 2_000_000, 1, self.originals)
        later, later_original = put_random_file(self.storage, 2_000_000, 2, self.originals)
        m = self.mount("timeout=2", "connect_timeout=2")
        self.assertSameBytes(self.content(cached), cached_original)
        self.assertEqual(root_xattr(self.mnt, "online"), "1")
        self.assertEqual(root_xattr(self.mnt, "cache_bytes"), "2000000")
        self.assertGreaterEqual(int(root_xattr(self.mnt, "bytes_fetched")), 2_000_000)

        self.emulator.stop()
        for _ in range(3):  # several failing reads: one log line
            self.assertEioReading(self.content(later), within=2 + 2 + 5, why="EIO took longer than the timeouts")
        self.assertEqual(root_xattr(self.mnt, "online"), "0")
        self.assertEqual(len([l for l in m.output().splitlines() if "is offline" in l]), 1, m.output())
        self.assertGreaterEqual(int(root_xattr(self.mnt, "nioerr")), 3)
        self.assertSameBytes(self.content(cached), cached_original)  # cached files still read
        self.assertIn(cached, os.listdir(os.path.join(self.mnt, "sha1")))  # and ls works
        hitrate = float(root_xattr(self.mnt, "hitrate"))
        self.assertTrue(0 < hitrate < 1, hitrate)

        self.emulator.start()  # same port
        self.wait_for(lambda: root_xattr(self.mnt, "online") == "1", "the mount to notice the daemon is back")
        self.assertEqual(len([l for l in m.output().splitlines() if "back online" in l]), 1, m.output())
        self.assertSameBytes(self.content(later), later_original)  # no remount needed

    def test_kill_9_mid_download_then_remount_and_verify(self):
        small, small_original = put_random_file(self.storage, 40_000_000, 3, self.originals)
        large, large_original = put_random_file(self.storage, 120_000_000, 4, self.originals)
        # slow transfers, so that kill -9 lands in the middle of both downloads
        earlier = [put_random_file(self.storage, 20_000_000, 10 + i, self.originals) for i in range(3)]
        # a cache that must evict the earlier files for the downloads below
        m = self.mount("max_readahead=8M", "cache_max=100M")
        for sha1, original in earlier:
            self.assertSameBytes(self.content(sha1), original)
        for sha1 in (small, large):
            os.stat(self.content(sha1))  # sizes first, so that both downloads start at once below
        self.emulator.stop()
        self.emulator.start("--first-byte-delay-ms", "300", "--total-rate", "10")
        readers = []
        def pages_present(sha1):
            path = os.path.join(self.cache, "partial", sha1 + ".blocks")
            if not os.path.exists(path):
                return False
            with open(path, "rb") as f:
                return 1 in f.read()
        for sha1 in (small, large):  # both stream through the block cache
            readers.append(subprocess.Popen(["cat", self.content(sha1)], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            self.wait_for(lambda: pages_present(sha1), "the download of %s to start" % sha1)
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait()
        subprocess.run(["fusermount3", "-uz", self.mnt])
        for r in readers:
            r.kill()
            r.wait()
        self.mounts.remove(m)
        m.log.close()
        self.assertFalse(os.path.exists(cached_path(self.cache, small)), "complete before the kill")
        self.assertTrue(pages_present(small), "the small file's pages were lost")
        self.assertTrue(pages_present(large), "the large file's pages were lost")

        self.emulator.flags = []
        self.emulator.restart()
        self.mount("cache_max=100M")  # the rest of both downloads must evict the earlier files
        self.assertSameBytes(self.content(small), small_original)
        self.assertSameBytes(self.content(large), large_original)
        self.wait_for(lambda: os.path.exists(cached_path(self.cache, large)), "the large file to complete")
        r = subprocess.run([TOOL, "-o", "cache_dir=" + self.cache, "verify"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 bad", r.stdout)
        self.assertTrue(any(not os.path.exists(cached_path(self.cache, s)) for s, _ in earlier), "nothing was evicted")

    def test_the_node_id_file_appears_once_the_node_answers(self):
        # A typo'd port and a fresh cache: ls -la of the root shows no '?????????' entry;
        # kachery-node-id does not exist until the node answers, and then it does.
        port = free_port()  # nothing listens there yet
        self.mount("timeout=2", "connect_timeout=2", source="127.0.0.1:%d" % port)
        with self.assertRaises(FileNotFoundError):
            os.stat(os.path.join(self.mnt, "kachery-node-id"))
        self.assertEqual(sorted(os.listdir(self.mnt)), ["client-auth", "sha1"])
        os.makedirs(os.path.join(self.tmp, "late"))
        late = Emulator(self.storage, port=port, workdir=os.path.join(self.tmp, "late"))
        self.addCleanup(late.stop)
        self.wait_for(lambda: "kachery-node-id" in os.listdir(self.mnt), "the node id file once the node answers")
        with open(os.path.join(self.mnt, "kachery-node-id")) as f, \
                open(os.path.join(self.storage, "kachery-node-id")) as expected:
            self.assertEqual(f.read(), expected.read())

    def test_with_the_daemon_down_the_mount_is_a_kachery_offline_storage_dir(self):
        sha1, original = put_random_file(self.storage, 3_000_000, 5, self.originals)
        self.mount()
        self.assertSameBytes(self.content(sha1), original)
        # The cache keeps it one level deep, under objects/.
        self.assertEqual(tool_sha1(os.path.join(self.cache, "objects", sha1[0:2], sha1)), sha1)
        self.emulator.stop()
        # Where the stock kachery client looks with KACHERY_OFFLINE_STORAGE_DIR=<mount>:
        # $KACHERY_OFFLINE_STORAGE_DIR/sha1/<h[0:2]>/<h[2:4]>/<h[4:6]>/<h>, the full content.
        env = dict(os.environ, KACHERY_OFFLINE_STORAGE_DIR=self.mnt)
        path = subprocess.run(["sh", "-c", 'h=%s; echo "$KACHERY_OFFLINE_STORAGE_DIR/sha1/$(echo $h | cut -c1-2)/'
                               '$(echo $h | cut -c3-4)/$(echo $h | cut -c5-6)/$h"' % sha1],
                              env=env, capture_output=True, text=True, check=True).stdout.strip()
        self.assertTrue(os.path.exists(path), path)
        self.assertEqual(tool_sha1(path), sha1)
        self.assertEqual(os.path.getsize(path), 3_000_000)


if __name__ == "__main__":
    unittest.main()
