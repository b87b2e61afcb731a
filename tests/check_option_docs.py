#!/usr/bin/env python3
"""The option table (printed by `kacheryfs --help`, which it drives) and the documentation
agree (CTest: docs.options): every option in the table is in README.md and in
man/kacheryfs.1, and every option those document is in the table."""
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.environ.get("KACHERYFS_BIN", os.path.join(ROOT, "build", "kacheryfs"))


def main():
    help_text = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    table = set(re.findall(r"^\s+-o ([a-z_]+)", help_text, re.M)) - {"opt"}
    readme = open(os.path.join(ROOT, "README.md")).read()
    man = open(os.path.join(ROOT, "man", "kacheryfs.1")).read()
    readme_rows = set(re.findall(r"^\| `-o ([a-z_]+)", readme, re.M))
    options_section = man.split(".SS kacheryfs options", 1)[-1].split(".SH ", 1)[0]
    man_items = set(re.findall(r"^\.BI? ([a-z_]+)(?:=|\s*$)", options_section, re.M))
    problems = []
    for name in sorted(table):
        if name not in readme_rows and not re.search(r"`%s(=[^`]*)?`" % name, readme):
            problems.append("README.md does not document -o %s" % name)
        if name not in man_items and not re.search(r"\\fB%s(=)?\\f" % name, man):
            problems.append("man/kacheryfs.1 does not document %s" % name)
    for name in sorted(readme_rows - table):
        problems.append("README.md documents -o %s, which the option table lacks" % name)
    for name in sorted(man_items - table):
        problems.append("man/kacheryfs.1 documents %s, which the option table lacks" % name)
    for line in problems:
        print(line)
    print("option docs: %d options in the table, %d problems" % (len(table), len(problems)))
    return 1 if problems or len(table) < 10 else 0


if __name__ == "__main__":
    sys.exit(main())
