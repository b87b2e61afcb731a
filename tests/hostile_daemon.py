#!/usr/bin/env python3
"""A kachery daemon that answers wrongly on purpose, for kacheryfs's hardening tests.

  hostile_daemon.py --storage-dir DIR --mode MODE --port-file FILE [--log FILE]

It serves DIR (DIR/sha1/ab/cd/ef/<sha1>) on 127.0.0.1 like the daemon (GET/POST /probe,
POST /downloadFileData with chunked bodies), except for what MODE breaks:
  honest          nothing (a control)
  oversize        every download answers 10 MiB, whatever the range asked
  endless-size    every range [s, e) gets e - s bytes, for any file: size discovery never ends
  huge-size       every file has 2^51 zero bytes (2 PiB): discovery ends, but at a size no
                  page map should be allocated for
  trickle         a download sends one byte every 2 s, forever
  endless-body    a download sends chunks at full speed, forever
  continue        every reply is preceded by "HTTP/1.1 100 Continue"
  bad-probe       /probe's nodeId and daemonVersion carry path parts, newlines, ESC and NUL
  content-length  a download answers "Content-Length: 5" and then 1 MB of body
  bad-chunk       a download's chunk size line is not hex
  header-flood    a reply starts with 10 MB of headers
  header-drip     a reply's header never ends: a 1 KB field every 5 ms, each sent alone
  slow-status     the status line comes one byte every 2 s
  redirect        every reply is a 302 to elsewhere
  http10          downloads answer HTTP/1.0 with the body up to the close
  forbidden       every authenticated route answers 403
  silent          requests are read and never answered
  probe-not-json  /probe answers text;  probe-huge: 10 MB of JSON;  probe-array: a JSON array
  load-endless    /loadFile sends progress every 0.3 s, forever (files are missing)
  load-huge       /loadFile announces a 1 GB message
  rendezvous      the first 4 downloads are answered only once all 4 are in flight at once (or
                  with a 503 after 10 s): a client that sends them one at a time fails
Each request is logged as one line (method, path, range) to --log. Stdlib only."""
import argparse
import json
import os
import socket
import socketserver
import threading
import time

NODE_ID = "ab" * 32


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def read_request(self):
        while b"\r\n\r\n" not in self.buffer:
            data = self.request.recv(65536)
            if not data:
                return None
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            data = self.request.recv(65536)
            if not data:
                return None
            self.buffer += data
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return method, path, headers, body

    def send(self, data):
        self.request.sendall(data)

    def head(self, status, headers):
        if self.server.mode == "continue":
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        text = "HTTP/1.1 %s\r\n" % status + "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
        self.send(text.encode("latin-1"))

    def simple(self, status, body, content_type="application/json; charset=utf-8"):
        self.head(status, [("Content-Type", content_type), ("Content-Length", len(body)),
                           ("Connection", "keep-alive")])
        self.send(body)

    def chunk(self, data):
        self.send(b"%x\r\n" % len(data) + data + b"\r\n")

    def log(self, line):
        if self.server.log_path:
            with self.server.log_lock, open(self.server.log_path, "a") as f:
                f.write(line + "\n")

    def handle(self):
        while True:
            request = self.read_request()
            if request is None:
                return
            method, path, headers, body = request
            mode = self.server.mode
            if mode == "silent":
                self.log("%s %s (silent) at %.3f" % (method, path, time.time()))
                time.sleep(3600)
                return
            if mode == "slow-status":
                self.log("%s %s (slow status)" % (method, path))
                for byte in b"HTTP/1.1 200 OK\r\n\r\n":
                    self.send(bytes([byte]))
                    time.sleep(2)
                return
            if mode == "header-flood":
                self.log("%s %s (header flood)" % (method, path))
                self.send(b"HTTP/1.1 200 OK\r\n")
                line = b"X-Flood: " + b"a" * 1000 + b"\r\n"
                try:
                    for _ in range(10000):
                        self.send(line)
                except OSError:
                    pass  # the client gave up on the header
                return
            if mode == "header-drip":
                self.log("%s %s (header drip)" % (method, path))
                self.send(b"HTTP/1.1 200 OK\r\n")
                line = b"X-Drip: " + b"d" * 1000 + b"\r\n"
                sent = 0
                try:
                    while sent < 100000:
                        self.send(line)
                        sent += 1
                        time.sleep(0.005)
                except OSError:
                    pass  # the client gave up on the header
                self.log("header drip: %d fields sent" % sent)
                return
            if mode == "redirect":
                self.log("%s %s (redirect)" % (method, path))
                self.head("302 Found", [("Location", "http://127.0.0.1:1/elsewhere"), ("Content-Length", "0")])
                continue
            if mode == "forbidden" and path != "/probe":
                self.log("%s %s (403)" % (method, path))
                self.simple("403 Forbidden", b"Incorrect or invalid client authorization code.", "text/html")
                continue
            if path == "/probe" and mode in ("probe-not-json", "probe-huge", "probe-array"):
                self.log("%s /probe (%s)" % (method, mode))
                body = {"probe-not-json": b"<html>hello</html>",
                        "probe-huge": b'{"success":true,"x":"' + b"a" * (10 << 20) + b'"}',
                        "probe-array": b'[1,2,3]'}[mode]
                self.simple("200 OK", body)
                continue
            if path == "/loadFile":
                self.log("POST /loadFile (%s)" % mode)
                if not self.load_file(mode):
                    return
                continue
            if path == "/probe":
                self.log("%s /probe" % method)
                node_id, version = NODE_ID, "kachery-daemon-1.2.1"
                if self.server.mode == "bad-probe":
                    node_id = "../../etc/passwd\nINJECTED fake line\x1b[31m\x00" + "a" * 20
                    version = "1.2.1\nINJECTED version line\x1b[0m"
                self.simple("200 OK", json.dumps({"success": True, "daemonVersion": version, "nodeId": node_id,
                                                  "kacheryStorageDir": self.server.storage}, indent=4).encode())
                continue
            if path != "/downloadFileData":
                self.simple("404 Not Found", b"not here", "text/html")
                continue
            request_json = json.loads(body)
            sha1 = request_json["fileKey"]["sha1"]
            start, end = request_json.get("startByte", 0), request_json.get("endByte")
            self.log("POST /downloadFileData sha1=%s start=%s end=%s" % (sha1, start, end))
            if not self.download(sha1, start, end):
                return

    def load_file(self, mode):
        self.head("200 OK", [("Transfer-Encoding", "chunked"), ("Connection", "keep-alive")])
        try:
            if mode == "load-huge":
                self.chunk(b"1073741824#{")
                self.chunk(b"x" * 65536)
                self.send(b"0\r\n\r\n")
                return True
            while True:  # load-endless, and any other mode: progress forever
                text = json.dumps({"type": "progress", "bytesLoaded": 1, "bytesTotal": 2}).encode()
                self.chunk(b"%d#" % len(text) + text)
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            return False

    def download(self, sha1, start, end):
        mode = self.server.mode
        if mode == "rendezvous":
            with self.server.log_lock:
                self.server.downloads = getattr(self.server, "downloads", 0) + 1
                first_four = self.server.downloads <= 4
            if first_four:
                try:
                    self.server.rendezvous.wait()
                except threading.BrokenBarrierError:
                    self.simple("503 Service Unavailable", b"the 4 downloads never overlapped", "text/plain")
                    return True
        path = os.path.join(self.server.storage, "sha1", sha1[0:2], sha1[2:4], sha1[4:6], sha1)
        if mode == "endless-size":
            data = b"\0" * (end - start)
        elif mode == "huge-size":
            data = b"\0" * max(0, min(end, 1 << 51) - start)
        elif not os.path.exists(path):
            self.simple("500 Internal Server Error",
                        b"Error downloading file: Unable get data read stream for local file.", "text/html")
            return True
        else:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(end - start)
        if mode == "http10":
            self.send(b"HTTP/1.0 200 OK\r\n\r\n" + data)
            return False  # the close ends the body
        if mode == "bad-chunk":
            self.head("200 OK", [("Transfer-Encoding", "chunked")])
            self.send(b"zz-not-hex\r\n" + data[:10] + b"\r\n0\r\n\r\n")
            return True
        if mode == "content-length":
            self.head("200 OK", [("Content-Length", "5"), ("Connection", "keep-alive")])
            self.send(b"\1" * (1 << 20))
            return True
        if not data:
            self.simple("200 OK", b"", None)
            return True
        self.head("200 OK", [("Transfer-Encoding", "chunked"), ("Connection", "keep-alive")])
        try:
            if mode == "oversize":
                block = b"\7" * 65536
                for _ in range(160):  # 10 MiB
                    self.chunk(block)
            elif mode == "trickle":
                for i in range(10 ** 6):
                    self.chunk(data[i % len(data):i % len(data) + 1])
                    time.sleep(2)
            elif mode == "endless-body":
                block = b"\3" * 65536
                while True:
                    self.chunk(block)
            else:
                for i in range(0, len(data), 65536):
                    self.chunk(data[i:i + 65536])
            self.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--storage-dir", required=True)
    ap.add_argument("--mode", required=True, choices=[
        "honest", "header-drip", "oversize", "endless-size", "huge-size", "trickle", "endless-body", "continue", "bad-probe", "content-length",
        "bad-chunk", "header-flood", "slow-status", "redirect", "http10", "forbidden", "silent", "probe-not-json",
        "probe-huge", "probe-array", "load-endless", "load-huge", "rendezvous"])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    a = ap.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    server.mode, server.storage, server.log_path, server.log_lock = a.mode, os.path.abspath(a.storage_dir), a.log, threading.Lock()
    server.rendezvous = threading.Barrier(4, timeout=10)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(a.port_file + ".tmp", a.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
