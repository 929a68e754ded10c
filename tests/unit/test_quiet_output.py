"""--quiet: library output (C on fd 2, Python on sys.stderr, warnings) is dropped;
the collector's own line still gets through, and stderr is back afterwards."""

from __future__ import annotations

import subprocess
import sys

CODE = r"""
import os, sys, warnings
from snapcollect.collect.quiet import quiet_output
with quiet_output(True) as ours:
    os.write(2, b"from C on fd 2\n")
    print("from a library on sys.stderr", file=sys.stderr)
    warnings.warn("a library warning")
    print("snapcollect: our own line", file=ours)
print("after", file=sys.stderr)
with quiet_output(False) as ours:
    assert ours is None
    os.write(2, b"not quiet\n")
"""


def test_quiet_output_drops_library_output_and_keeps_ours():
    p = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "snapcollect: our own line\nafter\nnot quiet\n"
