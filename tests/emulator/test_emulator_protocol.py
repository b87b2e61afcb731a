"""The emulator's own behaviour beyond the conformance script: its fault switches, the
simulated network behind /loadFile, stable read codes, auth rotation, its command line."""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import EMULATOR, Emulator, parse_jsonsocket, put_bytes, put_random_file  # noqa: E402


class EmulatorCase(unittest.TestCase):
    flags = ()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kfs-emu-test-")
        self.storage = os.path.join(self.tmp, "storage")
        os.makedirs(self.storage)
        self.data = bytes(range(256)) * 4000  # 1,024,000 bytes
        self.sha1 = put_bytes(self.storage, self.data)
        self.emulator = Emulator(self.storage, *self.flags_for_test(), workdir=self.tmp)
        self.addCleanup(self.cleanup)

    def flags_for_test(self):
        return self.flags

    def cleanup(self):
        self.emulator.stop()
        subprocess.run(["rm", "-rf", self.tmp])

    def post(self, path, body, code=None):
        c = http.client.HTTPConnection("127.0.0.1", self.emulator.port, timeout=30)
        try:
            headers = {"Content-Type": "application/json",
                       "KACHERY-CLIENT-AUTH-CODE": code if code is not None else self.emulator.auth_code()}
            c.request("POST", path, body=json.dumps(body), headers=headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def download(self, start, end, sha1=None, **kw):
        return self.post("/downloadFileData", {"fileKey": {"sha1": sha1 or self.sha1}, "startByte": start, "endByte": end}, **kw)


class Basics(EmulatorCase):
    def test_prints_its_port_and_binds_loopback_only(self):
        out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        listening = [l.split()[3] for l in out.splitlines() if l.split()[3].endswith(":%d" % self.emulator.port)]
        self.assertEqual(listening, ["127.0.0.1:%d" % self.emulator.port])

    def test_writes_node_id_and_auth_file(self):
        with open(os.path.join(self.storage, "kachery-node-id")) as f:
            node_id = f.read()
        self.assertRegex(node_id, r"^[0-9a-f]{64}$")
        self.emulator.restart()
        with open(os.path.join(self.storage, "kachery-node-id")) as f:
            self.assertEqual(f.read(), node_id, "the node id survives a restart")
        self.assertRegex(self.emulator.auth_code(), r"^[A-Za-z]{12}$")

    def test_request_log_names_sha1_and_range(self):
        self.assertEqual(self.download(10, 20), (200, self.data[10:20]))
        self.assertIn("POST /downloadFileData sha1=%s start=10 end=20 status=200 bytes=10" % self.sha1,
                      self.emulator.log_lines())

    def test_stable_read_codes(self):
        status, _ = self.post("/mutable/set", {"key": "_other_client_auth_codes", "value": ["StableCodeAB"]})
        self.assertEqual(status, 200)
        status, body = self.post("/mutable/get", {"key": "_other_client_auth_codes"})
        self.assertEqual(json.loads(body), {"success": True, "found": True, "value": ["StableCodeAB"]})
        self.assertEqual(self.download(0, 5, code="StableCodeAB"), (200, self.data[:5]))
        self.assertEqual(self.post("/storeFile", {"localFilePath": "/etc/hostname"}, code="StableCodeAB")[0], 403)
        self.emulator.restart()
        self.assertEqual(self.download(0, 5, code="StableCodeAB"), (200, self.data[:5]), "mutables persist")

    def test_bad_command_line(self):
        r = subprocess.run([EMULATOR, "--port", "x", "--storage-dir", self.tmp], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--port", r.stderr)
        r = subprocess.run([EMULATOR], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--storage-dir is required", r.stderr)


class AuthRotation(EmulatorCase):
    flags = ("--auth-period", "0.5")

    def test_previous_code_valid_older_rejected(self):
        first = self.emulator.auth_code()
        seen = [first]
        deadline = time.time() + 10
        while len(seen) < 3 and time.time() < deadline:
            try:
                code = self.emulator.auth_code()
            except FileNotFoundError:
                continue
            if code and code != seen[-1]:
                seen.append(code)
                if len(seen) == 2:
                    self.assertEqual(self.download(0, 1, code=first)[0], 200)
        self.assertEqual(len(seen), 3)
        self.assertEqual(self.download(0, 1, code=first)[0], 403)


class Faults(EmulatorCase):
    def flags_for_test(self):
        name = self._testMethodName
        other = hashlib.sha1(b"other").hexdigest()
        return {
            "test_wrong_bytes": ("--wrong-bytes", self.sha1_of_data()),
            "test_fail_500": ("--fail-500", "2"),
            "test_drop": ("--drop-after-bytes", "5000"),
            "test_stall": ("--stall-after-bytes", "5000", "--stall-ms", "300"),
            "test_first_byte_delay": ("--first-byte-delay-ms", "300"),
            "test_fault_only_one_sha1": ("--fault-sha1", other, "--fail-500", "5"),
        }.get(name, ())

    def sha1_of_data(self):
        return hashlib.sha1(bytes(range(256)) * 4000).hexdigest()

    def test_wrong_bytes(self):
        status, body = self.download(0, 100000)
        self.assertEqual(status, 200)
        self.assertEqual(len(body), 100000)
        self.assertNotEqual(body, self.data[:100000])
        self.assertIn("corrupted", self.emulator.log_lines()[-1])

    def test_fail_500(self):
        self.assertEqual(self.download(0, 10)[0], 500)
        self.assertEqual(self.download(0, 10)[0], 500)
        self.assertEqual(self.download(0, 10), (200, self.data[:10]))

    def test_drop(self):
        with self.assertRaises(http.client.IncompleteRead) as ctx:
            self.download(0, 100000)
        self.assertEqual(len(ctx.exception.partial), 5000)
        self.assertIn("dropped", self.emulator.log_lines()[-1])

    def test_stall(self):
        started = time.monotonic()
        self.assertEqual(self.download(0, 100000), (200, self.data[:100000]))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertIn("stalled", self.emulator.log_lines()[-1])

    def test_first_byte_delay(self):
        started = time.monotonic()
        self.assertEqual(self.download(0, 10), (200, self.data[:10]))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_fault_only_one_sha1(self):
        self.assertEqual(self.download(0, 10), (200, self.data[:10]))


class SimulatedNetwork(EmulatorCase):
    def flags_for_test(self):
        self.network = os.path.join(self.tmp, "network")
        self.remote, self.remote_original = put_random_file(self.network, 300_000, 7, os.path.join(self.tmp, "orig"))
        return ("--network-dir", self.network, "--load-delay-ms", "400")

    def test_load_from_network(self):
        status, _ = self.download(0, 10, sha1=self.remote)
        self.assertEqual(status, 500)
        status, body = self.post("/loadFile", {"fileKey": {"sha1": self.remote}})
        self.assertEqual(parse_jsonsocket(body), [{"type": "error", "error": "Unable to find file. No channelName specified."}])
        status, body = self.post("/loadFile", {"fileKey": {"sha1": self.remote}, "channelName": "testchannel"})
        messages = parse_jsonsocket(body)
        self.assertEqual(status, 200)
        self.assertEqual(messages[-1]["type"], "finished")
        progress = [m for m in messages if m["type"] == "progress"]
        self.assertGreaterEqual(len(progress), 2)
        self.assertTrue(all(m["bytesTotal"] == 300_000 for m in progress))
        with open(self.remote_original, "rb") as f:
            original = f.read()
        self.assertEqual(self.download(0, 400_000, sha1=self.remote), (200, original))


class Speed(EmulatorCase):
    """--rate, --total-rate and --node-like make the emulator as slow as the real daemon.
    Only lower bounds on time are asserted: a busy machine can make a transfer slower, never
    faster than its rate limit."""

    def flags_for_test(self):
        return {"test_rate_limits_each_download": ("--rate", "10"),
                "test_total_rate_is_shared_by_all_connections": ("--total-rate", "10"),
                "test_node_like_keeps_the_framing": ("--node-like",),
                "test_a_pipelined_batch_is_answered_after_all_its_requests_cost":
                    ("--batch-pipelined", "--request-cost-ms", "20")}[self._testMethodName]

    def raw_download_request(self, start, end, close=False):
        """The bytes of one /downloadFileData request, to write on a socket as they are."""
        body = json.dumps({"fileKey": {"sha1": self.sha1}, "startByte": start, "endByte": end}).encode()
        return (b"POST /downloadFileData HTTP/1.1\r\nHost: x\r\n" + (b"Connection: close\r\n" if close else b"") +
                b"KACHERY-CLIENT-AUTH-CODE: " + self.emulator.auth_code().encode() +
                b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    def timed_download(self, results, i):
        t0 = time.monotonic()
        results[i] = (self.download(0, len(self.data)), time.monotonic() - t0)

    def test_rate_limits_each_download(self):
        t0 = time.monotonic()
        self.assertEqual(self.download(0, len(self.data)), (200, self.data))
        self.assertGreaterEqual(time.monotonic() - t0, 0.09, "1,024,000 bytes at 10 MB/s")

    def test_total_rate_is_shared_by_all_connections(self):
        import threading
        results = [None, None]
        threads = [threading.Thread(target=self.timed_download, args=(results, i)) for i in range(2)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for (status_body, _) in results:
            self.assertEqual(status_body, (200, self.data))
        self.assertGreaterEqual(time.monotonic() - t0, 0.19, "2 x 1,024,000 bytes at 10 MB/s in all")

    def test_node_like_keeps_the_framing(self):
        with socket.create_connection(("127.0.0.1", self.emulator.port)) as sock:
            sock.sendall(self.raw_download_request(5, 300000, close=True))
            raw = b""
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                raw += chunk
        rest = raw.partition(b"\r\n\r\n")[2]
        sizes, i = [], 0
        while True:
            j = rest.index(b"\r\n", i)
            n = int(rest[i:j], 16)
            sizes.append(n)
            if n == 0:
                break
            i = j + 2 + n + 2
        self.assertEqual(sizes, [65536] * 4 + [299995 - 4 * 65536, 0])

    def test_a_pipelined_batch_is_answered_after_all_its_requests_cost(self):
        # Node's HTTP server dispatches every request of a pipelined batch before the first
        # answer leaves: the first answer waits for 6 x 20 ms, not 20 ms.
        request = b"".join(self.raw_download_request(offset, offset + 1) for offset in range(6))
        with socket.create_connection(("127.0.0.1", self.emulator.port)) as sock:
            t0 = time.monotonic()
            sock.sendall(request)
            raw = b""
            while b"\r\n0\r\n\r\n" not in raw:
                chunk = sock.recv(1 << 16)
                self.assertTrue(chunk, "the connection closed before the first answer")
                raw += chunk
            first_answer = time.monotonic() - t0
            while raw.count(b"\r\n0\r\n\r\n") < 6:
                chunk = sock.recv(1 << 16)
                self.assertTrue(chunk, "the connection closed before the last answer")
                raw += chunk
        self.assertGreaterEqual(first_answer, 0.115, "6 requests at 20 ms each before any answer")
        bodies = [part.partition(b"\r\n\r\n")[2] for part in raw.split(b"HTTP/1.1 200 OK")[1:]]
        self.assertEqual([b[b.index(b"\r\n") + 2:][:1] for b in bodies], [self.data[i:i + 1] for i in range(6)])


if __name__ == "__main__":
    unittest.main()
