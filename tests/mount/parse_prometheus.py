#!/usr/bin/python3
"""Parses the Prometheus text format from stdin with Debian's python3-prometheus-client
(prometheus_client.parser), an independent parser, and prints its families as JSON:
[{"name", "type", "help", "samples": [[name, labels, value], ...]}, ...]. Exits 1 with the
parser's error on input it rejects. Run by /usr/bin/python3, where Debian's package lives."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    families = [{"name": f.name, "type": f.type, "help": f.documentation,
                 "samples": [[s.name, s.labels, s.value] for s in f.samples]}
                for f in text_string_to_metric_families(sys.stdin.read())]
except Exception as error:  # the parser raises ValueError and others on bad text
    print("not the Prometheus text format: %s" % error, file=sys.stderr)
    sys.exit(1)
json.dump(families, sys.stdout)
