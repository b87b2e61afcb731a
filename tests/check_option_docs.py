#!/usr/bin/env python3
"""The option table (printed by `kacheryfs --help`, which it drives) and the documentation
agree (CTest: docs.options): every option in the table is in README.md and in
man/kacheryfs.1, and every option those document is in the table. Likewise every command
and flag of `kacheryfs-cache --help` is in the README's synopsis of the tool and in
man/kacheryfs-cache.1, and the man page documents no command the tool lacks."""
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.environ.get("KACHERYFS_BIN", os.path.join(ROOT, "build", "kacheryfs"))
TOOL = os.environ.get("KACHERYFS_CACHE_BIN", os.path.join(os.path.dirname(BIN), "kacheryfs-cache"))


def tool_problems(readme):
    help_text = subprocess.run([TOOL, "--help"], capture_output=True, text=True, check=True).stdout
    commands = set(re.findall(r"^  ([a-z]+)\b", help_text.split("commands:", 1)[1], re.M))
    flags = set(re.findall(r"(--[a-z]+|-[jVo])\b", help_text))
    man = open(os.path.join(ROOT, "man", "kacheryfs-cache.1")).read()
    man_commands = set(re.findall(r"^\.BI? ([a-z]+)\b", man.split(".SH COMMANDS", 1)[1].split(".SH ", 1)[0], re.M))
    synopsis = readme.split("### kacheryfs-cache", 1)[1].split("```", 2)[1]
    problems = []
    for command in sorted(commands):
        if not re.search(r"^  %s\b" % command, synopsis, re.M):
            problems.append("README.md's kacheryfs-cache synopsis lacks the command %s" % command)
        if command not in man_commands:
            problems.append("man/kacheryfs-cache.1 does not document the command %s" % command)
    for command in sorted(man_commands - commands):
        problems.append("man/kacheryfs-cache.1 documents the command %s, which the tool lacks" % command)
    for flag in sorted(flags):
        escaped = flag.replace("-", "\\-")
        if escaped not in man and flag not in man:
            problems.append("man/kacheryfs-cache.1 does not mention %s" % flag)
        if flag not in readme.split("### kacheryfs-cache", 1)[1].split("### ", 1)[0]:
            problems.append("README.md's kacheryfs-cache section does not mention %s" % flag)
    if len(commands) < 7:
        problems.append("kacheryfs-cache --help lists only %d commands" % len(commands))
    return problems


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
    problems += tool_problems(readme)
    for line in problems:
        print(line)
    print("option docs: %d options in the table, %d problems" % (len(table), len(problems)))
    return 1 if problems or len(table) < 10 else 0


if __name__ == "__main__":
    sys.exit(main())
