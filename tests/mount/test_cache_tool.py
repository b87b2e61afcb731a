"""kacheryfs-cache: pin (with progress), unpin, status, ls, gc and verify on a cache dir,
with and without a running mount; pinned and open files survive a full cache."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import cached_path, KACHERYFS, MountTestCase, put_random_file, sha1_path  # noqa: E402

TOOL = os.environ.get("KACHERYFS_CACHE_BIN", os.path.join(os.path.dirname(KACHERYFS), "kacheryfs-cache"))
MB = 1_000_000


class CacheTool(MountTestCase):
    def tool(self, *args, options=(), check=True):
        opts = ",".join(["cache_dir=" + self.cache, "auth_file=" + self.emulator.auth_file] + list(options))
        r = subprocess.run([TOOL, "--daemon", self.emulator.address, "--create", "-o", opts, *args],
                           capture_output=True, text=True, timeout=300)
        if check:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def tool_json(self, *args, options=()):
        return json.loads(self.tool("--json", *args, options=options).stdout)

    def read_only_view(self):
        """A read-only bind mount of the cache dir (a snapshot, a read-only file system)."""
        view = os.path.join(self.tmp, "ro-cache")
        os.makedirs(view)
        subprocess.run(["mount", "--bind", self.cache, view], check=True)
        self.addCleanup(subprocess.run, ["umount", view])
        subprocess.run(["mount", "-o", "remount,ro,bind", view], check=True)
        return view

    def test_status_ls_and_metrics_work_on_a_read_only_cache(self):
        sha1, original = put_random_file(self.storage, 300_000, 8, self.originals)
        self.tool("pin", sha1)
        view = self.read_only_view()
        for command in ("status", "ls", "metrics"):
            r = subprocess.run([TOOL, "--daemon", self.emulator.address, "-o", "cache_dir=" + view, command],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, command + ": " + r.stderr)
            self.assertEqual(r.stderr, "", command)
        r = subprocess.run([TOOL, "-o", "cache_dir=" + view, "--json", "status"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(json.loads(r.stdout)["objects"], 1)
        self.assertEqual(json.loads(r.stdout)["pinned"], 1)
        # What would write says why, in one line, in plain words.
        r = subprocess.run([TOOL, "-o", "cache_dir=" + view, "gc"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn("Read-only file system", r.stderr)
        r = subprocess.run([TOOL, "--create", "-o", "cache_dir=" + os.path.join(view, "new"), "status"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertNotIn("filesystem error", r.stderr)
        self.assertIn("Read-only file system", r.stderr)

    def test_the_tools_messages(self):
        r = self.tool("pin", "notahash", check=False)
        self.assertEqual(r.returncode, 2, "a usage error")
        self.assertEqual(r.stderr, "kacheryfs-cache: pin: 'notahash' is not a sha1 or sha1:// URI\n")
        missing = "0" * 40
        r = self.tool("pin", missing, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "kacheryfs-cache: cannot pin %s: the node does not have it\n" % missing)
        sha1, _ = put_random_file(self.storage, 12_345, 9, self.originals)
        self.tool("pin", sha1)
        lines = self.tool("ls").stdout.splitlines()
        self.assertEqual(lines[0].split(), ["SHA1", "SIZE", "STATE", "PINNED", "HELD", "LAST", "ACCESS"])
        self.assertEqual(lines[1].split()[:5], [sha1, "12345", "complete", "yes", "12345"])
        # aligned: each value starts where its header does (sizes end where theirs does)
        self.assertEqual(lines[1].index("complete"), lines[0].index("STATE"))
        self.assertEqual(lines[1].index("yes"), lines[0].index("PINNED"))
        self.assertEqual(lines[1].index("12345") + 5, lines[0].index("SIZE") + 4, "sizes are right-aligned")
        self.assertEqual(lines[1].index("20"), lines[0].index("LAST ACCESS"))
        for program in (TOOL, KACHERYFS):
            text = subprocess.run([program, "--help"], capture_output=True, text=True).stdout
            wide = [l for l in text.splitlines() if len(l) > 100]
            self.assertEqual(wide, [], program + " --help is wider than 100 columns")

    def test_a_missing_cache_dir_is_refused_without_create(self):
        r = subprocess.run([TOOL, "-o", "cache_dir=" + self.cache + "-typo", "status"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not exist (give --create", r.stderr)
        self.assertFalse(os.path.exists(self.cache + "-typo"))

    def test_the_tool_finds_the_mounts_daemon_and_auth_file(self):
        sha1, original = put_random_file(self.storage, 200_000, 7, self.originals)
        self.mount()
        r = subprocess.run([TOOL, "-o", "cache_dir=" + self.cache, "--json", "status"],
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, KACHERY_DAEMON_HOST=""))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["daemon"], "http://" + self.emulator.address)
        self.assertTrue(json.loads(r.stdout)["daemon_reachable"])
        r = subprocess.run([TOOL, "-o", "cache_dir=" + self.cache, "pin", sha1],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(subprocess.run(["cmp", cached_path(self.cache, sha1), original]).returncode, 0)
        r = subprocess.run([TOOL, "--version"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^kacheryfs-cache \d+\.\d+\.\d+\n$")

    def test_pin_status_ls_unpin_gc(self):
        small, small_original = put_random_file(self.storage, 3 * MB, 1, self.originals)
        large, large_original = put_random_file(self.storage, 30 * MB, 2, self.originals)
        r = self.tool("pin", "sha1://%s/recording.dat" % small, large, options=["whole_max=10M"])
        self.assertIn("pinned " + small, r.stdout)
        self.assertRegex(r.stdout, large + r" \d+% of 30000000 bytes")  # plain progress lines (no terminal)
        for sha1, original in ((small, small_original), (large, large_original)):
            self.assertEqual(subprocess.run(["cmp", cached_path(self.cache, sha1), original]).returncode, 0)
        status = self.tool_json("status")
        self.assertEqual((status["objects"], status["pinned"], status["partial"]), (2, 2, 0))
        self.assertEqual(status["bytes"], 33 * MB)
        self.assertTrue(status["daemon_reachable"])
        listing = {e["sha1"]: e for e in self.tool_json("ls")}
        self.assertEqual(listing[large]["state"], "complete")
        self.assertTrue(listing[large]["pinned"])
        # a full cache keeps pinned files; unpinned, gc evicts them
        self.assertEqual(self.tool_json("gc", options=["cache_max=1M"])["bytes"], 33 * MB)
        self.tool("unpin", large)
        gc = self.tool_json("gc", options=["cache_max=10M"])
        self.assertEqual(gc["freed_bytes"], 30 * MB)
        self.assertFalse(os.path.exists(cached_path(self.cache, large)))
        self.assertTrue(os.path.exists(cached_path(self.cache, small)))
        r = self.tool("unpin", "0" * 40, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not in the cache", r.stderr)
        r = self.tool("pin", "not-a-hash", check=False)
        self.assertEqual(r.returncode, 2, "a usage error")

    def test_pin_shows_a_progress_bar_on_a_terminal(self):
        large, _ = put_random_file(self.storage, 30 * MB, 7, self.originals)
        self.emulator.restart("--first-byte-delay-ms", "100")  # long enough to draw the bar
        command = " ".join([TOOL, "--daemon", self.emulator.address, "--create", "-o",
                            "cache_dir=%s,auth_file=%s,whole_max=10M" % (self.cache, self.emulator.auth_file),
                            "pin", large])
        r = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn(b"\r" + large[:12].encode() + b" [", r.stdout)  # redrawn in place
        self.assertIn(b"] 100% of 28.6 MiB", r.stdout)
        self.assertIn(b"pinned " + large.encode(), r.stdout)

    def test_pinned_and_open_files_survive_filling_the_cache(self):
        pinned, pinned_original = put_random_file(self.storage, 20 * MB, 3, self.originals)
        self.tool("pin", pinned)
        others = [put_random_file(self.storage, 20 * MB, 10 + i, self.originals) for i in range(4)]
        self.mount("cache_max=45M")
        held_sha1, held_original = others[0]
        held = open(self.content(held_sha1), "rb")  # open while the cache fills past its limit
        try:
            self.assertEqual(held.read(), open(held_original, "rb").read())  # read, so cached whole
            held.seek(0)
            for sha1, original in others[1:]:
                self.assertSameBytes(self.content(sha1), original)
            self.assertTrue(os.path.exists(cached_path(self.cache, held_sha1)), "an open file was evicted")
            self.assertEqual(held.read(), open(held_original, "rb").read())
        finally:
            held.close()
        self.assertTrue(os.path.exists(cached_path(self.cache, pinned)), "a pinned file was evicted")
        self.assertSameBytes(self.content(pinned), pinned_original)
        status = self.tool_json("status")  # the tool works while the mount runs
        self.assertEqual(status["pinned"], 1)
        self.assertLessEqual(status["bytes"], 65 * (1 << 20))  # the limit, plus the file that was open
        # The mount writes its counters to the index every 200 ms (not once per open).
        self.wait_for(lambda: self.tool_json("status")["hit_rate"] > 0, "the mount's hit to reach the index")

    def test_pin_while_mounted_then_read_without_requests(self):
        sha1, original = put_random_file(self.storage, 2 * MB, 4, self.originals)
        self.mount()
        self.tool("pin", sha1)
        self.wait_for(self.emulator.all_answered, "the node to answer what was sent")  # late log lines
        before = len(self.emulator.downloads(sha1))
        self.assertSameBytes(self.content(sha1), original)
        self.assertEqual(len(self.emulator.downloads(sha1)), before)

    def test_verify_moves_bad_objects_aside(self):
        good, _ = put_random_file(self.storage, 1 * MB, 5, self.originals)
        bad, _ = put_random_file(self.storage, 1 * MB, 6, self.originals)
        self.tool("pin", good, bad)
        with open(cached_path(self.cache, bad), "r+b") as f:  # bit rot on disk
            f.seek(1000)
            f.write(b"X")
        r = self.tool("--json", "verify", check=False)
        self.assertEqual(r.returncode, 1)
        report = json.loads(r.stdout)
        self.assertEqual(report["bad"], [bad])
        self.assertEqual(report["checked"], 2)
        self.assertTrue(os.path.exists(os.path.join(self.cache, "bad", bad)))
        self.assertNotIn(bad, [e["sha1"] for e in self.tool_json("ls")])
        self.assertEqual(self.tool("verify").returncode, 0)
        # the index is repaired when a file disappeared behind its back
        os.unlink(cached_path(self.cache, good))
        report = self.tool_json("verify")
        self.assertEqual(report["index_entries_repaired"], 1)
        self.assertEqual(self.tool_json("ls"), [])

    def test_status_with_the_daemon_down(self):
        self.emulator.stop()
        status = self.tool_json("status")
        self.assertFalse(status["daemon_reachable"])
        r = self.tool("pin", "1" * 40, check=False, options=["connect_timeout=1"])
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    unittest.main()
