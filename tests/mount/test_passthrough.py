"""Kernel passthrough of complete cached files (CTest mount.passthrough).

A root mount answers opens of complete cache files with a backing id, and the kernel reads
them itself: with the mount's process stopped (SIGSTOP), an open file still reads whole.
Many opens share one backing id, closed at the last release: afterwards the kernel knows no
id of the mount (checked on the mount's own /dev/fuse fd, taken with pidfd_getfd). mmap
works; a file that completes while open is served right before and after and switches at
its next first open; eviction never takes a file with a live passthrough open; a backing
file the kernel refuses (a cache dir on overlayfs) and passthrough=off and a plain user's
mount keep the normal path and say why."""
import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import pwd
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import KACHERYFS, MountTestCase, cached_path, is_mounted, put_random_file  # noqa: E402

MB = 1_000_000
USER = "kfs-passthrough-user"
# FUSE_DEV_IOC_BACKING_CLOSE: _IOW(229, 2, uint32_t)
BACKING_CLOSE = (1 << 30) | (4 << 16) | (229 << 8) | 2
libc = ctypes.CDLL(None, use_errno=True)


def xattr(path, name):
    return os.getxattr(path, "user.kachery." + name).decode()


def take_fd(pid, fd):
    """A duplicate of another process's fd (pidfd_getfd; root may take any)."""
    pidfd = os.pidfd_open(pid)
    try:
        copy = libc.syscall(438, pidfd, fd, 0)  # SYS_pidfd_getfd
        if copy < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        return copy
    finally:
        os.close(pidfd)


def fuse_fd_of(pid):
    for fd in os.listdir("/proc/%d/fd" % pid):
        if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "/dev/fuse":
            return int(fd)
    raise AssertionError("the mount holds no /dev/fuse fd")


def registered_backing_ids(pid, up_to):
    """The backing ids 1..up_to that the kernel knows on the mount's connection. Each one
    found is closed by the probe: call it only once no passthrough open is live."""
    fuse = take_fd(pid, fuse_fd_of(pid))
    try:
        known = []
        for backing_id in range(1, up_to + 1):
            try:
                fcntl.ioctl(fuse, BACKING_CLOSE, struct.pack("I", backing_id))
                known.append(backing_id)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
        return known
    finally:
        os.close(fuse)


class Passthrough(MountTestCase):
    def setUp(self):
        super().setUp()
        self.sha1, self.original = put_random_file(self.storage, 3 * MB, 41, self.originals)
        with open(self.original, "rb") as f:
            self.data = f.read()

    def cache_completely(self, *options):
        """Reads the file through a mount, so that it is complete in the cache; unmounts."""
        m = self.mount(*options)
        self.assertSameBytes(self.content(self.sha1), self.original)
        self.wait_for(lambda: os.path.exists(cached_path(self.cache, self.sha1)), "the file to complete")
        self.unmount(m)

    def wait_released(self):
        self.wait_for(lambda: xattr(self.mnt, "open_files") == "0", "the kernel's releases")

    def assertReadsWhileStopped(self, f, pid):
        """The open file reads whole while the mount's process is stopped: the kernel serves
        it from the backing file, without a FUSE request."""
        f.seek(0)
        os.kill(pid, signal.SIGSTOP)
        try:
            r = subprocess.run(["cmp", "-", self.original], stdin=f, capture_output=True, timeout=self.hang_guard)
        except subprocess.TimeoutExpired:
            self.fail("a read waited for the stopped mount: not a passthrough open")
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_a_root_mount_reads_complete_files_through_the_kernel(self):
        self.cache_completely()
        m = self.mount()
        self.assertEqual(xattr(self.mnt, "passthrough"), "on")
        self.assertIn("passthrough: on", m.output())
        opens = [open(self.content(self.sha1), "rb") for _ in range(4)]
        try:
            self.assertEqual(xattr(self.mnt, "backing_files"), "1", "one backing id for all opens")
            self.assertEqual(xattr(self.mnt, "open_files"), "4")
            self.assertReadsWhileStopped(opens[1], m.proc.pid)
            for f in opens:
                f.seek(0)
                self.assertEqual(f.read(), self.data)
            with mmap.mmap(opens[2].fileno(), 0, prot=mmap.PROT_READ) as mapped:
                self.assertEqual(hashlib.sha1(mapped).hexdigest(), self.sha1)
                self.assertEqual(mapped[MB:MB + 4096], self.data[MB:MB + 4096])
        finally:
            for f in opens:
                f.close()
        self.wait_released()
        self.assertEqual(xattr(self.mnt, "backing_files"), "0")
        self.assertEqual(registered_backing_ids(m.proc.pid, 64), [], "a backing id outlived its opens")
        self.assertSameBytes(self.content(self.sha1), self.original)  # a new first open after that

    def test_a_file_that_completes_while_open_is_right_before_and_after(self):
        m = self.mount()
        first = open(self.content(self.sha1), "rb")  # uncached: streamed, a normal open
        try:
            self.assertEqual(first.read(100_000), self.data[:100_000])
            self.assertEqual(xattr(self.mnt, "backing_files"), "0")
            self.assertSameBytes(self.content(self.sha1), self.original)  # the rest, to EOF
            self.wait_for(lambda: os.path.exists(cached_path(self.cache, self.sha1)), "the file to complete")
            with open(self.content(self.sha1), "rb") as second:  # complete, beside a normal open
                self.assertEqual(second.read(), self.data)
                self.assertEqual(xattr(self.mnt, "backing_files"), "0", "mixed kinds of open on one inode")
            self.assertEqual(first.read(), self.data[100_000:])
        finally:
            first.close()
        self.wait_released()
        with open(self.content(self.sha1), "rb") as third:  # the next first open switches
            self.assertEqual(xattr(self.mnt, "backing_files"), "1")
            self.assertReadsWhileStopped(third, m.proc.pid)

    def test_eviction_never_takes_a_file_under_a_live_passthrough_open(self):
        self.cache_completely()
        others = [put_random_file(self.storage, 4 * MB, 50 + i, self.originals) for i in range(5)]
        self.mount("cache_max=8M")
        with open(self.content(self.sha1), "rb") as held:
            self.assertEqual(xattr(self.mnt, "backing_files"), "1")
            for sha1, original in others:  # 20 MB through an 8 MB cache
                self.assertSameBytes(self.content(sha1), original)
            self.assertTrue(os.path.exists(cached_path(self.cache, self.sha1)), "an open file was evicted")
            evicted = [s for s, _ in others if not os.path.exists(cached_path(self.cache, s))]
            self.assertTrue(evicted, "nothing was evicted: the test proves nothing")
            self.assertEqual(held.read(), self.data)
            with open(self.content(self.sha1), "rb") as again:
                self.assertEqual(again.read(), self.data)

    def test_strict_verification_still_serves_the_complete_file(self):
        self.cache_completely()
        m = self.mount("verify=strict")
        with open(self.content(self.sha1), "rb") as f:
            self.assertEqual(xattr(self.mnt, "backing_files"), "1")
            self.assertReadsWhileStopped(f, m.proc.pid)

    def test_a_refused_backing_file_leaves_the_normal_path(self):
        # A cache dir on overlayfs: the kernel refuses its files as backing files (ELOOP,
        # stacked too deep), and says so for every file of that file system.
        layers = {name: os.path.join(self.tmp, name) for name in ("lower", "upper", "work", "overlay")}
        for path in layers.values():
            os.makedirs(path)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%(lower)s,upperdir=%(upper)s,"
                        "workdir=%(work)s" % layers, layers["overlay"]], check=True)
        # (a failed test may leave the mount holding files of it: detach it then)
        self.addCleanup(lambda: subprocess.run(["umount", layers["overlay"]], capture_output=True).returncode == 0
                        or subprocess.run(["umount", "-l", layers["overlay"]], check=True))
        self.cache = os.path.join(layers["overlay"], "cache")
        self.cache_completely()
        m = self.mount()
        self.assertEqual(xattr(self.mnt, "passthrough"), "on")
        with open(self.content(self.sha1), "rb") as f:
            self.assertEqual(f.read(), self.data)
            self.assertEqual(xattr(self.mnt, "backing_files"), "0")
        self.assertEqual(xattr(self.mnt, "passthrough"),
                         "off: the cache dir is on a stacked file system (such as overlayfs)")
        self.assertIn("passthrough: off: the cache dir is on a stacked file system", m.output())
        self.assertSameBytes(self.content(self.sha1), self.original)
        self.unmount(m)

    def test_passthrough_off_keeps_the_normal_path(self):
        self.cache_completely()
        m = self.mount("passthrough=off")
        self.assertEqual(xattr(self.mnt, "passthrough"), "off: passthrough=off")
        self.assertIn("passthrough: off: passthrough=off", m.output())
        with open(self.content(self.sha1), "rb") as f:
            self.assertEqual(xattr(self.mnt, "backing_files"), "0")
            self.assertEqual(f.read(), self.data)
            with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mapped:
                self.assertEqual(hashlib.sha1(mapped).hexdigest(), self.sha1)


class PlainUserMount(MountTestCase):
    """A plain user's mount (/dev/fuse 0666, as udev sets it on a workstation; restored
    afterwards) has no CAP_SYS_ADMIN: passthrough is off, and says so; reads are right."""

    @classmethod
    def setUpClass(cls):
        cls.created = subprocess.run(["id", USER], capture_output=True).returncode != 0
        if cls.created:
            subprocess.run(["useradd", "-M", "-s", "/bin/sh", USER], check=True)
        cls.fuse_mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
        os.chmod("/dev/fuse", 0o666)

    @classmethod
    def tearDownClass(cls):
        os.chmod("/dev/fuse", cls.fuse_mode)
        if cls.created:
            subprocess.run(["userdel", USER], capture_output=True)

    def as_user(self, *cmd, **kwargs):
        return subprocess.run(["setpriv", "--reuid", USER, "--regid", USER, "--clear-groups", "--"] + list(cmd),
                              capture_output=True, timeout=self.hang_guard, **kwargs)

    def test_a_plain_users_mount_falls_back(self):
        user = pwd.getpwnam(USER)
        os.chmod(self.tmp, 0o755)
        for path in (self.mnt, self.cache):
            os.makedirs(path)
            os.chown(path, user.pw_uid, user.pw_gid)
        auth = os.path.join(self.tmp, "read-code")
        shutil.copyfile(self.emulator.auth_file, auth)
        os.chown(auth, user.pw_uid, user.pw_gid)
        sha1, original = put_random_file(self.storage, 2 * MB, 43, self.originals)
        log = open(os.path.join(self.tmp, "user-mount.log"), "wb")
        # setpriv execs kacheryfs itself: the PID is the mount's, without any capability
        proc = subprocess.Popen(["setpriv", "--reuid", USER, "--regid", USER, "--clear-groups", "--",
                                 KACHERYFS, "-f", self.emulator.address, self.mnt,
                                 "-o", "cache_dir=%s,auth_file=%s" % (self.cache, auth)],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_for(lambda: is_mounted(self.mnt) or proc.poll() is not None, "the user's mount")
            self.assertIsNone(proc.poll(), "the user's mount exited")
            reader = ("import os, sys; p, f = sys.argv[1:]; d = open(f, 'rb').read(); "
                      "print(os.getxattr(p, 'user.kachery.passthrough').decode()); "
                      "print(all(open(f, 'rb').read() == d for _ in range(2)))")
            path = os.path.join(self.mnt, "sha1", sha1)
            r = self.as_user(sys.executable, "-c", reader, self.mnt, path)
            self.assertEqual(r.returncode, 0, r.stderr)
            status, same = r.stdout.decode().splitlines()
            self.assertEqual(status, "off: it needs CAP_SYS_ADMIN (a root mount)")
            self.assertEqual(same, "True")
            r = self.as_user("cmp", path, original)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertTrue(os.path.exists(cached_path(self.cache, sha1)))
            r = self.as_user("cmp", path, original)  # complete now: still the normal path
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
            try:
                proc.wait(self.hang_guard)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        with open(log.name, "rb") as f:
            self.assertIn(b"passthrough: off: it needs CAP_SYS_ADMIN", f.read())


if __name__ == "__main__":
    unittest.main()
