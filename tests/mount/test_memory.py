"""Bounded memory (CTest mount.memory): a mount keeps an inode only while the kernel holds
it. 50,000 distinct objects are looked up, the kernel's caches are dropped (it forgets
them), then 50,000 others: the mount's RSS after the second set stays within 10% of its
RSS after the first (the memory is reused, not kept), and the inode table
(user.kachery.inodes) falls after each drop."""
import concurrent.futures
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import MountTestCase, put_bytes, rss_kib  # noqa: E402

OBJECTS = int(os.environ.get("KFS_MEMORY_OBJECTS", "50000"))


def inodes(mnt):
    return int(os.getxattr(mnt, "user.kachery.inodes"))


class Memory(MountTestCase):
    hang_guard = 300

    def setUp(self):
        # The node's storage and the cache on tmpfs: this test is about the mount's memory,
        # and 100,000 files and their directories cost minutes on a disk file system.
        super().setUp()
        self.emulator.stop()
        os.makedirs(self.cache)
        for path in (self.storage, self.cache):
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "kfs-memory-test", path], check=True)
            self.addCleanup(subprocess.run, ["umount", "-l", path])
        self.emulator.start()

    def test_forgotten_inodes_give_their_memory_back(self):
        sets = [[put_bytes(self.storage, b"object %d of set %d" % (i, s)) for i in range(OBJECTS)]
                for s in range(2)]
        m = self.mount()
        pid = m.proc.pid
        started = rss_kib(pid)
        after = []
        for objects in sets:
            with concurrent.futures.ThreadPoolExecutor(8) as pool:  # as a parallel scan would
                list(pool.map(lambda sha1: os.stat(self.content(sha1)), objects, chunksize=256))
            held = inodes(self.mnt)
            # (The kernel may forget some already, under memory pressure from elsewhere.)
            self.assertGreater(held, OBJECTS // 2, "looked-up objects have inodes")
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("2\n")  # dentries and inodes: the kernel forgets the mount's inodes
            self.wait_for(lambda: inodes(self.mnt) < OBJECTS // 10, "the kernel's forgets to reach the mount")
            after.append((held, inodes(self.mnt), rss_kib(pid)))
        print("\nmemory: RSS %.1f MiB at start, %.1f MiB after %d objects, %.1f MiB after %d more; "
              "inodes %d -> %d, then %d -> %d" %
              (started / 1024, after[0][2] / 1024, OBJECTS, after[1][2] / 1024, OBJECTS,
               after[0][0], after[0][1], after[1][0], after[1][1]), file=sys.stderr)
        self.assertLessEqual(after[1][2], after[0][2] * 1.10, "RSS grew with the second set: memory kept")


if __name__ == "__main__":
    unittest.main()
