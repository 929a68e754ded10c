"""How this program was started, for the hints it prints (``see: ... show``).

Installed, it is the ``snapcollect`` command. From the single file
(dist/snapcollect.pyz) it is ``python3 /path/snapcollect.pyz``: the hint
should be a command that works when pasted on the same host.
"""

from __future__ import annotations

import os
import shutil
import sys


def command(argv0: str | None = None, executable: str | None = None) -> str:
    """The command to repeat: ``snapcollect`` or ``python3 /tmp/snapcollect.pyz``."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    if not argv0.endswith(".pyz"):
        return "snapcollect"
    python = executable or "python3"
    on_path = shutil.which("python3")
    if on_path and executable and os.path.realpath(on_path) == os.path.realpath(executable):
        python = "python3"
    return f"{python} {argv0}"
