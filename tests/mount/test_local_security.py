"""Local security of a mount: the cache dir is private (0700, files 0600) unless auth_group
shares it, another user's cache dir is refused, a symlink planted in the cache is never
followed, uid=/gid=/umask= set what files show, and allow_other brings default_permissions."""
import os
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import cached_path, KACHERYFS, MountTestCase, put_random_file, sha1_path  # noqa: E402


class LocalSecurity(MountTestCase):
    def test_the_cache_is_private(self):
        sha1, original = put_random_file(self.storage, 100_000, 1, self.originals)
        self.mount()
        self.assertSameBytes(self.content(sha1), original)
        self.assertEqual(stat.S_IMODE(os.stat(self.cache).st_mode), 0o700)
        for root, dirs, files in os.walk(self.cache):
            for name in files:
                mode = stat.S_IMODE(os.lstat(os.path.join(root, name)).st_mode)
                self.assertEqual(mode & 0o077, 0, "%s is %o" % (os.path.join(root, name), mode))

    def test_a_cache_dir_of_another_user_is_refused(self):
        os.makedirs(self.cache)
        os.chown(self.cache, 65534, 65534)  # nobody
        os.makedirs(self.mnt)
        r = subprocess.run([KACHERYFS, "-f", self.emulator.address, self.mnt, "-o", "cache_dir=" + self.cache],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("belongs to uid 65534", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_a_symlink_planted_in_the_cache_is_never_followed(self):
        sha1, original = put_random_file(self.storage, 50_000, 2, self.originals)
        outside = os.path.join(self.tmp, "secret")
        with open(outside, "w") as f:
            f.write("not for readers of the mount")
        planted = cached_path(self.cache, sha1)
        os.makedirs(os.path.dirname(planted))
        os.symlink(outside, planted)
        self.mount()
        self.assertSameBytes(self.content(sha1), original)  # fetched, not the planted file
        self.assertFalse(os.path.islink(planted), "the verified file replaced the link")
        with open(outside) as f:
            self.assertEqual(f.read(), "not for readers of the mount", "the link target is untouched")

    def test_uid_gid_umask_and_default_permissions(self):
        sha1, _ = put_random_file(self.storage, 1000, 3, self.originals)
        self.mount("uid=1234", "gid=2345", "umask=027", "allow_other")
        st = os.stat(self.content(sha1))
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (1234, 2345, 0o440))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.mnt, "sha1")).st_mode), 0o550)
        with open("/proc/mounts") as f:
            options = next(l for l in f if os.path.realpath(self.mnt) in l).split()[3].split(",")
        self.assertIn("default_permissions", options)
        self.assertIn("allow_other", options)


if __name__ == "__main__":
    unittest.main()
