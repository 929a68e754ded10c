"""Where the bundle goes: -o as a directory or a file name, and free space.

The name is ``snapcollect-<hostname>-<UTC YYYYmmddTHHMMSSZ>.tar.zst``
unless -o names a file ending in ``.tar.zst``. An existing file is never
overwritten. Before starting, the output file system (statvfs(3)) must
have room for at least a minimal bundle: the writer's reserve for the
final manifest plus the start snapshots.
"""

from __future__ import annotations

import os
import re
import time

from snapcollect.bundle import names
from snapcollect.bundle.writer import RESERVE_BYTES
from snapcollect.errors import SnapcollectError

# Reserve for the final manifest + start snapshots + a few ticks.
MIN_FREE_BYTES = RESERVE_BYTES + 768 * 1024


class OutputError(SnapcollectError):
    """The bundle cannot be written where the user asked."""

    exit_code = 73          # EX_CANTCREAT


def bundle_name(host: str, t_wall: float) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", host) or "host"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t_wall))
    return f"snapcollect-{safe}-{stamp}{names.SUFFIX}"


def resolve(output: str, host: str, t_wall: float) -> str:
    """The archive path for ``-o output``; raises OutputError."""
    output = output or "."
    if output.endswith(names.SUFFIX):
        path = output
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise OutputError(f"{directory}: no such directory")
    else:
        if os.path.exists(output) and not os.path.isdir(output):
            raise OutputError(f"{output}: exists and is not a directory "
                              f"(give a directory, or a new file name ending in {names.SUFFIX})")
        if not os.path.exists(output):
            try:
                os.makedirs(output)
            except OSError as exc:
                raise OutputError(f"{output}: cannot create directory: {exc.strerror}") from None
        directory = output
        path = os.path.join(output, bundle_name(host, t_wall))
    for p in (path, path + names.PARTIAL_SUFFIX):
        if os.path.lexists(p):
            raise OutputError(f"{p}: already exists; refusing to overwrite it")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"{directory}: not writable by this user")
    check_free_space(directory)
    return path


def check_free_space(directory: str, need: int = MIN_FREE_BYTES) -> int:
    """Free bytes in ``directory``'s file system; OutputError below ``need``."""
    try:
        st = os.statvfs(directory)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot check free space: {exc.strerror}") from None
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise OutputError(f"{directory}: only {free // 1024} KiB free; a bundle needs at least "
                          f"{need // 1024} KiB (use -o on a larger file system)")
    return free
