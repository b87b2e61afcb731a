#!/usr/bin/env python3
"""Checks the architecture's seams by grepping includes (CTest: layering.includes).

- The core (src/ minus src/app) includes no FUSE and no Boost/Beast/Asio header, and
  nothing from fuse/ or daemon-client/.
- Includes inside src/ only run downward: app -> tree -> fetch -> cache -> support -> kachery.
  The one error type, support/result.h, sits beneath them all: it includes only the
  standard library, and any layer may include it.
- fuse/ and daemon-client/ never include each other, nor the options (support/options.h):
  turning a mount's options into their configurations is app/'s wiring.
Prints one line per violation and exits 1 if there is any."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ORDER = ["kachery", "support", "cache", "fetch", "tree", "app"]
BENEATH_ALL = {"support/result.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
FUSE_CLIENT_HEADERS = {f for d in ("fuse", "daemon-client") for f in os.listdir(os.path.join(ROOT, d))
                       if f.endswith(".h")}


def sources(folder):
    for base, _, files in os.walk(os.path.join(ROOT, folder)):
        for name in files:
            if name.endswith((".h", ".cc")):
                yield os.path.join(base, name)


def main():
    problems, checked = [], 0
    for path in sources("src"):
        rel = os.path.relpath(path, ROOT)
        layer = rel.split(os.sep)[1]
        if layer not in ORDER:
            problems.append("%s: not in a layer folder (%s)" % (rel, ", ".join(ORDER)))
            continue
        text = open(path).read()
        checked += 1
        for kind, header in INCLUDE.findall(text):
            if layer != "app":
                if header.startswith(("fuse", "boost/")) or header in FUSE_CLIENT_HEADERS:
                    problems.append("%s: the core includes %s (no FUSE, no HTTP in src/)" % (rel, header))
            if kind == '"' and "/" in header:
                target = header.split("/")[0]
                if header in BENEATH_ALL:
                    continue
                if target in ORDER and ORDER.index(target) > ORDER.index(layer):
                    problems.append("%s: includes %s, which is above %s/" % (rel, header, layer))
    for header in BENEATH_ALL:
        for kind, included in INCLUDE.findall(open(os.path.join(ROOT, "src", header)).read()):
            if kind == '"':
                problems.append("src/%s: includes %s (it must stay beneath every layer)" % (header, included))
    for own, other in (("fuse", "daemon-client"), ("daemon-client", "fuse")):
        theirs = {f for f in os.listdir(os.path.join(ROOT, other)) if f.endswith(".h")}
        for path in sources(own):
            for _, header in INCLUDE.findall(open(path).read()):
                if header in theirs:
                    problems.append("%s: includes %s/%s" % (os.path.relpath(path, ROOT), other, header))
    for own in ("fuse", "daemon-client"):
        for path in sources(own):
            if "support/options.h" in [h for _, h in INCLUDE.findall(open(path).read())]:
                problems.append("%s: includes support/options.h (the wiring belongs in src/app)"
                                % os.path.relpath(path, ROOT))
    for line in problems:
        print(line)
    print("layering: %d core files checked, %d problems" % (checked, len(problems)))
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
