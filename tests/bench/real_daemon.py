"""A real kachery-daemon 1.2.1 as a child process on loopback, for the benchmarks that
measure against it (not part of CI: it needs the daemon built from its repository).

  KACHERY_DAEMON_DIR=/path/to/kachery-daemon/daemon   (built: npm install && npx tsc)

Each daemon gets its own storage dir and a free port; loopback.js keeps its sockets on
127.0.0.1. It is started in its own session and stopped by its PID."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kacheryfs_testlib import free_port  # noqa: E402

DAEMON_DIR = os.environ.get("KACHERY_DAEMON_DIR", "/tmp/real/daemon")
LOOPBACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loopback.js")


class RealDaemon:
    def __init__(self, storage, log_path):
        os.makedirs(storage, exist_ok=True)
        self.storage = storage
        self.port = free_port()
        self.auth_file = os.path.join(storage, "client-auth")
        env = dict(os.environ, KACHERY_STORAGE_DIR=storage, KACHERY_DAEMON_PORT=str(self.port))
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["node", "-r", LOOPBACK, "dist/cli.js", "start", "--label", "test", "--verbose", "0"],
                cwd=DAEMON_DIR, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + 60
        while not os.path.exists(self.auth_file):
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                with open(log_path, errors="replace") as f:
                    raise SystemExit("the daemon did not start: " + f.read()[-2000:])
            time.sleep(0.2)
        time.sleep(1)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def auth_code(self):
        with open(self.auth_file) as f:
            return f.read()

    def kill(self):
        """SIGKILL, as a node that dies."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


@contextlib.contextmanager
def one_real_daemon(prefix):
    """A temp dir with one RealDaemon serving its storage/ (log: daemon.log); yields
    (tmp, daemon). The daemon is stopped and the dir removed on the way out."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    daemon = None
    try:
        daemon = RealDaemon(os.path.join(tmp, "storage"), os.path.join(tmp, "daemon.log"))
        yield tmp, daemon
    finally:
        if daemon:
            daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
