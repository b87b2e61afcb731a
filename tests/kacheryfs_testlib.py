"""Shared helpers for kacheryfs's process-level tests: start the daemon emulator on a free
loopback port, place content in its storage dir, mount kacheryfs on a temp dir, and always
clean up what was started (by PID, never by name).

Paths come from the environment that CTest sets: KACHERYFS_BIN, KACHERY_EMULATOR_BIN.
"""
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

KACHERYFS = os.environ.get("KACHERYFS_BIN", "build/kacheryfs")
EMULATOR = os.environ.get("KACHERY_EMULATOR_BIN", "build/tests/emulator/kachery-daemon-emulator")
CACHE_TOOL = os.environ.get("KACHERYFS_CACHE_BIN", os.path.join(os.path.dirname(KACHERYFS), "kacheryfs-cache"))
EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


def sha1_path(root, sha1):
    """Where a kachery storage dir (or a mount) keeps sha1."""
    return os.path.join(root, "sha1", sha1[0:2], sha1[2:4], sha1[4:6], sha1)


def cached_path(cache, sha1):
    """Where a kacheryfs cache dir keeps a complete sha1: objects/ab/<sha1>."""
    return os.path.join(cache, "objects", sha1[0:2], sha1)


def put_bytes(storage, data):
    """Writes data into a kachery storage dir the way the daemon lays it out; returns its sha1."""
    sha1 = hashlib.sha1(data).hexdigest()
    path = sha1_path(storage, sha1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)
    return sha1


def put_random_file(storage, size, seed, original_dir):
    """Writes `size` pseudo-random bytes both to original_dir (the reference copy that
    tests compare against with cmp/sha1sum) and into storage. Streams; returns (sha1, original path)."""
    os.makedirs(original_dir, exist_ok=True)
    original = os.path.join(original_dir, "file-%d-%d" % (size, seed))
    h = hashlib.sha1()
    block = hashlib.sha256(str(seed).encode()).digest() * (1 << 15)  # 1 MiB pattern per seed
    with open(original, "wb") as f:
        left, counter = size, 0
        while left > 0:
            piece = (counter.to_bytes(8, "little") + block)[: min(len(block), left)]
            f.write(piece)
            h.update(piece)
            left -= len(piece)
            counter += 1
    sha1 = h.hexdigest()
    target = sha1_path(storage, sha1)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.exists(target):
        try:
            os.link(original, target)
        except OSError:
            shutil.copyfile(original, target)
    return sha1, original


def parse_jsonsocket(data):
    """The messages of a /loadFile body: <decimal length>#<json>, one after another."""
    import json
    out, i = [], 0
    while i < len(data):
        j = data.index(b"#", i)
        n = int(data[i:j])
        out.append(json.loads(data[j + 1:j + 1 + n]))
        i = j + 1 + n
    return out


def tool_sha1(path):
    """sha1 of a file by the independent sha1sum tool."""
    out = subprocess.run(["sha1sum", path], check=True, capture_output=True, text=True).stdout
    return out.split()[0]


class HostileServer:
    """tests/hostile_daemon.py answering in one MODE on a free loopback port; each request
    it reads is a line of the log file. Stopped by its PID."""
    PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile_daemon.py")

    def __init__(self, storage, mode, log):
        port_file = log + ".port"
        self.log = log
        self.proc = subprocess.Popen([sys.executable, self.PROGRAM, "--storage-dir", storage, "--mode", mode,
                                      "--port-file", port_file, "--log", log])
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError("the hostile daemon did not start")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())

    @property
    def address(self):
        return "http://127.0.0.1:%d" % self.port

    def requests(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return f.read().splitlines()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Emulator:
    """The kachery daemon emulator as a child process on 127.0.0.1."""

    def __init__(self, storage, *flags, port=0, workdir=None):
        self.storage = storage
        self.flags = list(flags)
        self.workdir = workdir or tempfile.mkdtemp(prefix="kfs-emu-")
        self.request_log = os.path.join(self.workdir, "requests.log")
        self.port = port
        self.proc = None
        self.start()

    def start(self, *flags):
        if flags:
            self.flags = list(flags)
        port_file = os.path.join(self.workdir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        cmd = [EMULATOR, "--storage-dir", self.storage, "--port", str(self.port), "--port-file", port_file,
               "--request-log", self.request_log] + self.flags
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    port = int(text)
                    if self.port == 0 and port % 1000 == 443:
                        # HOST:PORT with a port ending in 443 means HTTPS (the kachery
                        # convention): the tests want plain HTTP, so pick another port.
                        self.stop()
                        return self.start()
                    self.port = port
                    return
            if self.proc.poll() is not None:
                raise RuntimeError("emulator exited: %s" % self.proc.stderr.read().decode())
            time.sleep(0.02)
        raise RuntimeError("emulator did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self, *flags):
        self.stop()
        self.start(*flags)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def auth_file(self):
        return os.path.join(self.storage, "client-auth")

    def auth_code(self):
        with open(self.auth_file) as f:
            return f.read()

    def log_lines(self):
        if not os.path.exists(self.request_log):
            return []
        with open(self.request_log) as f:
            return [line.rstrip("\n") for line in f]

    def downloads_arrived(self):
        """/downloadFileData requests the emulator has begun to serve (GET /stats counts them
        on arrival; the request log has a line only once a request is answered). Not the
        mount's background requests (keep_warm's POST /probe)."""
        return self._stats()["downloadsArrived"]

    def all_answered(self):
        """True when the emulator has answered every request it has received (but the /stats
        request that asks): a client's pipelined requests it has not read are logged too."""
        stats = self._stats()
        return stats["answered"] == stats["requests"] - 1

    def _stats(self):
        """GET /stats (itself a request the emulator counts)."""
        import http.client
        import json
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/stats", headers={"KACHERY-CLIENT-AUTH-CODE": self.auth_code()})
        stats = json.loads(conn.getresponse().read())["stats"]
        conn.close()
        return stats

    def downloads(self, sha1=None):
        return [l for l in self.log_lines() if l.startswith("POST /downloadFileData") and (sha1 is None or ("sha1=%s " % sha1) in l)]


def free_port():
    """A free loopback port whose number does not end in 443 (which would mean HTTPS)."""
    import socket
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port % 1000 != 443:
            return port


class Mount:
    """kacheryfs running in the foreground on a temp dir; unmount() always cleans up."""

    def __init__(self, source, mountpoint, cache_dir, options=(), env=None, wait=True):
        self.mountpoint = mountpoint
        os.makedirs(mountpoint, exist_ok=True)
        opts = ["cache_dir=" + cache_dir] + list(options)
        self.log_path = os.path.join(os.path.dirname(mountpoint.rstrip("/")), "kacheryfs-%d.log" % time.monotonic_ns())
        self.log = open(self.log_path, "wb")
        cmd = [KACHERYFS, "-f", source, mountpoint, "-o", ",".join(opts)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_mounted()

    def wait_mounted(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if is_mounted(self.mountpoint):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("kacheryfs exited with %d: %s" % (self.proc.returncode, self.output()))
            time.sleep(0.02)
        raise RuntimeError("kacheryfs did not mount: " + self.output())

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def unmount(self):
        if is_mounted(self.mountpoint):
            if subprocess.run(["fusermount3", "-u", self.mountpoint], capture_output=True).returncode != 0:
                subprocess.run(["fusermount3", "-uz", self.mountpoint], capture_output=True)
        if self.proc.poll() is None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def is_mounted(path):
    real = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[1] == real and fields[2].startswith("fuse"):
                return True
    return False


def require_fuse():
    """FUSE tests must run for real: fail (never skip) when FUSE is not usable."""
    if not os.path.exists("/dev/fuse"):
        raise AssertionError("/dev/fuse is missing: FUSE tests cannot run (they must not be skipped)")
    if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise AssertionError("no access to /dev/fuse")


class MountTestCase(unittest.TestCase):
    """A temp dir with storage/, cache/ and mnt/, an emulator, and helpers to mount."""

    emulator_flags = ()
    hang_guard = 60  # seconds a wait_for may take before the test fails: a guard, not a timing

    def wait_for(self, predicate, what, timeout=None):
        deadline = time.monotonic() + (timeout or self.hang_guard)
        while not predicate():
            self.assertLess(time.monotonic(), deadline, "timed out waiting for " + what)
            time.sleep(0.05)

    def setUp(self):
        require_fuse()
        self.tmp = tempfile.mkdtemp(prefix="kfs-test-")
        self.storage = os.path.join(self.tmp, "storage")
        self.cache = os.path.join(self.tmp, "cache")
        self.mnt = os.path.join(self.tmp, "mnt")
        self.originals = os.path.join(self.tmp, "originals")
        os.makedirs(self.storage)
        self.mounts = []
        self.emulator = Emulator(self.storage, *self.emulator_flags, workdir=self.tmp)
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for m in reversed(self.mounts):
            m.unmount()
        self.emulator.stop()
        subprocess.run(["rm", "-rf", self.tmp])

    def mount(self, *options, source=None, mountpoint=None, cache=None):
        m = Mount(source or self.emulator.address, mountpoint or self.mnt, cache or self.cache,
                  ["auth_file=" + self.emulator.auth_file] + list(options))
        self.mounts.append(m)
        return m

    def unmount(self, m):
        code = m.unmount()
        self.mounts.remove(m)
        return code

    def content(self, sha1, layout=False):
        if layout:
            return os.path.join(self.mnt, "sha1", sha1[0:2], sha1[2:4], sha1[4:6], sha1)
        return os.path.join(self.mnt, "sha1", sha1)

    def assertEioReading(self, path, within, why=None):
        """Reading the whole file fails with EIO, in less than `within` seconds."""
        started = time.monotonic()
        with self.assertRaises(OSError) as ctx:
            with open(path, "rb") as f:
                f.read()
        self.assertEqual(ctx.exception.errno, errno.EIO)
        self.assertLess(time.monotonic() - started, within, why)

    def assertSameBytes(self, mounted, original):
        r = subprocess.run(["cmp", mounted, original], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "cmp %s %s: %s%s" % (mounted, original, r.stdout, r.stderr))

    def cache_entries(self):
        """Complete entries and temp files in the cache dir."""
        complete, temps = [], []
        for root, _, files in os.walk(self.cache):
            for name in files:
                (temps if root.endswith("/tmp") else complete).append(os.path.join(root, name))
        return complete, temps


PAGE = 64 << 10  # the block cache's page


def log_fields(line):
    """The key=value fields of one line of the emulator's request log."""
    return dict(f.split("=", 1) for f in line.split()[2:] if "=" in f)


def fetched_ranges(lines):
    """[start, start + bytes sent) of each download in the emulator's log lines."""
    ranges = []
    for line in lines:
        fields = log_fields(line)
        ranges.append((int(fields["start"]), int(fields["start"]) + int(fields["bytes"])))
    return ranges


def discovery_bytes(lines):
    """The bytes that size discovery brought and kept: in each round trip, the first answer
    with bytes to a range wider than a probe (the head; in a last round of windows sent
    highest first, the one that straddles EOF). The mount stores them instead of fetching
    them again. A window below it was dropped with the connection, whatever the node sent."""
    kept = []
    round_has_kept = False
    for line, (start, end) in zip(lines, fetched_ranges(lines)):
        if not line.endswith(" pipelined"):
            round_has_kept = False
        if not round_has_kept and int(log_fields(line)["end"]) - start > 1 and end > start:
            kept.append((start, end))
            round_has_kept = True
    return kept


def mount_connections(pid, port):
    """The sockets (as /proc/PID/fd names them) of a process's TCP connections to a loopback
    port, from /proc/net/tcp{,6}."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add("socket:[%s]" % fields[9])
    found = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except FileNotFoundError:  # closed while listed
            continue
        if target in inodes:
            found.add(target)
    return found


def round_trips(lines):
    """The requests of the emulator's log lines that began a round trip: a request sent
    pipelined behind another (size discovery's probes) came in the same one."""
    return [line for line in lines if not line.endswith(" pipelined")]


def overlaps(ranges):
    """Pairs of ranges that share bytes (a byte fetched twice)."""
    ranges = sorted(ranges)
    return [(a, b) for a, b in zip(ranges, ranges[1:]) if b[0] < a[1]]


def put_sparse_file(storage, size, islands, seed, original_dir):
    """A sparse file of `size` bytes holding random 64 KiB islands at the given offsets
    (zeros elsewhere), as the original and in storage. Returns (sha1, original path)."""
    import random
    os.makedirs(original_dir, exist_ok=True)
    original = os.path.join(original_dir, "sparse-%d-%d" % (size, seed))
    rnd = random.Random(seed)
    with open(original, "wb") as f:
        f.truncate(size)
        for offset in islands:
            f.seek(offset)
            f.write(rnd.randbytes(min(65536, size - offset)))
    sha1 = tool_sha1(original)
    target = sha1_path(storage, sha1)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.link(original, target)
    return sha1, original


def put_manifest(storage, original, chunk=20_000_000):
    """Writes the kachery manifest of `original` into storage, as the daemon does for files
    over 20,000,000 bytes (compact JSON, keys size, sha1, chunks); returns its sha1."""
    import json
    chunks = []
    whole = hashlib.sha1()
    with open(original, "rb") as f:
        start = 0
        while True:
            data = f.read(chunk)
            if not data:
                break
            whole.update(data)
            chunks.append({"start": start, "end": start + len(data), "sha1": hashlib.sha1(data).hexdigest()})
            start += len(data)
    text = json.dumps({"size": start, "sha1": whole.hexdigest(), "chunks": chunks}, separators=(",", ":"))
    return put_bytes(storage, text.encode())


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class PeakRss:
    """Samples a process's VmRSS every 20 ms while in a `with` block; .peak_mib after."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_kib = 0
        self._stop = None
        self._thread = None

    def __enter__(self):
        import threading
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
                time.sleep(0.02)
        self._thread = threading.Thread(target=sample)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self):
        return self.peak_kib / 1024
