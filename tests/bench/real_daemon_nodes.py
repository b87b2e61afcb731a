"""Two real kachery-daemon 1.2.1 processes on loopback, read through one kacheryfs mount:
cold read from one node against two with -o spread, and the failover stall when node A is
killed (SIGKILL) a third of the way into a read. Not part of CI (it needs the real daemon):

  KACHERY_DAEMON_DIR=/path/to/kachery-daemon/daemon   (built: npm install && npx tsc)
  python3 tests/bench/real_daemon_nodes.py [SIZE_BYTES]

Each daemon runs with its own storage dir and a free loopback port (tests/bench/loopback.js
keeps its sockets on 127.0.0.1); the script stops them by PID."""
import hashlib, os, signal, statistics, subprocess, sys, tempfile, time, shutil
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kacheryfs_testlib import Mount, put_random_file, sha1_path, free_port

DAEMON_DIR = os.environ.get("KACHERY_DAEMON_DIR", "/tmp/real/daemon")
LOOPBACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loopback.js")
MiB = 1 << 20
tmp = tempfile.mkdtemp(prefix="kfs-real-")
size = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 30

def start(name):
    storage = os.path.join(tmp, "storage-" + name)
    os.makedirs(storage, exist_ok=True)
    port = free_port()
    env = dict(os.environ, KACHERY_STORAGE_DIR=storage, KACHERY_DAEMON_PORT=str(port))
    log = open(os.path.join(tmp, name + ".log"), "ab")
    proc = subprocess.Popen(["node", "-r", LOOPBACK, "dist/cli.js", "start", "--label", "test", "--verbose", "0"],
                            cwd=DAEMON_DIR, env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(storage, "client-auth")):
        if time.time() > deadline or proc.poll() is not None:
            raise SystemExit("daemon %s did not start: %s" % (name, open(os.path.join(tmp, name + ".log")).read()[-2000:]))
        time.sleep(0.2)
    time.sleep(1)
    return {"proc": proc, "storage": storage, "port": port, "name": name}

nodes = [start("a"), start("b")]
sha1, original = put_random_file(nodes[0]["storage"], size, 1, os.path.join(tmp, "orig"))
t = sha1_path(nodes[1]["storage"], sha1); os.makedirs(os.path.dirname(t), exist_ok=True); os.link(original, t)
mnt = os.path.join(tmp, "mnt")

def mount(ns, *opts):
    cache = tempfile.mkdtemp(prefix="cache-", dir=tmp)
    src = ",".join("127.0.0.1:%d" % n["port"] for n in ns)
    auth = "auth_file=" + ":".join(os.path.join(n["storage"], "client-auth") for n in ns)
    return Mount(src, mnt, cache, [auth, "whole_max=1M"] + list(opts)), cache

def cold(ns, *opts):
    m, cache = mount(ns, *opts)
    t0 = time.perf_counter()
    subprocess.run(["cat", os.path.join(mnt, "sha1", sha1)], check=True, stdout=subprocess.DEVNULL)
    el = time.perf_counter() - t0
    out = subprocess.run(["getfattr", "--only-values", "-n", "user.kachery.nodes", mnt], capture_output=True, text=True).stdout
    m.unmount(); shutil.rmtree(cache)
    return el, out

try:
    one, two = [], []
    for _ in range(3):
        one.append(cold(nodes[:1])[0])
        el, out = cold(nodes, "spread")
        two.append(el)
    print(out)
    mb = size / 1e6
    print("cold %d MiB, real daemons: one node %.0f MB/s, two nodes with spread %.0f MB/s (%.2fx); runs one %s two %s" % (
        size // MiB, mb / statistics.median(one), mb / statistics.median(two), statistics.median(one) / statistics.median(two),
        [round(x, 2) for x in one], [round(x, 2) for x in two]))
    # failover: kill node a a third of the way in
    m, cache = mount(nodes)
    returns, killed, got, h = [], None, 0, hashlib.sha1()
    with open(os.path.join(mnt, "sha1", sha1), "rb", buffering=0) as f:
        while True:
            c = f.read(MiB)
            returns.append(time.perf_counter())
            if not c:
                break
            h.update(c); got += len(c)
            if killed is None and got >= size // 3:
                os.kill(nodes[0]["proc"].pid, signal.SIGKILL); nodes[0]["proc"].wait(); killed = time.perf_counter()
    before = [b - a for a, b in zip(returns, returns[1:]) if b <= killed]
    after = [t for t in returns if t >= killed]
    gaps = [b - a for a, b in zip([killed] + after, after)]
    print("failover with real daemons: byte-exact=%s, largest gap after the kill %.1f ms, median gap before %.2f ms, nioerr=%s" % (
        h.hexdigest() == sha1 and got == size, max(gaps) * 1e3, statistics.median(before) * 1e3,
        os.getxattr(mnt, "user.kachery.nioerr").decode()))
    m.unmount(); shutil.rmtree(cache)
finally:
    for n in nodes:
        if n["proc"].poll() is None:
            os.kill(n["proc"].pid, signal.SIGTERM)
            try:
                n["proc"].wait(10)
            except subprocess.TimeoutExpired:
                os.kill(n["proc"].pid, signal.SIGKILL); n["proc"].wait()
    shutil.rmtree(tmp, ignore_errors=True)
