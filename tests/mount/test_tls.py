"""An https:// source: kacheryfs behind a TLS reverse proxy (socat, as labs put the daemon
behind nginx), with certificate and host-name verification."""
import errno
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import MountTestCase, free_port, put_random_file  # noqa: E402


class TlsProxy(MountTestCase):
    def setUp(self):
        super().setUp()
        self.cert = os.path.join(self.tmp, "cert.pem")
        key = os.path.join(self.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", key, "-out", self.cert], check=True, capture_output=True)
        self.tls_port = free_port()
        self.proxy = subprocess.Popen(
            ["socat", "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,cert=%s,key=%s,verify=0" % (self.tls_port, self.cert, key),
             "TCP:127.0.0.1:%d" % self.emulator.port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self.stop_proxy)
        deadline = time.time() + 10
        while subprocess.run(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/%d" % self.tls_port],
                             capture_output=True).returncode != 0:
            self.assertLess(time.time(), deadline, "socat did not start")
            time.sleep(0.05)

    def stop_proxy(self):
        self.proxy.terminate()
        self.proxy.wait(10)

    def test_reads_through_https_with_a_trusted_certificate(self):
        sha1, original = put_random_file(self.storage, 6_000_000, 70, self.originals)
        os.environ["SSL_CERT_FILE"] = self.cert  # OpenSSL's default trust store for the child
        try:
            m = self.mount(source="https://localhost:%d" % self.tls_port)
        finally:
            del os.environ["SSL_CERT_FILE"]
        self.assertIn("https://localhost:%d" % self.tls_port, m.output())
        self.assertSameBytes(self.content(sha1), original)

    def test_an_untrusted_certificate_is_refused(self):
        sha1, _ = put_random_file(self.storage, 1000, 71, self.originals)
        m = self.mount(source="https://localhost:%d" % self.tls_port)
        with self.assertRaises(OSError) as ctx:
            os.stat(self.content(sha1))
        self.assertEqual(ctx.exception.errno, errno.EIO)
        self.assertIn("certificate verify failed", m.output())


if __name__ == "__main__":
    unittest.main()
