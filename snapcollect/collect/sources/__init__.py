"""Host interfaces the collector reads: one module per interface.

Every read returns an ``Outcome``: the raw bytes plus the status the
manifest records (ok, missing, denied, timeout, truncated, error) and a
one-line reason. Nothing here raises for an unreadable source: absence is
data.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Any

from snapcollect.collect.jobs import BLOCKED, NO_THREAD, NOT_RUN

# errno -> (manifest status, reason). ESRCH: /proc/PID of a process that
# exited between listing and reading.
_ERRNO_STATUS = {
    errno.EACCES: ("denied", "permission denied"),
    errno.EPERM: ("denied", "operation not permitted"),
    errno.ENOENT: ("missing", "not present on this host"),
    errno.ESRCH: ("missing", "process exited"),
    errno.ENOTDIR: ("missing", "not present on this host"),
    # /proc/pressure/* with psi=0 on the kernel command line (4.20+).
    errno.EOPNOTSUPP: ("missing", "not supported by this kernel's configuration"),
}


@dataclass
class Outcome:
    """The result of reading one source."""

    status: str                 # ok, missing, denied, timeout, truncated, error
    data: bytes = b""
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def has_data(self) -> bool:
        """True when there are bytes worth storing (ok or truncated)."""
        return self.status in ("ok", "truncated")

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "surrogateescape")


def outcome_of(value: Any, what: str) -> Outcome:
    """The Outcome of a read run by ``jobs.run_bounded`` (timeouts included)."""
    if value is BLOCKED:
        return Outcome("timeout", b"", f"{what}: the read blocked past its timeout")
    if value is NOT_RUN:
        return Outcome("timeout", b"", f"{what}: not read, no time left before the deadline")
    if value is NO_THREAD:
        return Outcome("timeout", b"", f"{what}: not read, too many earlier reads of this host are "
                                       "still blocked")
    return value


def outcome_from_oserror(exc: OSError, what: str = "") -> Outcome:
    status, reason = _ERRNO_STATUS.get(exc.errno, ("error", exc.strerror or str(exc)))
    if what:
        reason = f"{what}: {reason}"
    return Outcome(status, b"", reason)


def read_capped(path: str, cap: int) -> Outcome:
    """Read a whole /proc or /sys file, at most ``cap`` bytes.

    os.read in a loop rather than open().read(): seq_file-backed /proc
    files return one page at a time, and this avoids Python's buffering
    layers. More than ``cap`` bytes gives ``truncated`` with the first
    ``cap`` bytes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return outcome_from_oserror(exc)
    try:
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, min(65536, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                data = b"".join(chunks)[:cap]
                return Outcome("truncated", data, f"cut at the size cap of {cap} bytes")
        return Outcome("ok", b"".join(chunks))
    except OSError as exc:
        return outcome_from_oserror(exc)
    finally:
        os.close(fd)


def dump_dir(root: str, cap: int, *, skip: frozenset[str] = frozenset(), recursive: bool = False,
             ) -> tuple[Outcome, list[str]]:
    """One line per readable file under ``root``: ``<relative path> = <content>``.

    Returns the text and the list of files that could not be read (with
    the reason), which the caller records beside the artifact. Multi-line
    content is joined with spaces so that one file stays one line.
    """
    if not os.path.isdir(root):
        return Outcome("missing", b"", f"{root} not present on this host"), []
    lines: list[str] = []
    unreadable: list[str] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if not recursive:
            dirnames.clear()
        for fname in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, fname), root)
            if rel in skip or fname in skip:
                continue
            full = os.path.join(dirpath, fname)
            try:
                st = os.stat(full)
            except OSError:
                continue
            if not st.st_mode & 0o444:
                continue        # write-only triggers such as drop_caches
            got = read_capped(full, 64 * 1024)
            if not got.has_data:
                unreadable.append(f"{rel}: {got.reason}")
                continue
            value = " ".join(got.text.split("\n")).strip()
            line = f"{rel} = {value}\n"
            total += len(line)
            if total > cap:
                return Outcome("truncated", "".join(lines).encode("utf-8", "surrogateescape"),
                               f"cut at the size cap of {cap} bytes"), unreadable
            lines.append(line)
    if not lines and unreadable:
        return Outcome("denied" if all("denied" in u or "not permitted" in u for u in unreadable) else "error",
                       b"", f"no file of {root} was readable"), unreadable
    return Outcome("ok", "".join(lines).encode("utf-8", "surrogateescape")), unreadable
