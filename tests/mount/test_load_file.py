"""/loadFile through a channel: with -o channel=NAME a hash the node lacks is loaded by the
node from the (simulated) kachery network, then read through the mount."""
import errno
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import MountTestCase, put_random_file  # noqa: E402


class LoadFile(MountTestCase):
    def setUp(self):
        super().setUp()
        self.network = os.path.join(self.tmp, "network")
        self.remote_sha1, self.remote_original = put_random_file(self.network, 2_500_000, 60, self.originals)
        self.emulator.restart("--network-dir", self.network, "--load-delay-ms", "600")

    def test_missing_file_is_loaded_through_the_channel(self):
        m = self.mount("channel=testchannel")
        self.assertEqual(os.stat(self.content(self.remote_sha1)).st_size, 2_500_000)
        self.assertSameBytes(self.content(self.remote_sha1), self.remote_original)
        loads = [l for l in self.emulator.log_lines() if l.startswith("POST /loadFile")]
        self.assertEqual(len(loads), 1, loads)
        self.assertIn("result=loaded", loads[0])
        self.assertIn("asking it to load", m.output())
        # a file nobody has: ENOENT after the node says so
        with self.assertRaises(FileNotFoundError):
            os.stat(self.content("1" * 40))

    def test_without_a_channel_the_file_is_not_found(self):
        self.mount()
        with self.assertRaises(OSError) as ctx:
            os.stat(self.content(self.remote_sha1))
        self.assertEqual(ctx.exception.errno, errno.ENOENT)
        self.assertEqual([l for l in self.emulator.log_lines() if l.startswith("POST /loadFile")], [])


if __name__ == "__main__":
    unittest.main()
