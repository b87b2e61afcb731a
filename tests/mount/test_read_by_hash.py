"""Real mounts against the emulator: files of every interesting size read by hash path,
compared with cmp and sha1sum; listing and stat; errno for junk names and writes."""
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import EMPTY_SHA1, MountTestCase, log_fields, put_bytes, put_random_file, tool_sha1  # noqa: E402

SIZES = [1, 4096, 1 << 20, 20_000_000, 20_000_001, 300_000_000]


class ReadByHash(MountTestCase):
    def store_via_daemon(self, path):
        """POST /store, as a kachery client would: the daemon writes the manifest for big files."""
        with open(path, "rb") as f:
            data = f.read()
        req = urllib.request.Request("http://%s/store" % self.emulator.address, data=data, method="POST",
                                     headers={"KACHERY-CLIENT-AUTH-CODE": self.emulator.auth_code(),
                                              "Content-Type": "application/octet-stream"})
        return json.loads(urllib.request.urlopen(req, timeout=120).read())

    def test_sizes_bytes_listing_and_stat(self):
        files = {}
        for i, size in enumerate(SIZES):
            if size == 20_000_001:
                sha1, original = put_random_file(self.tmp + "/scratch", size, i, self.originals)
                answer = self.store_via_daemon(original)
                self.assertEqual(answer["sha1"], sha1)
                self.assertIsNotNone(answer["manifestSha1"], "a 20,000,001-byte file has a manifest")
            else:
                sha1, original = put_random_file(self.storage, size, i, self.originals)
            files[sha1] = (size, original)
        put_bytes(self.storage, b"")
        self.mount()

        # stat sizes come from size discovery before any content is read
        for sha1, (size, _) in files.items():
            self.assertEqual(os.stat(self.content(sha1)).st_size, size)
            self.assertEqual(os.stat(self.content(sha1, layout=True)).st_size, size)
        self.assertEqual(os.stat(self.content(EMPTY_SHA1)).st_size, 0)

        for sha1, (size, original) in files.items():
            self.assertSameBytes(self.content(sha1), original)
            self.assertEqual(tool_sha1(self.content(sha1, layout=True)), sha1)
        with open(self.content(EMPTY_SHA1), "rb") as f:
            self.assertEqual(f.read(), b"")
        self.assertEqual(self.emulator.downloads(EMPTY_SHA1), [], "the empty file needs no request")

        listing = os.listdir(os.path.join(self.mnt, "sha1"))
        for sha1 in files:
            self.assertIn(sha1, listing)
            self.assertIn(sha1[:2], listing)
            self.assertIn(sha1, os.listdir(os.path.join(self.mnt, "sha1", sha1[0:2], sha1[2:4], sha1[4:6])))
        ls = subprocess.run(["ls", "-l", os.path.join(self.mnt, "sha1")], capture_output=True, text=True)
        self.assertEqual(ls.returncode, 0, ls.stderr)
        for sha1, (size, _) in files.items():
            line = next(l for l in ls.stdout.splitlines() if l.endswith(sha1))
            self.assertEqual(int(line.split()[4]), size)
            self.assertTrue(line.startswith("-r--r--r--"), line)

        # the cache holds the full content at objects/ab/<sha1>
        for sha1, (size, original) in files.items():
            cached = os.path.join(self.cache, "objects", sha1[0:2], sha1)
            self.assertEqual(tool_sha1(cached), sha1)

        # downloads were bounded ranges, never a whole file
        for line in self.emulator.downloads():
            fields = log_fields(line)
            self.assertNotEqual(fields["start"], "-", line)
            self.assertLessEqual(int(fields["end"]) - int(fields["start"]), 4 << 20, line)

    def test_sigterm_with_files_open_frees_what_the_kernel_never_releases(self):
        # A mount stopped while files are open (systemctl stop, a shutdown) never gets their
        # RELEASEs: kacheryfs frees those handles itself, and the cache stays whole.
        big, big_original = put_random_file(self.storage, 3_000_000, 1, self.originals)
        small = put_bytes(self.storage, b"small and complete")
        m = self.mount()
        held_big = open(self.content(big), "rb")
        self.addCleanup(held_big.close)
        self.assertEqual(held_big.read(4096), open(big_original, "rb").read(4096))
        with open(self.content(small), "rb") as f:
            f.read()
        held_small = open(self.content(small), "rb")
        self.addCleanup(held_small.close)
        held_dir = os.open(os.path.join(self.mnt, "sha1"), os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(os.close, held_dir)
        m.proc.send_signal(signal.SIGTERM)
        # A stop asked for is a clean exit (0), not a crash; under the sanitizers a leak of
        # those handles is a report.
        self.assertEqual(m.proc.wait(self.hang_guard), 0, m.output())
        self.assertIn("stopped by signal %d" % signal.SIGTERM, m.output())
        self.assertIn("freed 3 open handles the kernel did not release", m.output())
        self.unmount(m)
        self.mount()
        self.assertEqual(tool_sha1(self.content(big)), big)
        self.assertEqual(open(self.content(small), "rb").read(), b"small and complete")

    def test_node_id_file(self):
        self.mount()
        with open(os.path.join(self.mnt, "kachery-node-id")) as f:
            node_id = f.read()
        with open(os.path.join(self.storage, "kachery-node-id")) as f:
            self.assertEqual(node_id, f.read())
        self.assertEqual(sorted(os.listdir(self.mnt)), ["client-auth", "kachery-node-id", "sha1"])

    def test_junk_names_are_enoent_without_requests(self):
        sha1 = put_bytes(self.storage, b"some content\n")
        self.mount()
        os.stat(self.content(sha1))  # known to the mount: a path below it needs no request
        # The lookup's size discovery returns with the head's answer; the node still logs the
        # answers to the probes sent with it.
        self.wait_for(self.emulator.all_answered, "the node to answer the lookup's requests")
        before = len(self.emulator.log_lines())
        junk = [sha1.upper(), sha1[:-1], sha1 + "0", "g" * 40, "hello", sha1[:2] + "/" + sha1,
                "ZZ", "abc", sha1[0:2] + "/" + sha1[2:4] + "/" + sha1[4:6] + "/" + "0" * 40,
                sha1[0:2] + "/" + sha1[2:4] + "/" + sha1[4:6] + "/" + sha1 + "/x"]
        for name in junk:
            with self.assertRaises(OSError) as ctx:
                os.stat(os.path.join(self.mnt, "sha1", name))
            self.assertIn(ctx.exception.errno, (errno.ENOENT, errno.ENOTDIR), name + "\n" + self.mounts[0].output())
        with self.assertRaises(FileNotFoundError):
            os.stat(os.path.join(self.mnt, "nonsense"))
        self.assertEqual(self.emulator.log_lines()[before:], [], "malformed names caused requests")
        # a well-formed hash the node lacks: ENOENT after asking
        missing = hashlib.sha1(b"not stored anywhere").hexdigest()
        with self.assertRaises(FileNotFoundError):
            open(self.content(missing), "rb")
        self.assertTrue(self.emulator.downloads(missing))

    def test_writes_are_erofs(self):
        sha1 = put_bytes(self.storage, b"read-only content\n")
        self.mount()
        path = self.content(sha1)
        attempts = {
            "open for writing": lambda: open(path, "r+b"),
            "truncate": lambda: os.truncate(path, 0),
            "create": lambda: open(os.path.join(self.mnt, "sha1", "newfile"), "wb"),
            "mkdir": lambda: os.mkdir(os.path.join(self.mnt, "sha1", "newdir")),
            "unlink": lambda: os.unlink(path),
            "rename": lambda: os.rename(path, path + "x"),
            "chmod": lambda: os.chmod(path, 0o777),
            "symlink": lambda: os.symlink("/etc/passwd", os.path.join(self.mnt, "link")),
            "setxattr": lambda: os.setxattr(path, "user.x", b"1"),
        }
        for what, attempt in attempts.items():
            with self.assertRaises(OSError, msg=what) as ctx:
                attempt()
            self.assertEqual(ctx.exception.errno, errno.EROFS, what)
        self.assertSameBytes(path, self._original(b"read-only content\n"))

    def _original(self, data):
        p = os.path.join(self.tmp, "orig")
        with open(p, "wb") as f:
            f.write(data)
        return p


if __name__ == "__main__":
    unittest.main()
