"""Disk per small object (CTest mount.small_objects): 2,000 objects of 10 bytes are read
through a mount, which unmounts; the cache dir (its files, directories and index, counted
by du) grew by less than twice the file system's block size per object."""
import concurrent.futures
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import MountTestCase, cached_path, put_bytes  # noqa: E402

OBJECTS = 2000


def disk_bytes(path):
    """Blocks allocated under path, files and directories alike, by du (an independent tool)."""
    out = subprocess.run(["du", "-s", "--block-size=1", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


class SmallObjects(MountTestCase):
    def test_a_small_object_costs_less_than_two_blocks(self):
        objects = [put_bytes(self.storage, b"tiny %05d" % i) for i in range(OBJECTS)]
        self.unmount(self.mount())
        before = disk_bytes(self.cache)  # an empty cache: its dirs, index and meta
        self.mount()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            read = list(pool.map(lambda sha1: open(self.content(sha1), "rb").read(), objects))
        self.assertEqual(read, [b"tiny %05d" % i for i in range(OBJECTS)])
        self.assertEqual(self.unmount(self.mounts[-1]), 0)
        for sha1 in objects[:: OBJECTS // 20]:
            self.assertTrue(os.path.exists(cached_path(self.cache, sha1)), "kept in the cache")
        block = os.statvfs(self.cache).f_bsize
        per_object = (disk_bytes(self.cache) - before) / OBJECTS
        print("\nsmall objects: %.0f bytes of cache disk per 10-byte object (block %d)" % (per_object, block),
              file=sys.stderr)
        self.assertLess(per_object, 2 * block)


if __name__ == "__main__":
    unittest.main()
