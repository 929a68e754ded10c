"""``procs/open-deleted@end``: deleted files still held open, from /proc/PID/fd.

The collector reads the fd links of the largest processes and keeps those
ending in `` (deleted)``, each stat(2)ed through the link (the file's
``st_dev`` as major:minor, ``st_size``, ``st_blocks`` in 512-byte units).
A comment line says what was scanned. Sample (kernel 6.1)::

    # scanned 64 processes, 2210 fds, 0.031 s
    pid	fd	dev	size	blocks	target
    4711	7	0:61	1073741824	2097152	/tmp/scratch/buf (deleted)
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError
from snapcollect.parsers.records import OpenDeleted


def parse_open_deleted(text: str) -> tuple[list[OpenDeleted], str]:
    """(files, the scan's own summary line without its ``#``)."""
    out = []
    summary = ""
    header = False
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("#"):
            summary = line[1:].strip()[:200]
            continue
        parts = line.split("\t")
        if parts[:2] == ["pid", "fd"]:
            header = True
            continue
        if len(parts) != 6 or not all(p.isdigit() and len(p) <= 20 for p in (parts[0], parts[1], parts[3], parts[4])):
            raise ParseError(f"open-deleted: unexpected line {line.strip()[:80]!r}")
        out.append(OpenDeleted(int(parts[0]), int(parts[1]), parts[2], int(parts[3]), int(parts[4]), parts[5]))
    if not header:
        raise ParseError("open-deleted: missing the 'pid<TAB>fd<TAB>dev...' header")
    return out, summary
