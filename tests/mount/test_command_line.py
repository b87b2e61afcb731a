"""The kacheryfs command line: help and version, one-line errors with a nonzero exit for a
bad mount point or option, and daemonized mounts that log to syslog and unmount cleanly."""
import errno
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
        self.assertEqual(fsname, self.emulator.address, "the source as written (mount -a compares it)")
        self.assertIn("ro", options.split(","))

    def test_environment_gives_the_daemon_and_auth_file(self):
        sha1, original = put_random_file(self.storage, 2000, 51, self.originals)
        env = dict(os.environ, KACHERY_DAEMON_HOST="127.0.0.1", KACHERY_DAEMON_PORT=str(self.emulator.port),
                   KACHERY_STORAGE_DIR=self.storage)
        os.makedirs(self.mnt, exist_ok=True)
        proc = subprocess.Popen([KACHERYFS, "-f", self.mnt, "-o", "log_level=debug,cache_dir=" + self.cache],
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
        self.assertIn("auth_file=" + os.path.join(self.storage, "client-auth"), out)  # the debug dump
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
            # All is well: one line on the terminal at most (where the log goes, when there
            # is no syslog), and no option dump.
            self.assertLessEqual(len(r.stderr.splitlines()), 1, r.stderr)
            self.assertNotIn("max_readahead", r.stderr)
            self.assertTrue(is_mounted(self.mnt))
            self.assertSameBytes(self.content(sha1), original)
            deadline = time.time() + 10  # the daemon rewrites the pid right after forking
            while True:
                with open(os.path.join(self.cache, "mount.lock")) as f:
                    pid = int(f.readline())
                if os.path.exists("/proc/%d" % pid) or time.time() > deadline:
                    break
                time.sleep(0.05)
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                self.assertIn(b"kacheryfs", f.read(), "the lock names the daemonized process")
        finally:
            self.assertEqual(subprocess.run(["fusermount3", "-u", self.mnt]).returncode, 0)

    def test_require_daemon_fails_early_with_one_line(self):
        os.makedirs(self.mnt, exist_ok=True)
        bad_code = os.path.join(self.tmp, "wrong-code")
        with open(bad_code, "w") as f:
            f.write("NOTTHECODEXX")
        cases = [("127.0.0.1:1", "auth_file=" + self.emulator.auth_file, "unreachable"),
                 (self.emulator.address, "auth_file=" + bad_code, "the auth code in %s is wrong" % bad_code),
                 (self.emulator.address, "log_level=info", "requires a client auth code and none was given: "
                  "add -o auth_file=FILE")]
        for source, option, expected in cases:
            r = run("-f", source, self.mnt, "-o", "require_daemon,cache_dir=%s,%s" % (self.cache, option))
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(expected, r.stderr)
            self.assertEqual(len([l for l in r.stderr.splitlines() if "(require_daemon)" in l]), 1, r.stderr)
            self.assertFalse(is_mounted(self.mnt))

    def test_fifty_remounts_in_a_row_are_never_refused(self):
        # `umount X && mount X`: the old process may still be exiting (and holding the
        # cache's lock) when the new one starts; the new one waits for it.
        sha1, original = put_random_file(self.storage, 500_000, 53, self.originals)
        os.makedirs(self.mnt, exist_ok=True)
        # A failed round leaves its mount up: unmount it (and so end its process) here.
        self.addCleanup(lambda: is_mounted(self.mnt) and subprocess.run(["umount", "-l", self.mnt]))
        refused = []
        for round in range(50):
            r = run(self.emulator.address, self.mnt, "-o",
                    "cache_dir=%s,auth_file=%s" % (self.cache, self.emulator.auth_file))
            if r.returncode != 0:
                refused.append((round, r.stderr))
                continue
            # Odd rounds unmount at once: nothing of the mount's own (its readahead setup
            # once stat'ed the mount point) may keep it busy.
            if round % 2 == 0:
                self.assertSameBytes(self.content(sha1), original)
            self.assertEqual(subprocess.run(["umount", self.mnt]).returncode, 0, "round %d" % round)
        print("\nremounts: 50 rounds, %d refused" % len(refused), file=sys.stderr)
        self.assertEqual(refused, [])

    def test_a_mount_without_an_auth_code_says_so_on_the_terminal(self):
        os.makedirs(self.mnt, exist_ok=True)
        sha1, _ = put_random_file(self.storage, 1000, 5, self.originals)
        r = run(self.emulator.address, self.mnt, "-o", "cache_dir=" + self.cache)
        try:
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = [l for l in r.stderr.splitlines() if "auth" in l]
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn("requires a client auth code and none was given: add -o auth_file=FILE", lines[0])
            with self.assertRaises(OSError) as ctx:
                with open(self.content(sha1), "rb") as f:
                    f.read()
            self.assertEqual(ctx.exception.errno, errno.EIO)
        finally:
            subprocess.run(["fusermount3", "-u", self.mnt])

    def test_a_daemonizing_mount_warns_on_the_terminal_once(self):
        os.makedirs(self.mnt, exist_ok=True)
        r = run("127.0.0.1:1", self.mnt, "-o", "cache_dir=" + self.cache)
        try:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len([l for l in r.stderr.splitlines() if "unreachable" in l]), 1, r.stderr)
            fallback = os.path.join(self.cache, "kacheryfs.log")
            if os.path.exists("/dev/log"):  # syslog takes the daemon's log
                self.assertNotIn("logging to", r.stderr)
            else:  # no syslog socket: a file, named on the terminal
                self.assertIn("no syslog socket (/dev/log); logging to " + fallback, r.stderr)
                # The daemonized child opens the log after the parent has returned.
                self.wait_for(lambda: os.path.exists(fallback) and "mounted on" in open(fallback).read(),
                              "the fallback log")
        finally:
            subprocess.run(["fusermount3", "-u", self.mnt])

    def test_log_file_is_reopened_on_sighup(self):
        log = os.path.join(self.tmp, "kfs.log")
        m = self.mount("log_file=" + log)
        self.wait_for(lambda: os.path.exists(log) and "mounted on" in open(log).read(), "the log file")
        os.rename(log, log + ".1")  # as logrotate does
        os.kill(m.proc.pid, 1)  # SIGHUP: reopen the log, do not end the mount
        sha1, original = put_random_file(self.storage, 3000, 53, self.originals)
        self.assertSameBytes(self.content(sha1), original)
        self.assertTrue(is_mounted(self.mnt), "SIGHUP does not end the mount")
        with open(self.emulator.auth_file) as f:
            code = f.read()
        self.unmount(m)
        with open(log) as f:
            self.assertIn("unmounted", f.read(), "lines after SIGHUP go to the new file")
        with open(log) as f, open(log + ".1") as g:
            self.assertNotIn(code, f.read() + g.read(), "the auth code is never logged")

    def test_no_stacking_and_a_hint_after_a_crash(self):
        os.makedirs(self.mnt, exist_ok=True)
        m = self.mount()
        r = run("-f", self.emulator.address, self.mnt, "-o", "cache_dir=" + self.cache + "2")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already a kacheryfs mount", r.stderr)
        m.proc.kill()  # kill -9: the mount point is left dangling
        m.proc.wait()
        try:
            r = run("-f", self.emulator.address, self.mnt, "-o", "cache_dir=" + self.cache + "3")
            self.assertEqual(r.returncode, 1)
            self.assertIn("fusermount3 -u " + self.mnt, r.stderr)
        finally:
            subprocess.run(["fusermount3", "-u", self.mnt])

    def test_df_shows_the_cache(self):
        sha1, original = put_random_file(self.storage, 2_000_000, 54, self.originals)
        self.mount("cache_max=100M")
        self.assertSameBytes(self.content(sha1), original)
        st = os.statvfs(self.mnt)
        self.assertEqual(st.f_blocks * st.f_frsize, 100 << 20)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        self.assertTrue(1_900_000 <= used <= 2_100_000, used)
        df = subprocess.run(["df", self.mnt], capture_output=True, text=True).stdout
        self.assertIn(self.emulator.address, df)

    def test_an_upper_case_hash_gets_a_hint(self):
        sha1, _ = put_random_file(self.storage, 1000, 55, self.originals)
        m = self.mount()
        with self.assertRaises(FileNotFoundError):
            os.stat(os.path.join(self.mnt, "sha1", sha1.upper()))
        self.assertIn("lower-case", m.output())


if __name__ == "__main__":
    unittest.main()
