"""A workstation's way in: the .deb built with CPack and installed with dpkg, mounts from
fstab lines through the installed mount.kacheryfs (mount -a twice, umount, umount -l,
nofail/_netdev, a plain user's `user,noauto` entry), the helper's mount(8) flags, systemd's
fstab generator and the packaged units checked by systemd-analyze, a plain user mounting
with fusermount3, and the package removed with nothing left behind.

The package is built from the build tree (KACHERYFS_BUILD_DIR) once for the whole file and
purged at the end. A workstation's /dev/fuse is 0666 (udev); the user tests set that mode
and restore it."""
import glob
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import Emulator, MountTestCase, is_mounted, put_random_file, tool_sha1  # noqa: E402

BUILD_DIR = os.environ.get("KACHERYFS_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
USER = "kfs-workstation-user"
FSTAB_MARK = "# kacheryfs test entry"


def run(*cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 300)
    return subprocess.run(list(cmd), **kw)


def mounts_at(path):
    # Only /proc/mounts is read: resolving the path would touch an automounted directory
    # and keep it from expiring (the temp dirs here have no symlinks to resolve).
    with open("/proc/mounts") as f:
        return [line.split() for line in f if line.split()[1] == path]


class Workstation(MountTestCase):
    @classmethod
    def setUpClass(cls):
        if run("dpkg-query", "-W", "kacheryfs").returncode == 0:
            raise AssertionError("a kacheryfs package is already installed here; the test will not replace it")
        out = tempfile.mkdtemp(prefix="kfs-deb-")
        cls.deb_dir = out
        r = run("cpack", "-G", "DEB", "-B", out, cwd=BUILD_DIR, timeout=900)
        if r.returncode != 0:
            raise AssertionError("cpack failed: " + r.stdout[-2000:] + r.stderr[-2000:])
        debs = glob.glob(os.path.join(out, "kacheryfs_*.deb"))
        assert len(debs) == 1, debs
        cls.deb = debs[0]
        r = run("dpkg", "-i", cls.deb)
        if r.returncode != 0:
            raise AssertionError("dpkg -i failed: " + r.stdout + r.stderr)
        cls.files = [p for p in run("dpkg", "-L", "kacheryfs").stdout.split() if os.path.isfile(p)]
        cls.user_created = False
        if run("id", USER).returncode != 0:
            run("useradd", "-m", "-s", "/bin/sh", USER, check=True)
            cls.user_created = True
        cls.fuse_mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
        with open("/etc/fstab") as f:
            cls.fstab = f.read()

    @classmethod
    def tearDownClass(cls):
        with open("/etc/fstab", "w") as f:
            f.write(cls.fstab)
        os.chmod("/dev/fuse", cls.fuse_mode)
        if cls.user_created:
            run("userdel", "-r", USER)
        run("dpkg", "--purge", "kacheryfs")
        shutil.rmtree(cls.deb_dir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)
        os.makedirs(self.mnt)
        self.sha1, self.original = put_random_file(self.storage, 300_000, 1, self.originals)
        self.addCleanup(self.unmount_everything)

    def unmount_everything(self):
        for _ in range(3):
            if is_mounted(self.mnt):
                run("umount", "-l", self.mnt)

    def spec(self):
        return "127.0.0.1:%d" % self.emulator.port

    def write_fstab(self, options, path=None):
        path = path or os.path.join(self.tmp, "fstab")
        with open(path, "w") as f:
            f.write("%s %s kacheryfs %s 0 0\n" % (self.spec(), self.mnt, options))
        return path

    def test_the_package(self):
        info = run("dpkg-deb", "-I", self.deb).stdout
        depends = [l for l in info.splitlines() if l.strip().startswith("Depends:")][0]
        for library in ("libfuse3-3", "libssl3", "libsqlite3-0", "libc6", "fuse3"):
            self.assertIn(library, depends)
        size = [l for l in info.splitlines() if "Installed-Size" in l][0]
        print("\n" + depends.strip() + "\n" + size.strip(), file=sys.stderr)
        for binary in ("/usr/bin/kacheryfs", "/usr/bin/kacheryfs-cache"):
            sections = run("objdump", "-h", binary).stdout
            self.assertNotIn(".debug_info", sections, binary + " is stripped")
        self.assertTrue(os.access("/usr/sbin/mount.kacheryfs", os.X_OK))
        with open("/usr/sbin/mount.kacheryfs") as f:
            candidates = [l for l in f if l.startswith("for kacheryfs in")][0].split()[3:]
        self.assertEqual(candidates[0], "/usr/bin/kacheryfs",
                         "the package's helper runs the package's kacheryfs, not one in /usr/local")
        self.assertEqual(os.path.realpath("/sbin/mount.kacheryfs"), "/usr/sbin/mount.kacheryfs",
                         "mount(8) finds the helper in /sbin")
        for page in ("man1/kacheryfs.1.gz", "man1/kacheryfs-cache.1.gz", "man8/mount.kacheryfs.8.gz"):
            self.assertTrue(os.path.exists("/usr/share/man/" + page), page)
        r = run("lintian", "--fail-on", "error,warning", self.deb, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_mount_a_twice_then_umount(self):
        fstab = self.write_fstab("_netdev,nofail,auth_file=%s,cache_dir=%s" % (self.emulator.auth_file, self.cache))
        started = time.monotonic()
        r = run("mount", "-a", "-T", fstab)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(tool_sha1(self.content(self.sha1)), self.sha1)
        print("\nmount -a to first byte: %.0f ms" % ((time.monotonic() - started) * 1e3), file=sys.stderr)
        entries = mounts_at(self.mnt)
        self.assertEqual(len(entries), 1, entries)
        self.assertEqual(entries[0][0], self.spec(), "the source is SPEC as written")
        self.assertEqual(entries[0][2], "fuse.kacheryfs")
        r = run("mount", "-a", "-T", fstab)  # again: already mounted, nothing happens
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(mounts_at(self.mnt)), 1, "mounts do not stack")
        self.assertEqual(run("umount", self.mnt).returncode, 0)
        self.assertFalse(is_mounted(self.mnt))

    def test_an_fstab_line_with_two_nodes(self):
        storage_b = os.path.join(self.tmp, "storage-b")
        workdir_b = os.path.join(self.tmp, "node-b")
        os.makedirs(storage_b)
        os.makedirs(workdir_b)
        node_b = Emulator(storage_b, workdir=workdir_b)
        self.addCleanup(node_b.stop)
        only_b, _ = put_random_file(storage_b, 200_000, 2, self.originals)
        spec = "%s,%s" % (self.spec(), node_b.address)
        with open(os.path.join(self.tmp, "fstab-two"), "w") as f:
            f.write("%s %s kacheryfs _netdev,nofail,auth_file=%s:%s,cache_dir=%s 0 0\n"
                    % (spec, self.mnt, self.emulator.auth_file, node_b.auth_file, self.cache))
        fstab = os.path.join(self.tmp, "fstab-two")
        r = run("mount", "-a", "-T", fstab)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(tool_sha1(self.content(self.sha1)), self.sha1)
        self.assertEqual(tool_sha1(self.content(only_b)), only_b)
        entries = mounts_at(self.mnt)
        self.assertEqual([e[0] for e in entries], [spec], "the source is SPEC as written, commas and all")
        self.assertEqual(run("mount", "-a", "-T", fstab).returncode, 0)
        self.assertEqual(len(mounts_at(self.mnt)), 1, "mounts do not stack")
        self.assertEqual(run("umount", self.mnt).returncode, 0)

    def test_umount_lazy_on_a_busy_mount(self):
        fstab = self.write_fstab("auth_file=%s,cache_dir=%s" % (self.emulator.auth_file, self.cache))
        self.assertEqual(run("mount", "-a", "-T", fstab).returncode, 0)
        with open(self.content(self.sha1), "rb") as busy:
            r = run("umount", self.mnt)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("busy", r.stderr)
            self.assertEqual(run("umount", "-l", self.mnt).returncode, 0)
            self.assertFalse(is_mounted(self.mnt))
            self.assertEqual(len(busy.read()), 300_000, "an open file stays readable after umount -l")

    def test_nofail_and_netdev_with_the_daemon_down(self):
        # The lenient default for fstab: a daemon that is down does not fail the boot's
        # mount; the cache is served and the daemon is used once it answers.
        self.emulator.stop()
        fstab = self.write_fstab("nofail,_netdev,cache_dir=%s" % self.cache)
        r = run("mount", "-a", "-T", fstab)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(is_mounted(self.mnt))
        self.assertIn("unreachable", r.stderr, "one warning on the terminal")
        self.assertEqual(r.stderr.count("unreachable"), 1, r.stderr)

    def test_the_helper_follows_mount_conventions(self):
        opts = "auth_file=%s,cache_dir=%s,_netdev,noauto,x-systemd.automount" % (self.emulator.auth_file, self.cache)
        r = run("/sbin/mount.kacheryfs", self.spec(), self.mnt, "-f", "-o", opts)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("kacheryfs %s %s -o auth_file=" % (self.spec(), self.mnt), r.stderr)
        self.assertNotIn("_netdev", r.stderr, "fstab-only options are filtered")
        self.assertFalse(is_mounted(self.mnt), "-f fakes")
        r = run("/sbin/mount.kacheryfs", self.spec(), self.mnt, "-o", opts + ",no_such_option")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown option", r.stderr)
        r = run("/sbin/mount.kacheryfs", self.spec(), self.mnt, "-snv", "-o", opts + ",no_such_option")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning", r.stderr)
        self.assertIn("mount.kacheryfs: ", r.stderr, "-v shows the command")
        self.assertTrue(is_mounted(self.mnt))
        self.assertEqual(tool_sha1(self.content(self.sha1)), self.sha1)

    def test_a_plain_user_mounts_a_user_noauto_entry(self):
        os.chmod("/dev/fuse", 0o666)
        shutil.chown(self.mnt, USER)
        cache = os.path.join("/home", USER, "kfs-cache")
        with open("/etc/fstab", "a") as f:
            f.write("%s %s kacheryfs user,noauto,auth_file=%s,cache_dir=%s 0 0 %s\n" %
                    (self.spec(), self.mnt, self.emulator.auth_file, cache, FSTAB_MARK))
        os.chmod(self.emulator.auth_file, 0o644)
        r = run("runuser", "-u", USER, "--", "mount", self.mnt)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run("runuser", "-u", USER, "--", "sha1sum", self.content(self.sha1))
        self.assertEqual(r.stdout.split()[0], self.sha1, r.stderr)
        self.assertEqual(run("runuser", "-u", USER, "--", "umount", self.mnt).returncode, 0)
        self.assertFalse(is_mounted(self.mnt))

    def test_a_plain_user_mounts_with_fusermount_and_a_cache_in_home(self):
        os.chmod("/dev/fuse", 0o666)
        shutil.chown(self.mnt, USER)
        os.chmod(self.emulator.auth_file, 0o644)
        r = run("runuser", "-u", USER, "--", "kacheryfs", self.spec(), self.mnt,
                "-o", "auth_file=" + self.emulator.auth_file)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run("runuser", "-u", USER, "--", "sha1sum", self.content(self.sha1))
        self.assertEqual(r.stdout.split()[0], self.sha1, r.stderr)
        home = os.path.expanduser("~" + USER)
        self.assertTrue(os.path.exists(os.path.join(home, ".cache", "kacheryfs", "objects", self.sha1[0:2])))
        self.assertEqual(run("runuser", "-u", USER, "--", "fusermount3", "-u", self.mnt).returncode, 0)
        # allow_other needs user_allow_other in /etc/fuse.conf: one clear line says so
        r = run("runuser", "-u", USER, "--", "kacheryfs", self.spec(), self.mnt,
                "-o", "allow_other,cache_dir=/home/%s/other-cache" % USER)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("user_allow_other", r.stderr)
        self.assertFalse(is_mounted(self.mnt))

    def test_systemd_units(self):
        # The fstab generator turns an x-systemd.automount line into units; systemd is not
        # PID 1 here, so the generated and the packaged units are checked offline.
        fstab = self.write_fstab("_netdev,x-systemd.automount,x-systemd.idle-timeout=600,auth_file=/etc/kachery/client-auth")
        out = os.path.join(self.tmp, "generated")
        os.makedirs(out)
        r = run("/lib/systemd/system-generators/systemd-fstab-generator", out, out, out,
                env=dict(os.environ, SYSTEMD_FSTAB=fstab, SYSTEMD_LOG_LEVEL="warning"))
        self.assertEqual(r.returncode, 0, r.stderr)
        unit = run("systemd-escape", "-p", "--suffix=mount", self.mnt).stdout.strip()
        automount = unit[:-len("mount")] + "automount"
        self.assertTrue(os.path.exists(os.path.join(out, unit)), os.listdir(out))
        with open(os.path.join(out, automount)) as f:
            self.assertIn("TimeoutIdleSec=10min", f.read())
        with open(os.path.join(out, unit)) as f:
            text = f.read()
        self.assertIn("Type=kacheryfs", text)
        self.assertIn("What=" + self.spec(), text)
        r = run("systemd-analyze", "verify", "--man=no", os.path.join(out, unit), os.path.join(out, automount))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        examples = "/usr/share/doc/kacheryfs/examples"
        r = run("systemd-analyze", "verify", "--man=no", examples + "/kachery.mount", examples + "/kachery.automount",
                examples + "/kacheryfs-metrics.service", examples + "/kacheryfs-metrics.timer")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        units = os.path.join(self.tmp, "user-units")
        os.makedirs(units)
        shutil.copy(examples + "/kacheryfs@.service", units)
        os.symlink(os.path.join(units, "kacheryfs@.service"), os.path.join(units, "kacheryfs@kachery.service"))
        r = run("systemd-analyze", "verify", "--man=no", os.path.join(units, "kacheryfs@kachery.service"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_autofs_mounts_on_access_and_unmounts_when_idle(self):
        # Debian's autofs daemon in the foreground, on a master map of its own.
        top = os.path.join(self.tmp, "auto")
        os.makedirs(top)
        kmap = os.path.join(self.tmp, "auto.kachery")
        with open(kmap, "w") as f:
            f.write("kachery -fstype=kacheryfs,auth_file=%s,cache_dir=%s :127.0.0.1\\:%d\n" %
                    (self.emulator.auth_file, self.cache, self.emulator.port))
        master = os.path.join(self.tmp, "auto.master")
        with open(master, "w") as f:
            f.write("%s file:%s --timeout=2\n" % (top, kmap))
        with open("/proc/filesystems") as f:
            kernel_autofs = "autofs" in f.read()
        if not kernel_autofs:
            # A kernel built without autofs (no module either) cannot trigger a mount on
            # access. What automount would then run is still checked: mount(8) with the map
            # entry's type, options and source, through the packaged helper.
            print("\nthis kernel has no autofs: the map entry is mounted as automount would "
                  "mount it, without the on-access trigger and idle unmount", file=sys.stderr)
            with open(kmap) as f:
                key, options, location = f.read().split()
            fstype, opts = options[1:].split(",", 1)
            target = os.path.join(top, key)
            os.makedirs(target)
            # Three cycles of what automount does on access and after the idle timeout.
            for cycle in range(3):
                r = run("mount", "-t", fstype.split("=")[1], "-o", opts, location[1:].replace("\\:", ":"), target)
                self.assertEqual(r.returncode, 0, "cycle %d: %s%s" % (cycle + 1, r.stdout, r.stderr))
                try:
                    self.assertEqual(mounts_at(target)[0][2], "fuse.kacheryfs")
                    self.assertEqual(tool_sha1(self.content(self.sha1).replace(self.mnt, target)), self.sha1)
                finally:
                    self.assertEqual(run("umount", target).returncode, 0)
            return
        log = open(os.path.join(self.tmp, "automount.log"), "wb")
        daemon = subprocess.Popen(["automount", "-f", "-v", "-p", os.path.join(self.tmp, "automount.pid"),
                                   "file:" + master], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # the kernel serves the daemon's own
                                                           # process group without mounting
        target = os.path.join(top, "kachery")
        try:
            self.wait_for(lambda: mounts_at(top) != [], "automount to watch " + top, timeout=30)
            started = time.monotonic()
            try:
                st = os.stat(os.path.join(target, "sha1", self.sha1))  # the first access mounts
            except OSError:
                log.flush()
                with open(log.name) as f:
                    raise AssertionError(f.read()[-3000:])
            elapsed = time.monotonic() - started
            print("\nautofs mount on access: %.0f ms" % (elapsed * 1e3), file=sys.stderr)
            self.assertEqual(st.st_size, 300_000)
            self.assertEqual(mounts_at(target)[0][2], "fuse.kacheryfs")
            self.assertEqual(tool_sha1(self.content(self.sha1).replace(self.mnt, target)), self.sha1)
            self.wait_for(lambda: mounts_at(target) == [], "autofs to unmount the idle mount", timeout=60)
            # The automount cycle: the next access right after the idle unmount mounts again
            # (the previous process may still be exiting), three times over.
            for cycle in range(3):
                self.assertEqual(tool_sha1(os.path.join(target, "sha1", self.sha1)), self.sha1,
                                 "access %d after an idle unmount" % (cycle + 1))
                self.assertEqual(mounts_at(target)[0][2], "fuse.kacheryfs")
                self.wait_for(lambda: mounts_at(target) == [], "autofs to unmount the idle mount", timeout=60)
        finally:
            daemon.terminate()
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            log.close()
            for path in (target, top):
                if mounts_at(path):
                    run("umount", "-l", path)

    def test_zz_removing_the_package_leaves_nothing(self):
        # Runs last (name order); the class teardown purges again, harmlessly. Root's cache
        # dir stays on remove and goes on purge; one that was here already is set aside.
        self.assertTrue(self.files)
        root_cache = "/var/cache/kacheryfs"
        saved = root_cache + ".kfs-test-saved"
        if os.path.exists(root_cache):
            os.rename(root_cache, saved)
            self.addCleanup(os.rename, saved, root_cache)
        os.makedirs(os.path.join(root_cache, "objects"))
        with open(os.path.join(root_cache, "objects", "object"), "w") as f:
            f.write("cached")
        self.addCleanup(shutil.rmtree, root_cache, ignore_errors=True)
        self.assertEqual(run("dpkg", "--remove", "kacheryfs").returncode, 0)
        self.assertTrue(os.path.exists(os.path.join(root_cache, "objects", "object")), "remove took the cache")
        self.assertEqual(run("dpkg", "-i", self.deb).returncode, 0)
        self.assertEqual(run("dpkg", "--purge", "kacheryfs").returncode, 0)
        self.assertFalse(os.path.exists(root_cache), "purge left root's cache dir")
        left = [p for p in self.files if os.path.exists(p)]
        self.assertEqual(left, [], "files left behind")
        self.assertFalse(os.path.exists("/usr/share/doc/kacheryfs"))
        self.assertEqual(run("dpkg", "-i", self.deb).returncode, 0, "reinstalls cleanly")


if __name__ == "__main__":
    unittest.main()
