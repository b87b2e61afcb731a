"""The kacheryfs command line: help and version, one-line errors with a nonzero exit for a
bad mount point or option, and daemonized mounts that log to syslog and unmount cleanly."""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import KACHERYFS, MountTestCase, is_mounted, put_random_file  # noqa: E402


def run(*args, env=None):
    return subprocess.run([KACHERYFS, *args], capture_output=True, text=True, timeout=60, env=env)


class CommandLine(MountTestCase):
    def test_help_and_version(self):
        r = run("-h")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: kacheryfs [options]", r.stdout)
        self.assertIn("cache_dir=DIR", r.stdout)
        r = run("-V")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^kacheryfs \d+\.\d+\.\d+")

    def assertOneLineError(self, result, *needles):
        self.assertNotEqual(result.returncode, 0)
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith("kacheryfs: "), lines[0])
        for needle in needles:
            self.assertIn(needle, lines[0])

    def test_bad_mount_point(self):
        missing = os.path.join(self.tmp, "does-not-exist")
        self.assertOneLineError(run("-f", self.emulator.address, missing), "bad mount point", "No such file")
        a_file = os.path.join(self.tmp, "file")
        open(a_file, "w").close()
        self.assertOneLineError(run("-f", self.emulator.address, a_file), "not a directory")

    def test_bad_options(self):
        os.makedirs(self.mnt, exist_ok=True)
        self.assertOneLineError(run("-o", "frobnicate=1", self.emulator.address, self.mnt), "frobnicate", "unknown option")
        self.assertOneLineError(run("-o", "timeout=soon", self.emulator.address, self.mnt), "timeout=soon")
        self.assertOneLineError(run("-o", "range_size=12Q", self.emulator.address, self.mnt), "range_size")
        self.assertOneLineError(run("-o", "channel=x", self.emulator.address, self.mnt), "channel")
        self.assertOneLineError(run("http://host:99999", self.mnt), "bad port")
        self.assertOneLineError(run("ftp://host", self.mnt), "scheme")
        self.assertOneLineError(run("--bogus", self.emulator.address, self.mnt), "--bogus")
        # several bad options: all reported, one line each
        r = run("-o", "a=1,b=2", self.emulator.address, self.mnt)
        self.assertEqual(len(r.stderr.strip().splitlines()), 2, r.stderr)
        self.assertFalse(is_mounted(self.mnt))

    def test_fstab_options_are_accepted(self):
        sha1, original = put_random_file(self.storage, 1000, 50, self.originals)
        self.mount("_netdev", "noauto", "nofail", "user", "x-systemd.automount", "rw", "allow_other")
        self.assertSameBytes(self.content(sha1), original)
        with open("/proc/mounts") as f:
            line = next(l for l in f if os.path.realpath(self.mnt) in l)
        fsname, _, fstype, options = line.split()[:4]
        self.assertEqual(fstype, "fuse.kacheryfs")
        self.assertEqual(fsname, "http://" + self.emulator.address)
        self.assertIn("ro", options.split(","))

    def test_environment_gives_the_daemon_and_auth_file(self):
        sha1, original = put_random_file(self.storage, 2000, 51, self.originals)
        env = dict(os.environ, KACHERY_DAEMON_HOST="127.0.0.1", KACHERY_DAEMON_PORT=str(self.emulator.port),
                   KACHERY_STORAGE_DIR=self.storage)
        os.makedirs(self.mnt, exist_ok=True)
        proc = subprocess.Popen([KACHERYFS, "-f", self.mnt, "-o", "cache_dir=" + self.cache],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        try:
            deadline = time.time() + 15
            while not is_mounted(self.mnt) and time.time() < deadline and proc.poll() is None:
                time.sleep(0.02)
            self.assertTrue(is_mounted(self.mnt))
            self.assertSameBytes(self.content(sha1), original)
        finally:
            subprocess.run(["fusermount3", "-u", self.mnt])
            out, _ = proc.communicate(timeout=30)
        self.assertIn("auth_file=" + os.path.join(self.storage, "client-auth"), out)
        self.assertEqual(proc.returncode, 0, out)

    def test_a_second_mount_on_the_same_cache_refuses(self):
        first = self.mount()
        other = os.path.join(self.tmp, "mnt2")
        os.makedirs(other)
        r = run("-f", self.emulator.address, other, "-o", "cache_dir=%s,auth_file=%s" % (self.cache, self.emulator.auth_file))
        self.assertOneLineError(r, "in use by another kacheryfs", "pid %d" % first.proc.pid)
        self.assertFalse(is_mounted(other))
        self.unmount(first)
        second = self.mount(mountpoint=other)  # free again once the first is gone
        self.assertTrue(is_mounted(other))
        self.unmount(second)

    def test_daemonized_mount(self):
        sha1, original = put_random_file(self.storage, 3000, 52, self.originals)
        os.makedirs(self.mnt, exist_ok=True)
        r = run(self.emulator.address, self.mnt, "-o",
                "cache_dir=%s,auth_file=%s" % (self.cache, self.emulator.auth_file))
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            self.assertTrue(is_mounted(self.mnt))
            self.assertSameBytes(self.content(sha1), original)
            deadline = time.time() + 10  # the daemon rewrites the pid right after forking
            while True:
                with open(os.path.join(self.cache, "mount.lock")) as f:
                    pid = int(f.read())
                if os.path.exists("/proc/%d" % pid) or time.time() > deadline:
                    break
                time.sleep(0.05)
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                self.assertIn(b"kacheryfs", f.read(), "the lock names the daemonized process")
        finally:
            self.assertEqual(subprocess.run(["fusermount3", "-u", self.mnt]).returncode, 0)


if __name__ == "__main__":
    unittest.main()
