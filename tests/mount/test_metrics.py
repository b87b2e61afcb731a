"""Prometheus metrics: `kacheryfs-cache metrics` and -o metrics_file, read back with Debian's
prometheus_client parser. The counters move by exactly what known reads cost, the file is
replaced atomically while it is read in a loop, and a node that goes away shows as down in
the first file written after it went."""
import json
import os
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kacheryfs_testlib import KACHERYFS, MountTestCase, put_random_file  # noqa: E402

TOOL = os.environ.get("KACHERYFS_CACHE_BIN", os.path.join(os.path.dirname(KACHERYFS), "kacheryfs-cache"))
PARSER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parse_prometheus.py")
REQUIRED = {  # family name as the parser gives it (counters lose _total) -> type
    "kacheryfs_up": "gauge",
    "kacheryfs_node_up": "gauge",
    "kacheryfs_node_served_bytes": "counter",
    "kacheryfs_cache_size_bytes": "gauge",
    "kacheryfs_cache_limit_bytes": "gauge",
    "kacheryfs_cache_objects": "gauge",
    "kacheryfs_cache_hits": "counter",
    "kacheryfs_cache_misses": "counter",
    "kacheryfs_downloaded_bytes": "counter",
    "kacheryfs_eio": "counter",
    "kacheryfs_verify_failures": "counter",
    "kacheryfs_pinned_bytes": "gauge",
    "kacheryfs_request_duration_seconds": "histogram",
}


def parse(text):
    """{family: {"type", "help", "samples": {(sample name, sorted labels): value}}}."""
    r = subprocess.run(["/usr/bin/python3", PARSER], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("%s\n--- text ---\n%s" % (r.stderr, text))
    out = {}
    for family in json.loads(r.stdout):
        samples = {(name, tuple(sorted(labels.items()))): value for name, labels, value in family["samples"]}
        out[family["name"]] = {"type": family["type"], "help": family["help"], "samples": samples}
    return out


def read_text(path):
    with open(path) as f:
        return f.read()


def value(metrics, family, sample=None, **labels):
    return metrics[family]["samples"][(sample or family, tuple(sorted(labels.items())))]


def total(metrics, family, **labels):
    """A counter's sample, named family_total."""
    return value(metrics, family, family + "_total", **labels)


class Metrics(MountTestCase):
    def tool_metrics(self):
        r = subprocess.run([TOOL, "-o", "cache_dir=" + self.cache, "metrics"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return parse(r.stdout)

    def assertWellFormed(self, metrics):
        for name, kind in REQUIRED.items():
            self.assertIn(name, metrics)
            self.assertEqual(metrics[name]["type"], kind, name)
            self.assertTrue(metrics[name]["help"], name + " has no # HELP")
        buckets = sorted((float(dict(labels)["le"]), v) for (sample, labels), v
                         in metrics["kacheryfs_request_duration_seconds"]["samples"].items()
                         if sample.endswith("_bucket"))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), "histogram buckets are not cumulative")
        self.assertEqual(buckets[-1], (float("inf"), value(metrics, "kacheryfs_request_duration_seconds",
                                                            "kacheryfs_request_duration_seconds_count")))

    def test_counters_move_by_what_known_reads_cost(self):
        size = 3_000_000
        sha1, original = put_random_file(self.storage, size, 1, self.originals)
        m = self.mount()
        before = self.tool_metrics()
        self.assertWellFormed(before)
        self.assertEqual(value(before, "kacheryfs_up", cache_dir=self.cache), 1)
        node = self.emulator.address
        node_label = [dict(labels)["node"] for (_, labels) in before["kacheryfs_node_up"]["samples"]]
        self.assertEqual(len(node_label), 1, before["kacheryfs_node_up"])
        self.assertEqual(value(before, "kacheryfs_node_up", node=node_label[0]), 1)
        self.assertIn(node.split(":")[-1], node_label[0])

        self.assertSameBytes(self.content(sha1), original)  # a cold read of the whole file
        self.unmount(m)  # the mount writes its counters to the index as it stops
        cold = self.tool_metrics()
        self.assertWellFormed(cold)
        self.assertEqual(value(cold, "kacheryfs_up", cache_dir=self.cache), 0)
        moved = lambda after, earlier, family: total(after, family) - total(earlier, family)  # noqa: E731
        self.assertEqual(moved(cold, before, "kacheryfs_downloaded_bytes"), size)
        self.assertEqual(moved(cold, before, "kacheryfs_cache_misses"), 1)
        self.assertEqual(moved(cold, before, "kacheryfs_cache_hits"), 0)
        self.assertEqual(value(cold, "kacheryfs_cache_size_bytes"), size)
        self.assertEqual(value(cold, "kacheryfs_cache_objects"), 1)
        served = total(cold, "kacheryfs_node_served_bytes", node=node_label[0])
        self.assertGreaterEqual(served, size)  # and size discovery's 1-byte probes
        self.assertLessEqual(served, size + 64)
        requests = lambda m: value(m, "kacheryfs_request_duration_seconds",  # noqa: E731
                                   "kacheryfs_request_duration_seconds_count")
        self.assertGreater(requests(cold), requests(before))

        m = self.mount()
        self.assertSameBytes(self.content(sha1), original)  # warm
        self.unmount(m)
        warm = self.tool_metrics()
        self.assertEqual(moved(warm, cold, "kacheryfs_cache_hits"), 1)
        self.assertEqual(moved(warm, cold, "kacheryfs_cache_misses"), 0)
        self.assertEqual(moved(warm, cold, "kacheryfs_downloaded_bytes"), 0)

        r = subprocess.run([TOOL, "-o", "cache_dir=" + self.cache, "pin", sha1], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(value(self.tool_metrics(), "kacheryfs_pinned_bytes"), size)

    def test_the_file_is_replaced_atomically_while_read_in_a_loop(self):
        path = os.path.join(self.tmp, "textfile", "kacheryfs.prom")
        os.makedirs(os.path.dirname(path))
        sha1, original = put_random_file(self.storage, 200_000, 2, self.originals)
        m = self.mount("metrics_file=" + path, "metrics_interval=50ms")
        self.wait_for(lambda: os.path.exists(path), "the first metrics file")
        stop = threading.Event()

        def keep_reading():  # reads through the mount keep the counters moving
            while not stop.is_set():
                with open(self.content(sha1), "rb") as f:
                    f.read()
        reader = threading.Thread(target=keep_reading)
        reader.start()
        self.addCleanup(reader.join)
        self.addCleanup(stop.set)
        # Each rename gives the path a new inode (numbers are reused, so only a change
        # from one read to the next counts as a replacement).
        replacements, texts, last_inode = 0, [], None
        while replacements < 25:
            with open(path) as f:
                inode = os.fstat(f.fileno()).st_ino
                text = f.read()
            replacements += last_inode is not None and inode != last_inode
            last_inode = inode
            if not texts or texts[-1] != text:
                texts.append(text)
            self.assertLess(len(texts), 10_000, "the metrics file changes without being replaced")
        stop.set()
        parsed = [parse(text) for text in texts]
        for text, metrics in zip(texts, parsed):
            self.assertTrue(text.endswith("\n"), "a half-written file: " + text[-200:])
            self.assertWellFormed(metrics)
        hits = [total(metrics, "kacheryfs_cache_hits") for metrics in parsed]
        self.assertEqual(hits, sorted(hits), "a counter went backwards")
        self.assertGreater(hits[-1], hits[0])
        self.unmount(m)
        final = parse(read_text(path))
        self.assertEqual(value(final, "kacheryfs_up", cache_dir=self.cache), 0)
        self.assertEqual(os.listdir(os.path.dirname(path)), ["kacheryfs.prom"], "temp files left")

    def test_a_node_that_goes_away_is_down_in_the_next_file(self):
        path = os.path.join(self.tmp, "kacheryfs.prom")
        sha1, _ = put_random_file(self.storage, 100_000, 3, self.originals)
        self.mount("metrics_file=" + path, "metrics_interval=1", "timeout=2", "connect_timeout=2")
        self.wait_for(lambda: os.path.exists(path), "the first metrics file")
        metrics = parse(read_text(path))
        self.assertEqual([v for v in metrics["kacheryfs_node_up"]["samples"].values()], [1])

        self.emulator.stop()
        # The file current now, and the next one (perhaps begun before the node went), may
        # still say up; the one after that was begun entirely after it went.
        seen = [os.stat(path).st_ino]
        while len(seen) < 3:
            self.wait_for(lambda: os.stat(path).st_ino != seen[-1], "the next metrics file")
            with open(path) as f:
                seen.append(os.fstat(f.fileno()).st_ino)
                text = f.read()
        metrics = parse(text)
        self.assertEqual([v for v in metrics["kacheryfs_node_up"]["samples"].values()], [0], text)
        self.assertEqual(value(metrics, "kacheryfs_up", cache_dir=self.cache), 1)

        with self.assertRaises(OSError):
            with open(self.content(sha1), "rb") as f:
                f.read()
        self.wait_for(lambda: sum(parse(read_text(path))["kacheryfs_eio"]["samples"].values()) >= 1,
                      "the EIO to be counted in the metrics file")


if __name__ == "__main__":
    unittest.main()
