"""/loadFile through a channel: with -o channel=NAME a hash the node lacks is loaded by the
node from the (simulated) kachery network, then read through the mount."""
import errno
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import (cached_path, KACHERYFS, MountTestCase, put_manifest, put_random_file,  # noqa: E402
                              sha1_path)

TOOL = os.environ.get("KACHERYFS_CACHE_BIN", os.path.join(os.path.dirname(KACHERYFS), "kacheryfs-cache"))


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

    def test_the_tool_pins_through_the_channel_with_the_manifest(self):
        # The node lacks the file but has its manifest; the tool takes the mount's path:
        # /loadFile through the channel, the manifest fetched and used, bytes verified.
        sha1, original = put_random_file(self.network, 25_000_000, 61, self.originals)
        manifest = put_manifest(self.storage, original)
        uri = "sha1://%s/recording.dat?manifest=%s" % (sha1, manifest)
        r = subprocess.run([TOOL, "--daemon", self.emulator.address, "--create", "-o",
                            "cache_dir=%s,auth_file=%s,channel=testchannel,whole_max=10M" %
                            (self.cache, self.emulator.auth_file), "pin", uri],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("pinned " + sha1, r.stdout)
        log = self.emulator.log_lines()
        loads = [l for l in log if l.startswith("POST /loadFile") and sha1 in l]
        self.assertEqual(len(loads), 1, log)
        self.assertIn("result=loaded", loads[0])
        self.assertTrue([l for l in log if "/downloadFileData sha1=" + manifest in l], "the manifest was fetched")
        self.assertEqual(subprocess.run(["cmp", cached_path(self.cache, sha1), original]).returncode, 0)


if __name__ == "__main__":
    unittest.main()
