"""Where the bundle goes: -o as a directory or a file name, and free space.

The name is ``snapcollect-<hostname>-<UTC YYYYmmddTHHMMSS.mmmZ>-<8 random
hex digits>.tar.zst`` unless -o names a file ending in ``.tar.zst``. The
random part makes two collections started in the same millisecond into one
directory get two bundles, and makes the next name unguessable: another
user of a shared directory such as /var/tmp cannot plant a file under it
to block the collector. The archive is still created with O_EXCL (see the
bundle writer) and an existing file is never overwritten: on EEXIST a
generated name is drawn again, a name the user gave is an error.

The directory must exist: a typo in -o is an error naming it, not a new
tree. Before starting, the output file system (statvfs(3)) must have room
for at least a minimal bundle: the writer's reserve for the final manifest
plus the start snapshots.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass

from snapcollect.bundle import names
from snapcollect.bundle.writer import RESERVE_BYTES, BundleWriter, DiskFull
from snapcollect.errors import SnapcollectError

# Reserve for the final manifest + start snapshots + a few ticks.
MIN_FREE_BYTES = RESERVE_BYTES + 768 * 1024

# Generated names drawn before giving up: with 32 random bits a collision
# is an attacker or a bug, not chance.
NAME_ATTEMPTS = 8


class OutputError(SnapcollectError):
    """The bundle cannot be written where the user asked."""

    exit_code = 73          # EX_CANTCREAT


def bundle_name(host: str, t_wall: float, suffix: str | None = None) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", host) or "host"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t_wall)) + f".{int(t_wall % 1 * 1000):03d}Z"
    if suffix is None:
        suffix = secrets.token_hex(4)
    return f"snapcollect-{safe}-{stamp}-{suffix}{names.SUFFIX}"


@dataclass
class Destination:
    """Where the bundle goes: a directory, and the file name if the user gave one."""

    directory: str
    host: str
    t_wall: float
    fixed: str | None = None          # -o name.tar.zst
    path: str = ""

    def __post_init__(self) -> None:
        self.path = self.fixed or os.path.join(self.directory, bundle_name(self.host, self.t_wall))

    def open_writer(self, manifest: dict, **writer_kw) -> BundleWriter:
        """Create the bundle (O_EXCL); a generated name that exists is drawn again."""
        for _ in range(1 if self.fixed else NAME_ATTEMPTS):
            try:
                return BundleWriter(self.path, manifest, **writer_kw)
            except FileExistsError:
                if self.fixed:
                    raise OutputError(f"{self.path}: already exists; refusing to overwrite it") from None
                self.path = os.path.join(self.directory, bundle_name(self.host, self.t_wall))
            except DiskFull:
                raise OutputError(f"{self.directory}: the file system is full; no bundle "
                                  "written") from None
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot create: {exc.strerror}") from None
        raise OutputError(f"{self.directory}: {NAME_ATTEMPTS} new bundle names in a row already "
                          "existed; someone is creating files there (use another -o)")


def resolve(output: str, host: str, t_wall: float) -> Destination:
    """The destination for ``-o output``; raises OutputError."""
    output = output or "."
    if output.endswith(names.SUFFIX):
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            raise OutputError(f"{directory}: no such directory")
        for p in (output, output + names.PARTIAL_SUFFIX):
            if os.path.lexists(p):
                raise OutputError(f"{p}: already exists; refusing to overwrite it")
        dest = Destination(directory, host, t_wall, fixed=output)
    else:
        if not os.path.exists(output):
            raise OutputError(f"{output}: no such directory (create it first, or give a file "
                              f"name ending in {names.SUFFIX} in an existing directory)")
        if not os.path.isdir(output):
            raise OutputError(f"{output}: exists and is not a directory "
                              f"(give a directory, or a new file name ending in {names.SUFFIX})")
        directory = output
        dest = Destination(directory, host, t_wall)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"{directory}: not writable by this user")
    check_free_space(directory)
    return dest


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
