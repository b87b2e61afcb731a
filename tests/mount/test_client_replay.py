"""The stock kachery-client (1.2.0) on a workstation, replayed through a real mount.

The client cannot be installed here, so ReplayClient performs, with the standard library,
exactly the sequences that ../shared/kachery-client-behaviour.md sets out: what it reads
from KACHERY_STORAGE_DIR (here: the kacheryfs mount) and which daemon routes it calls, in
which order. Every test drives a real mount against the emulator and compares bytes with
sha1sum or the original file."""
import grp
import hashlib
import http.client
import json
import os
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import (KACHERYFS, Mount, MountTestCase, parse_jsonsocket, put_bytes, put_manifest,  # noqa: E402
                              put_random_file, round_trips, tool_sha1)

TOOL = os.environ.get("KACHERYFS_CACHE_BIN", os.path.join(os.path.dirname(KACHERYFS), "kacheryfs-cache"))
USER = "kfs-replay-user"
GROUP = "kfs-auth-readers"


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class ClientError(Exception):
    pass


class ReplayClient:
    """What kachery-client 1.2.0 does with KACHERY_DAEMON_HOST/PORT and KACHERY_STORAGE_DIR
    (or KACHERY_OFFLINE_STORAGE_DIR), step by step."""

    def __init__(self, host, port, storage_dir=None, offline_dir=None, channel=None):
        self.host, self.port = host, port
        self.storage_dir, self.offline_dir, self.channel = storage_dir, offline_dir, channel
        self.code, self.code_read_at = None, 0.0
        self.probe_cache, self.probe_at = None, 0.0
        self.requests = []

    # -- the daemon
    def _request(self, method, path, body=None, headers=None, auth=True):
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            h = dict(headers or {})
            if auth:
                h["KACHERY-CLIENT-AUTH-CODE"] = self.auth_code()
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            self.requests.append(method + " " + path)
            return r.status, r.read()
        finally:
            c.close()

    def auth_code(self):
        # client-auth is read with one read() of the whole file and cached for up to 60 s.
        if self.code is None or time.monotonic() - self.code_read_at > 60:
            path = os.path.join(self.storage_dir, "client-auth")
            if not os.path.exists(path):
                raise ClientError("Unable to find client auth file (perhaps daemon is not running): " + path)
            fd = os.open(path, os.O_RDONLY)
            try:
                self.code = os.read(fd, 1 << 16).decode()
            finally:
                os.close(fd)
            self.code_read_at = time.monotonic()
        return self.code

    def probe(self):
        if self.probe_cache is None or time.monotonic() - self.probe_at > 10:
            status, body = self._request("GET", "/probe", auth=False)
            if status != 200:
                raise ClientError("probe failed: %d" % status)
            self.probe_cache, self.probe_at = json.loads(body), time.monotonic()
        return self.probe_cache

    def storage(self):
        if self.offline_dir:
            return self.offline_dir
        node_id = self.probe()["nodeId"]
        with open(os.path.join(self.storage_dir, "kachery-node-id")) as f:
            if f.read() != node_id:  # compared with != : one extra byte and it fails
                raise ClientError("Inconsistent node ID")
        return self.storage_dir

    # -- reading
    def local_path(self, uri):
        sha1 = uri[len("sha1://"):].split("/")[0].split("?")[0]
        return os.path.join(self.storage(), "sha1", sha1[0:2], sha1[2:4], sha1[4:6], sha1)

    def cat(self, uri, start=None, end=None):
        path = self.local_path(uri)
        if not os.path.exists(path):
            if not self.channel:
                return None
            path = self.load_through_channel(uri)
        with open(path, "rb") as f:
            if start is not None:
                f.seek(start)
                return f.read(end - start)
            return f.read()

    def load_through_channel(self, uri):
        sha1 = uri[len("sha1://"):].split("/")[0].split("?")[0]
        status, body = self._request("POST", "/loadFile", json.dumps(
            {"fileKey": {"sha1": sha1}, "channelName": self.channel}), {"Content-Type": "application/json"})
        if status != 200:
            raise ClientError("loadFile: %d" % status)
        messages = parse_jsonsocket(body)
        finished = [m for m in messages if m["type"] == "finished"]
        if not finished:
            raise ClientError("loadFile: %r" % messages[-1:])
        path = finished[0]["localFilePath"]  # a path on the node
        if not os.path.exists(path):
            raise ClientError("loaded, but %s does not exist here" % path)
        return path

    def load_text(self, uri):
        data = self.cat(uri)
        return None if data is None else data.decode()

    # -- storing
    def store_file(self, path):
        with open(path, "rb") as f:
            data = f.read()
        for _ in range(5):  # the real daemon's rename race answers success with sha1 null
            status, body = self._request("POST", "/store", data, {"Content-Length": str(len(data))})
            if status != 200:
                raise ClientError("store: %d %r" % (status, body[:200]))
            answer = json.loads(body)
            if answer.get("sha1"):
                break
        sha1, manifest = answer["sha1"], answer.get("manifestSha1")
        # Immediately: exists() and `stat -c%s` (a subprocess) of the stored path.
        stored = os.path.join(self.storage(), "sha1", sha1[0:2], sha1[2:4], sha1[4:6], sha1)
        if not os.path.exists(stored):
            raise ClientError("Unexpected, could not find stored file after storing with daemon")
        size = int(subprocess.run(["stat", "-c%s", stored], capture_output=True, text=True, check=True).stdout)
        if size != len(data):
            raise ClientError("Unexpected size discrepancy")
        uri = "sha1://%s/%s" % (sha1, os.path.basename(path))
        return uri + ("?manifest=" + manifest if manifest else "")

    def store_text(self, text, workdir):
        path = os.path.join(workdir, "file.txt")
        with open(path, "w") as f:
            f.write(text)
        return self.store_file(path)

    def link_file(self, path):
        st = os.stat(path)
        status, body = self._request("POST", "/linkFile", json.dumps(
            {"localFilePath": path, "size": st.st_size, "mtime": st.st_mtime}), {"Content-Type": "application/json"})
        if status != 200 or not json.loads(body).get("success"):
            raise ClientError("linkFile: %d %r" % (status, body[:200]))
        return "sha1://%s/%s" % (json.loads(body)["sha1"], os.path.basename(path))


class ClientReplay(MountTestCase):
    def client(self, **kw):
        kw.setdefault("storage_dir", self.mnt)
        return ReplayClient("127.0.0.1", self.emulator.port, **kw)

    def downloads(self):
        return [l for l in self.emulator.log_lines() if l.startswith("POST /downloadFileData")]

    def test_cat_and_range_cat(self):
        sha1, original = put_random_file(self.storage, 3_000_000, 1, self.originals)
        self.mount()
        c = self.client()
        data = c.cat("sha1://%s/data.bin" % sha1)
        self.assertEqual(hashlib.sha1(data).hexdigest(), tool_sha1(original))
        with open(original, "rb") as f:
            f.seek(123_456)
            expected = f.read(1000)
        self.assertEqual(c.cat("sha1://" + sha1, 123_456, 124_456), expected)
        self.assertIsNone(c.cat("sha1://" + "0" * 40), "not on the node, no channel: None")

    def test_load_with_a_manifest(self):
        sha1, original = put_random_file(self.storage, 25_000_000, 2, self.originals)
        manifest = put_manifest(self.storage, original)
        self.mount("whole_max=10M")
        data = self.client().cat("sha1://%s/big.dat?manifest=%s" % (sha1, manifest))
        self.assertEqual(hashlib.sha1(data).hexdigest(), tool_sha1(original))

    def test_load_through_a_channel_resolves_on_the_workstation(self):
        # The recipe: mount kacheryfs at the node's own storage path (/probe's
        # kacheryStorageDir); /loadFile's localFilePath then names a file in the mount. The
        # client looks the hash up just before asking for the load, so the mount must not
        # remember that miss (by default it does not: negative_timeout=0).
        network = os.path.join(self.tmp, "network")
        sha1, original = put_random_file(network, 2_000_000, 3, self.originals)
        self.emulator.restart("--network-dir", network, "--load-delay-ms", "300",
                              "--report-storage-dir", self.mnt)
        self.mount()
        c = self.client(channel="testchannel")
        self.assertEqual(c.probe()["kacheryStorageDir"], self.mnt)
        data = c.cat("sha1://" + sha1)
        self.assertEqual(hashlib.sha1(data).hexdigest(), tool_sha1(original))
        self.assertIn("POST /loadFile", c.requests)

    def test_store_then_exists_and_stat_at_once(self):
        self.mount()
        c = self.client()
        path = os.path.join(self.tmp, "result.npy")
        with open(path, "wb") as f:
            f.write(os.urandom(50_000))
        uri = c.store_file(path)
        self.assertTrue(uri.startswith("sha1://%s/result.npy" % tool_sha1(path)), uri)
        self.assertEqual(c.cat(uri), read_bytes(path))
        # The store's exists()+stat and the read cost the mount one small request (one round
        # trip) in all.
        self.assertEqual(len(round_trips(self.downloads())), 1, self.downloads())

    def test_a_store_right_after_a_miss_is_found_at_once(self):
        # "Check, and store if missing": the stock client's store follows the miss within
        # 100 ms, and its exists() and stat must see the new file, as must a cat.
        self.mount()
        c = self.client()
        path = os.path.join(self.tmp, "result.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(20_000))
        sha1 = tool_sha1(path)
        layout_dir = os.path.join(self.mnt, "sha1", sha1[0:2], sha1[2:4], sha1[4:6])
        for lookup in (self.content(sha1), os.path.join(layout_dir, sha1)):
            with self.assertRaises(FileNotFoundError):
                os.stat(lookup)
        self.assertNotIn(sha1, os.listdir(layout_dir))
        # Each lookup of the missing hash asked for its head once, and no more (size
        # discovery may pipeline 1-byte probes behind the first head, in the same round trip).
        heads = [l for l in self.downloads() if " start=0 " in l]
        self.assertEqual(len(heads), 2, self.downloads())
        asked = [dict(f.split("=", 1) for f in l.split() if "=" in f) for l in self.downloads()]
        self.assertEqual([a for a in asked if a["start"] != "0" and int(a["end"]) - int(a["start"]) != 1], [],
                         "besides the heads, only 1-byte probes")
        uri = c.store_file(path)  # at once: POST /store, then exists() and stat -c%s of the stored path
        self.assertTrue(uri.startswith("sha1://%s/" % sha1), uri)
        self.assertTrue(os.path.exists(self.content(sha1)))
        self.assertEqual(os.stat(os.path.join(layout_dir, sha1)).st_size, 20_000)
        self.assertEqual(c.cat(uri), read_bytes(path))
        self.assertEqual(subprocess.run(["sha1sum", self.content(sha1)], capture_output=True,
                                        text=True).stdout.split()[0], sha1)
        self.assertIn(sha1, os.listdir(layout_dir))

    def test_negative_timeout_remembers_a_miss_when_asked_to(self):
        self.mount("negative_timeout=600")
        data = os.urandom(1000)
        sha1 = hashlib.sha1(data).hexdigest()
        for _ in range(3):
            with self.assertRaises(FileNotFoundError):
                os.stat(self.content(sha1))
        self.assertEqual(len([l for l in self.downloads() if " start=0 " in l]), 1, "the miss is remembered")
        put_bytes(self.storage, data)
        with self.assertRaises(FileNotFoundError):
            os.stat(self.content(sha1))

    def test_kacheryfs_cache_store_seeds_the_cache(self):
        m = self.mount()
        path = os.path.join(self.tmp, "recording.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(21_000_000))  # over 20,000,000 bytes: the node makes a manifest
        r = subprocess.run([TOOL, "--daemon", self.emulator.address, "--create", "-o",
                            "cache_dir=%s,auth_file=%s" % (self.cache, self.emulator.auth_file),
                            "store", path], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        sha1 = tool_sha1(path)
        self.assertRegex(r.stdout.strip(), r"^sha1://%s/recording\.bin\?manifest=[0-9a-f]{40}$" % sha1)
        self.assertEqual(tool_sha1(os.path.join(self.storage, "sha1", sha1[0:2], sha1[2:4], sha1[4:6], sha1)), sha1)
        # The mount's accounting sees what the tool put into its cache.
        self.wait_for(lambda: int(os.getxattr(self.mnt, "user.kachery.cache_bytes")) == 21_000_000,
                      "the mount's cache_bytes to count the stored file")
        before = len(self.downloads())
        self.assertEqual(subprocess.run(["cmp", self.content(sha1), path]).returncode, 0, m.output())
        self.assertEqual(len(self.downloads()), before, "read from the cache the store filled")

    def test_store_text_and_load_text(self):
        self.mount()
        c = self.client()
        uri = c.store_text("hello from a workstation\n", self.tmp)
        self.assertEqual(c.load_text(uri), "hello from a workstation\n")

    def test_link_file(self):
        self.mount()
        original = os.path.join(self.tmp, "linked.bin")
        with open(original, "wb") as f:
            f.write(os.urandom(300_000))
        c = self.client()
        uri = c.link_file(original)  # the path is on the node (here: the same machine)
        self.assertEqual(c.cat(uri), read_bytes(original))

    def test_offline_storage_dir_on_the_mount_with_the_daemon_down(self):
        sha1, original = put_random_file(self.storage, 500_000, 4, self.originals)
        self.mount()
        self.assertEqual(self.client().cat("sha1://" + sha1), read_bytes(original))
        self.emulator.stop()
        c = ReplayClient("127.0.0.1", self.emulator.port, offline_dir=self.mnt)
        self.assertEqual(c.cat("sha1://" + sha1), read_bytes(original))
        self.assertEqual(c.requests, [], "offline: nothing asked of the daemon")

    def test_reads_keep_working_across_auth_rotations(self):
        files = [put_random_file(self.storage, 200_000, 10 + i, self.originals) for i in range(8)]
        self.emulator.restart("--auth-period", "2")
        self.mount()
        c = self.client()
        codes = []
        for sha1, original in files:  # uncached: each read makes the mount fetch, each under a new code
            if codes:
                self.wait_for(lambda: self.emulator.auth_code() != codes[-1], "the daemon to rotate its code")
            codes.append(self.emulator.auth_code())
            self.assertEqual(c.cat("sha1://" + sha1), read_bytes(original))
            self.assertEqual(read_bytes(os.path.join(self.mnt, "client-auth")).decode(),
                             read_bytes(self.emulator.auth_file).decode(), "client-auth is the current code")
        self.assertEqual(len(set(codes)), len(files), codes)
        # Each read made the mount fetch, and every request was accepted (how many requests a
        # file takes depends on the round trip the mount measured).
        fetched = {l.split(" sha1=")[1].split()[0] for l in self.downloads()}
        self.assertEqual(fetched, {sha1 for sha1, _ in files})
        self.assertEqual([l for l in self.downloads() if " status=200 " not in l], [])

    def test_client_auth_is_the_current_code_and_private(self):
        m = self.mount("log_level=trace")
        path = os.path.join(self.mnt, "client-auth")
        code = read_bytes(self.emulator.auth_file)
        self.assertEqual(read_bytes(path), code)
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o400)
        self.assertEqual(st.st_uid, os.getuid())
        self.assertIn("client-auth", os.listdir(self.mnt))
        # A rotated code shows at the next open (no stale page cache).
        self.emulator.restart("--auth-period", "1")
        time.sleep(2.5)
        self.assertEqual(read_bytes(path), read_bytes(self.emulator.auth_file))
        self.assertNotIn(code.decode(), m.output())
        self.assertNotIn(read_bytes(self.emulator.auth_file).decode(), m.output(), "the code is never logged")

    def test_client_auth_hidden_or_absent(self):
        self.mount("hide_auth")
        self.assertFalse(os.path.exists(os.path.join(self.mnt, "client-auth")))
        self.assertNotIn("client-auth", os.listdir(self.mnt))
        self.unmount(self.mounts[0])
        m = Mount(self.emulator.address, self.mnt, self.cache, [])  # no auth_file: no code known
        self.mounts.append(m)
        self.assertFalse(os.path.exists(os.path.join(self.mnt, "client-auth")), m.output())


class ClientAuthForOtherUsers(MountTestCase):
    """client-auth with a second, unprivileged user. A workstation's /dev/fuse is 0666 (udev);
    these tests set that mode and restore it afterwards."""

    @classmethod
    def setUpClass(cls):
        cls.created = []
        if subprocess.run(["getent", "group", GROUP], capture_output=True).returncode != 0:
            subprocess.run(["groupadd", GROUP], check=True)
            cls.created.append(("groupdel", GROUP))
        if subprocess.run(["id", USER], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "-M", "-s", "/bin/sh", USER], check=True)
            cls.created.insert(0, ("userdel", USER))
        cls.fuse_mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
        os.chmod("/dev/fuse", 0o666)

    @classmethod
    def tearDownClass(cls):
        os.chmod("/dev/fuse", cls.fuse_mode)
        for command, name in cls.created:
            subprocess.run([command, name], capture_output=True)

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)  # the other user must reach the mount point
        self.sha1, self.original = put_random_file(self.storage, 100_000, 5, self.originals)

    def as_user(self, *cmd):
        return subprocess.run(["runuser", "-u", USER, "--"] + list(cmd), capture_output=True, timeout=60)

    def test_other_users_read_content_but_not_the_code(self):
        self.mount("allow_other")
        r = self.as_user("cat", os.path.join(self.mnt, "client-auth"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"Permission denied", r.stderr)
        r = self.as_user("sha1sum", self.content(self.sha1))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split()[0].decode(), self.sha1)

    def test_auth_group_members_read_the_code(self):
        subprocess.run(["usermod", "-a", "-G", GROUP, USER], check=True)
        try:
            self.mount("allow_other", "auth_group=" + GROUP)
            path = os.path.join(self.mnt, "client-auth")
            st = os.stat(path)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o440)
            self.assertEqual(st.st_gid, grp.getgrnam(GROUP).gr_gid)
            r = self.as_user("cat", path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, read_bytes(self.emulator.auth_file))
        finally:
            subprocess.run(["gpasswd", "-d", USER, GROUP], capture_output=True)

    def test_an_unknown_auth_group_is_a_one_line_error(self):
        os.makedirs(self.mnt, exist_ok=True)
        r = subprocess.run([KACHERYFS, "-f", self.emulator.address, self.mnt, "-o",
                            "cache_dir=%s,auth_group=no-such-group-here" % self.cache],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip().count("\n"), 0, r.stderr)
        self.assertIn("no such group", r.stderr)


if __name__ == "__main__":
    unittest.main()
