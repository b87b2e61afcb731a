"""The cache stays within its limits: least-recently-used files are evicted past
cache_max, an open file survives, a full disk (ENOSPC) evicts instead of failing the
read, and the index lets a mount with many objects start without a scan."""
import os
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import cached_path, MountTestCase, is_mounted, put_random_file, sha1_path  # noqa: E402

MB = 1_000_000


def index_rows(cache):
    with sqlite3.connect(os.path.join(cache, "index.sqlite")) as db:
        return {row[0]: row[1:] for row in db.execute("SELECT sha1, size, bytes, complete, pinned FROM objects")}


class CacheQuota(MountTestCase):
    def test_lru_eviction_spares_open_files(self):
        files = [put_random_file(self.storage, 20 * MB, 80 + i, self.originals) for i in range(5)]
        self.mount("cache_max=50M", "whole_max=64M")
        first, first_original = files[0]
        held = open(self.content(first), "rb")  # open for the whole test: never evicted
        try:
            self.assertEqual(held.read(), open(first_original, "rb").read())  # read, so cached whole
            held.seek(0)
            for sha1, original in files[1:]:
                self.assertSameBytes(self.content(sha1), original)
                time.sleep(1.1)  # distinct last-access seconds
            cached = [s for s, _ in files if os.path.exists(cached_path(self.cache, s))]
            self.assertIn(first, cached, "an open file was evicted")
            total = sum(os.path.getsize(cached_path(self.cache, s)) for s in cached)
            self.assertLessEqual(total, 50 * (1 << 20))
            self.assertIn(files[-1][0], cached, "the most recent file was evicted")
            self.assertNotIn(files[1][0], cached, "the least recently used file was kept")
            self.assertEqual(held.read(), open(first_original, "rb").read())
            rows = index_rows(self.cache)
            self.assertEqual(set(rows), set(cached))
        finally:
            held.close()
        # an evicted file is fetched again on demand
        self.assertSameBytes(self.content(files[1][0]), files[1][1])

    def test_a_full_disk_evicts_instead_of_failing(self):
        small_fs = os.path.join(self.tmp, "smallfs")
        os.makedirs(small_fs)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64M", "tmpfs", small_fs], check=True)
        self.addCleanup(lambda: subprocess.run(["umount", "-l", small_fs]))
        files = [put_random_file(self.storage, 25 * MB, 90 + i, self.originals) for i in range(4)]
        # No quota and no free-space floor: only ENOSPC can make it evict.
        m = self.mount("cache_max=10G", "cache_min_free=0", cache=os.path.join(small_fs, "cache"))
        for sha1, original in files:
            self.assertSameBytes(self.content(sha1), original)
        self.assertNotIn("EIO", m.output())
        cached = [s for s, _ in files if os.path.exists(cached_path(os.path.join(small_fs, "cache"), s))]
        self.assertLess(len(cached), 4)
        self.assertIn(files[-1][0], cached)

    def test_a_mount_with_100000_indexed_objects_starts_fast(self):
        # Fill the index the way a long-used cache has it (the files themselves do not matter
        # for start-up: the mount must not scan them).
        os.makedirs(self.cache)
        with sqlite3.connect(os.path.join(self.cache, "index.sqlite")) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE objects (sha1 TEXT PRIMARY KEY, size INTEGER NOT NULL, bytes INTEGER NOT NULL, "
                       "complete INTEGER NOT NULL, pinned INTEGER NOT NULL DEFAULT 0, last_access INTEGER NOT NULL)")
            db.executemany("INSERT INTO objects VALUES (?, 1000, 1000, 1, 0, ?)",
                           (("%040x" % i, i) for i in range(100_000)))
        started = time.monotonic()
        m = self.mount("cache_max=1G")
        elapsed = time.monotonic() - started
        print("mount with 100,000 indexed objects: %.3f s to mounted" % elapsed, file=sys.stderr)
        # The line is logged by the daemonized process after the mount appears: wait for it.
        self.wait_for(lambda: "100000 objects" in m.output(), "the mount's cache line")
        self.assertIn("100000 objects", m.output())
        self.assertTrue(is_mounted(self.mnt))


if __name__ == "__main__":
    unittest.main()
