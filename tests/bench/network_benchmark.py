#!/usr/bin/env python3
"""kacheryfs across a network: first access over an emulated link, beside sshfs and plain HTTP.

  python3 tests/bench/network_benchmark.py [--runs 3] [--quick] [--profiles loopback,lan,vpn,wan]
      [--rows first4k_mid,first4k_big,cold_mid,cold_big,small,hdf5] [--daemon emulator|real]

A workstation reaches the lab's node across a LAN or a VPN, not loopback. This kernel has no
netem, so each measurement gets its own link: tests/bench/link_proxy.cc, a one-way delay plus
one bandwidth cap shared by all connections, in each direction, started fresh for every
client and row (so one client's leftover readahead never delays another's). Profiles:

  loopback  no link (127.0.0.1 directly)
  lan       0.5 ms round trip, 1 Gbit/s
  vpn       20 ms round trip, 200 Mbit/s
  wan       60 ms round trip, 50 Mbit/s

Each row runs, in the same run and over the same kind of link:
  kacheryfs   a fresh mount and cache against the emulator (--node-like: paced like the one
              Node thread of the real daemon, 65,536-byte chunks);
  sshfs       of the emulator's storage dir, through an sshd this script starts on loopback
              with a throwaway key: the closest runnable stand-in for the NFS export that
              kacheryfs replaces;
  HTTP        a plain client of the daemon: a new connection for a first byte, keep-alive for
              a series.
Rows: first 4 KiB of an uncached 45 MB file and of a 1 GiB file (with kacheryfs's requests and
round trips before it, from the emulator's request log), cold `cat` of the 45 MB file (and of
1 GiB on lan), 300 small files (1-16 KB) one after another cold, warm and after a remount,
`kacheryfs-cache pin -j 16` of those 300, and h5py reading one 1 MiB slice from the middle of
an uncached 1 GiB HDF5 file. Ratios are kacheryfs / baseline in time (lower is better), medians.

--daemon real serves the same files from a real kachery-daemon 1.2.1 (KACHERY_DAEMON_DIR, built
as tests/bench/real_daemon.py says; not in CI) in place of the emulator. It keeps no request log,
so the requests and round trips columns are left out.

Each client's timing starts --settle seconds (default 1) after its mount, as a user's first
access comes a moment after the mount: sshfs has its session by then, and kacheryfs its
standing connection (keep_warm). --settle 0 times the first access right after the mount.

--quick shrinks the files and runs one profile pass for a smoke test (CTest: bench.network_smoke).
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kacheryfs_testlib import (CACHE_TOOL, KACHERYFS, Emulator, Mount, put_bytes,  # noqa: E402
                              put_random_file, require_fuse, round_trips, sha1_path)

PROFILES = {  # one-way delay (us), rate (Mbit/s)
    "loopback": None,
    "lan": (250, 1000),
    "vpn": (10000, 200),
    "wan": (30000, 50),
}
ROWS = ("first4k_mid", "first4k_big", "cold_mid", "cold_big", "small", "hdf5")
LINK_PROXY = os.environ.get("KACHERYFS_LINK_PROXY_BIN",
                            os.path.join(os.path.dirname(KACHERYFS), "tests", "link-proxy"))


def timed(fn, mount=None):
    """Seconds fn takes; when it fails on a kacheryfs mount, the mount's log says why."""
    started = time.perf_counter()
    try:
        fn()
    except OSError:
        if mount:
            sys.stderr.write("kacheryfs's log:\n" + mount.output()[-4000:])
        raise
    return time.perf_counter() - started


def read_all(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


def first_4k(path):
    with open(path, "rb", buffering=0) as f:
        assert len(f.read(4096)) == 4096


class Link:
    """A fresh emulated link to 127.0.0.1:target (or the target itself on loopback)."""

    def __init__(self, profile, target):
        self.proc = None
        self.port = target
        if PROFILES[profile] is None:
            return
        delay_us, mbit = PROFILES[profile]
        self.proc = subprocess.Popen([LINK_PROXY, "--target", str(target), "--delay-us", str(delay_us),
                                      "--rate-mbit", str(mbit)], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Sshd:
    """OpenSSH's sshd on a free loopback port, with a throwaway host key and client key,
    serving sftp to this user only. Stopped by its PID."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "sshd")
        os.makedirs(self.dir)
        self.host_key = os.path.join(self.dir, "host_key")
        self.client_key = os.path.join(self.dir, "client_key")
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        authorized = os.path.join(self.dir, "authorized_keys")
        shutil.copyfile(self.client_key + ".pub", authorized)
        os.chmod(authorized, 0o600)
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation dir
        config = os.path.join(self.dir, "sshd_config")
        with open(config, "w") as f:
            f.write("ListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPubkeyAuthentication yes\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                    "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nPidFile none\n"
                    "LogLevel ERROR\n" % (self.host_key, authorized))
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config, "-p", str(self.port)])
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start")

    def mount(self, port, remote_dir, mountpoint):
        os.makedirs(mountpoint, exist_ok=True)
        user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        subprocess.run(["sshfs", "-p", str(port), "%s@127.0.0.1:%s" % (user, remote_dir), mountpoint,
                        "-o", "IdentityFile=%s,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,"
                              "BatchMode=yes,LogLevel=ERROR" % self.client_key], check=True)
        return mountpoint

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def unmount(path):
    if subprocess.run(["fusermount3", "-u", path], capture_output=True).returncode != 0:
        subprocess.run(["fusermount3", "-uz", path], capture_output=True)


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="kfs-netbench-")
        self.storage = os.path.join(self.tmp, "storage")
        os.makedirs(self.storage)
        self.count = 0

    def downloads(self, sha1=None):
        """The node's request log of downloads, or None for a real daemon (it keeps none)."""
        return None if self.a.daemon == "real" else self.emulator.downloads(sha1)

    def fresh_dir(self, name):
        self.count += 1
        path = os.path.join(self.tmp, "%s%d" % (name, self.count))
        os.makedirs(path)
        return path

    # ---- the three clients
    def kacheryfs(self, link, cache=None):
        cache = cache or self.fresh_dir("cache")
        m = Mount("127.0.0.1:%d" % link.port, self.fresh_dir("mnt"), cache,
                  ["auth_file=" + self.emulator.auth_file] + ([self.a.o] if self.a.o else []))
        time.sleep(self.a.settle)  # a user's think time after the mount, not a synchronization
        return m, cache

    def sshfs(self, link):
        mnt = self.sshd.mount(link.port, self.storage, self.fresh_dir("sshfs"))
        time.sleep(self.a.settle)
        return mnt

    def http_range(self, conn, sha1, start, end):
        conn.request("POST", "/downloadFileData",
                     body=json.dumps({"fileKey": {"sha1": sha1}, "startByte": start, "endByte": end}),
                     headers={"KACHERY-CLIENT-AUTH-CODE": self.emulator.auth_code(),
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200, r.status
        return data

    def http_whole(self, port, sha1, size):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        got = len(self.http_range(conn, sha1, 0, size))
        conn.close()
        assert got == size

    def on_both_mounts(self, profile, sha1, read):
        """Times read(path of sha1) on a fresh kacheryfs mount and cache, then on a fresh
        sshfs mount, each over a fresh link; both are unmounted whatever happens."""
        out = {}
        with Link(profile, self.emulator.port) as link:
            m, cache = self.kacheryfs(link)
            try:
                out["kacheryfs"] = timed(lambda: read(os.path.join(m.mountpoint, "sha1", sha1)), m)
            finally:
                m.unmount()
                shutil.rmtree(cache, ignore_errors=True)
        with Link(profile, self.sshd.port) as link:
            mnt = self.sshfs(link)
            try:
                out["sshfs"] = timed(lambda: read(sha1_path(mnt, sha1)))
            finally:
                unmount(mnt)
        return out

    # ---- rows: each returns {client: seconds} for one run on fresh links
    def first_bytes(self, profile, sha1):
        before = self.downloads(sha1)
        out = self.on_both_mounts(profile, sha1, first_4k)
        if before is not None:
            lines = self.downloads(sha1)[len(before):]  # kacheryfs's (sshfs reads the files)
            out["requests"] = len(lines)
            out["rounds"] = len(round_trips(lines))
        with Link(profile, self.emulator.port) as link:
            def new_connection_range():
                conn = http.client.HTTPConnection("127.0.0.1", link.port)
                assert len(self.http_range(conn, sha1, 0, 4096)) == 4096
                conn.close()
            out["http"] = timed(new_connection_range)
        return out

    def cold_cat(self, profile, sha1, size):
        out = self.on_both_mounts(profile, sha1, read_all)
        with Link(profile, self.emulator.port) as link:
            out["http"] = timed(lambda: self.http_whole(link.port, sha1, size))
        return out

    def small_files(self, profile, smalls):
        out = {}
        with Link(profile, self.emulator.port) as link:
            m, cache = self.kacheryfs(link)
            try:
                paths = [os.path.join(m.mountpoint, "sha1", s) for s in smalls]
                out["kacheryfs"] = timed(lambda: [read_all(p) for p in paths], m)
                out["kacheryfs_warm"] = timed(lambda: [read_all(p) for p in paths], m)
                m.unmount()
                before = self.downloads()
                m, cache = self.kacheryfs(link, cache)
                paths = [os.path.join(m.mountpoint, "sha1", s) for s in smalls]
                out["kacheryfs_remount"] = timed(lambda: [read_all(p) for p in paths], m)
                if before is not None:
                    out["remount_requests"] = len(self.downloads()) - len(before)
            finally:
                m.unmount()
                shutil.rmtree(cache, ignore_errors=True)
        with Link(profile, self.emulator.port) as link:
            cache = self.fresh_dir("cache")
            tool = [CACHE_TOOL, "-o", "cache_dir=%s,auth_file=%s" % (cache, self.emulator.auth_file),
                    "--daemon", "127.0.0.1:%d" % link.port]
            try:
                one_by_one = timed(lambda: subprocess.run(tool + ["pin", "-j", "1"] + smalls, check=True,
                                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                shutil.rmtree(cache, ignore_errors=True)
                cache = self.fresh_dir("cache")
                tool[2] = "cache_dir=%s,auth_file=%s" % (cache, self.emulator.auth_file)
                out["pin16"] = timed(lambda: subprocess.run(tool + ["pin", "-j", "16"] + smalls, check=True,
                                                            stdout=subprocess.DEVNULL))
                out["pin1"] = one_by_one
            except subprocess.CalledProcessError:
                pass  # a kacheryfs-cache without -j (an older build, for a before/after table)
            shutil.rmtree(cache, ignore_errors=True)
        with Link(profile, self.sshd.port) as link:
            mnt = self.sshfs(link)
            paths = [sha1_path(mnt, s) for s in smalls]
            out["sshfs"] = timed(lambda: [read_all(p) for p in paths])
            out["sshfs_warm"] = timed(lambda: [read_all(p) for p in paths])
            unmount(mnt)
            mnt = self.sshfs(link)
            paths = [sha1_path(mnt, s) for s in smalls]
            out["sshfs_remount"] = timed(lambda: [read_all(p) for p in paths])
            unmount(mnt)
        with Link(profile, self.emulator.port) as link:
            def keep_alive_series():
                conn = http.client.HTTPConnection("127.0.0.1", link.port)
                for s in smalls:
                    self.http_range(conn, s, 0, 1 << 20)
                conn.close()
            out["http"] = timed(keep_alive_series)
        return out

    def hdf5_slice(self, profile, sha1):
        """h5py opens the uncached HDF5 file and reads one 1 MiB slice from its middle."""
        script = ("import h5py,sys\nf=h5py.File(sys.argv[1],'r')\nd=f['data']\nn=d.shape[0]\n"
                  "x=d[n//2:n//2+(1<<17)]\nassert x.nbytes==1<<20\n")
        python = "/usr/bin/python3"  # Debian's, where python3-h5py lives

        def run(path):
            subprocess.run([python, "-c", script, path], check=True)
        return self.on_both_mounts(profile, sha1, run)

    def make_hdf5(self, size):
        original = os.path.join(self.tmp, "data.h5")
        script = ("import h5py,numpy,sys\nn=int(sys.argv[2])//8\nwith h5py.File(sys.argv[1],'w') as f:\n"
                  " d=f.create_dataset('data',(n,),dtype='f8')\n step=1<<20\n"
                  " for i in range(0,n,step): d[i:i+step]=numpy.arange(i,min(n,i+step),dtype='f8')\n")
        subprocess.run(["/usr/bin/python3", "-c", script, original, str(size)], check=True)
        h = hashlib.sha1()
        with open(original, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        sha1 = h.hexdigest()
        target = sha1_path(self.storage, sha1)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(original, target)
        return sha1

    def run(self):
        a = self.a
        mid_size, big_size = a.mid_mb * 1_000_000, a.big_mb << 20
        rnd = random.Random(1)
        originals = os.path.join(self.tmp, "orig")
        mid, _ = put_random_file(self.storage, mid_size, 1, originals)
        big, _ = put_random_file(self.storage, big_size, 2, originals)
        shutil.rmtree(originals)
        smalls_per_run = [[put_bytes(self.storage, os.urandom(rnd.randrange(1000, 16000))) for _ in range(a.small)]
                          for _ in range(a.runs)]
        h5 = self.make_hdf5(big_size) if "hdf5" in a.rows and os.path.exists("/usr/bin/python3") else None
        if a.daemon == "real":
            from real_daemon import RealDaemon
            self.emulator = RealDaemon(self.storage, os.path.join(self.tmp, "daemon.log"))
        else:
            self.emulator = Emulator(self.storage, "--node-like", workdir=self.tmp)
        self.sshd = Sshd(self.tmp)
        results = {}
        try:
            for profile in a.profiles:
                rows = {}

                def add(row, measured):
                    for k, v in measured.items():
                        rows.setdefault(row, {}).setdefault(k, []).append(v)
                for run in range(a.runs):
                    if "first4k_mid" in a.rows:
                        add("first4k_mid", self.first_bytes(profile, mid))
                    if "first4k_big" in a.rows:
                        add("first4k_big", self.first_bytes(profile, big))
                    if "cold_mid" in a.rows:
                        add("cold_mid", self.cold_cat(profile, mid, mid_size))
                    if profile == "lan" and "cold_big" in a.rows:
                        add("cold_big", self.cold_cat(profile, big, big_size))
                    if "small" in a.rows:
                        add("small", self.small_files(profile, smalls_per_run[run]))
                    if h5 and "hdf5" in a.rows:
                        add("hdf5", self.hdf5_slice(profile, h5))
                results[profile] = {row: {k: statistics.median(v) for k, v in m.items()} for row, m in rows.items()}
                self.report(profile, results[profile])
        finally:
            self.sshd.stop()
            self.emulator.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self, profile, r):
        a = self.a
        print("\nprofile %s%s: %d runs, medians; files %d MB and %d MiB; %d small files%s" %
              (profile, "" if PROFILES[profile] is None else " (one-way %d us, %d Mbit/s)" % PROFILES[profile],
               a.runs, a.mid_mb, a.big_mb, a.small, " (QUICK: smoke test only)" if a.quick else ""))
        print("%-40s %11s %11s %11s %9s %9s" % ("", "kacheryfs", "sshfs", "HTTP", "vs sshfs", "vs HTTP"))

        def line(name, k, s, h, note=""):
            cells = ["%9.1f ms" % (k * 1e3), "%9.1f ms" % (s * 1e3) if s else "%11s" % "-",
                     "%9.1f ms" % (h * 1e3) if h else "%11s" % "-",
                     "%9.2f" % (k / s) if s else "%9s" % "-", "%9.2f" % (k / h) if h else "%9s" % "-"]
            print("%-40s %s %s %s %s %s  %s" % (name, *cells, note))
        for row, label in (("first4k_mid", "first 4 KiB, uncached %d MB" % a.mid_mb),
                           ("first4k_big", "first 4 KiB, uncached %d MiB" % a.big_mb)):
            if row not in r:
                continue
            m = r[row]
            counted = "%d requests in %d round trips; " % (m["requests"], m["rounds"]) if "rounds" in m else ""
            line(label, m["kacheryfs"], m["sshfs"], m["http"], counted + "HTTP: one range on a new connection")
        for row, label, size in (("cold_mid", "cold cat, %d MB" % a.mid_mb, a.mid_mb * 1e6),
                                 ("cold_big", "cold cat, %d MiB" % a.big_mb, a.big_mb * (1 << 20))):
            if row in r:
                m = r[row]
                line(label, m["kacheryfs"], m["sshfs"], m["http"],
                     "%.0f MB/s; speed vs one HTTP stream %.2f" % (size / 1e6 / m["kacheryfs"], m["http"] / m["kacheryfs"]))
        m = r.get("small", {})
        if m:
            line("%d small files, cold, in turn" % a.small, m["kacheryfs"], m["sshfs"], m["http"],
                 "HTTP: one keep-alive connection")
            line("%d small files, warm" % a.small, m["kacheryfs_warm"], m["sshfs_warm"], None)
            line("%d small files, after a remount" % a.small, m["kacheryfs_remount"], m["sshfs_remount"], None,
                 "%d requests" % m["remount_requests"] if "remount_requests" in m else "")
        if "pin16" in m:
            line("pin -j 16 of the %d" % a.small, m["pin16"], None, None,
                 "%.2f of pin -j 1 (%.1f ms)" % (m["pin16"] / m["pin1"], m["pin1"] * 1e3))
        if "hdf5" in r:
            m = r["hdf5"]
            line("h5py: 1 MiB slice of an uncached %d MiB file" % a.big_mb, m["kacheryfs"], m["sshfs"], None)
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profiles", default="loopback,lan,vpn,wan")
    ap.add_argument("-o", default="", help="extra kacheryfs -o options")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--daemon", choices=("emulator", "real"), default="emulator")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds between a mount and its first timed access")
    a = ap.parse_args()
    a.profiles = a.profiles.split(",")
    a.rows = a.rows.split(",")
    for row in a.rows:
        if row not in ROWS:
            ap.error("unknown row " + row)
    for p in a.profiles:
        if p not in PROFILES:
            ap.error("unknown profile " + p)
    a.mid_mb, a.big_mb, a.small = 45, 1024, 300
    if a.quick:
        a.mid_mb, a.big_mb, a.small, a.runs = 6, 48, 30, 1
        a.settle = min(a.settle, 0.1)
    require_fuse()
    Bench(a).run()


if __name__ == "__main__":
    main()
