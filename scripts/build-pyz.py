#!/usr/bin/env python3
"""Build dist/snapcollect.pyz: the collector as one file for the host's python3.

The archive holds the snapcollect package (its .py files and the BPF C
source) and a __main__ that refuses Pythons older than 3.9 in one line.
zstandard is a C extension and cannot run from a zip: the host supplies
it (python3-zstandard). Usage: build-pyz.py [OUTPUT]
"""

import os
import shutil
import sys
import tempfile
import zipapp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEEP_SUFFIXES = (".py", ".bpf.c")

MAIN = '''\
import sys

if sys.version_info < (3, 9):
    sys.stderr.write("snapcollect: needs Python 3.9 or newer; this is %d.%d\\n" % sys.version_info[:2])
    sys.exit(1)

from snapcollect.cli import main

raise SystemExit(main())
'''


def stage(dest: str) -> int:
    """Copy the package's shipped files under ``dest``; return how many."""
    count = 0
    src_root = os.path.join(ROOT, "snapcollect")
    for dirpath, dirnames, filenames in os.walk(src_root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = os.path.relpath(dirpath, ROOT)
        for name in sorted(filenames):
            if name.endswith(KEEP_SUFFIXES):
                os.makedirs(os.path.join(dest, rel), exist_ok=True)
                shutil.copy2(os.path.join(dirpath, name), os.path.join(dest, rel, name))
                count += 1
    with open(os.path.join(dest, "__main__.py"), "w") as fh:
        fh.write(MAIN)
    return count


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "dist", "snapcollect.pyz")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="snapcollect-pyz-") as tmp:
        n = stage(tmp)
        tmp_out = out + ".tmp"
        zipapp.create_archive(tmp, tmp_out, interpreter="/usr/bin/env python3", compressed=True)
        os.replace(tmp_out, out)
    print(f"{out}: {n} files, {os.path.getsize(out) // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
