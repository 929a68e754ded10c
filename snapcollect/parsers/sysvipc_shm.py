"""/proc/sysvipc/shm: System V shared memory segments.

Sample (kernel 6.1; sizes in bytes, ``rss`` and ``swap`` columns only on
newer kernels, so columns are found by the header)::

           key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
             0          3  1600             1073741824  4711  4711      0     0     0     0     0 1764633600          0 1764633600            1073741824                     0

``perms`` is octal mode plus flags: ``SHM_LOCKED`` (02000) marks a
segment locked with shmctl(SHM_LOCK), whose pages are unevictable;
``SHM_DEST`` (01000) one removed but still attached. A segment with
``nattch`` 0 is held by no process yet keeps its pages until IPC_RMID.
"""

from __future__ import annotations

from snapcollect.parsers.base import ParseError, to_int
from snapcollect.parsers.records import ShmSegment

SHM_LOCKED = 0o2000
_NEEDED = ("key", "shmid", "perms", "size", "cpid", "lpid", "nattch", "uid")


def parse_sysvipc_shm(text: str) -> list[ShmSegment]:
    lines = text.splitlines()
    if not lines:
        raise ParseError("sysvipc/shm: empty (the header line is missing)")
    head = lines[0].split()
    if any(h not in head for h in _NEEDED):
        raise ParseError(f"sysvipc/shm: header {lines[0].strip()[:80]!r} lacks key/shmid/size columns")
    col = {h: i for i, h in enumerate(head)}
    out = []
    for line in lines[1:]:
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(head):
            raise ParseError(f"sysvipc/shm: {len(parts)} fields, the header has {len(head)}: "
                             f"{line.strip()[:80]!r}")

        def num(name, base=10):
            if name not in col:
                return None
            try:
                return int(parts[col[name]], base)
            except ValueError:
                raise ParseError(f"sysvipc/shm: {name} not a number in {line.strip()[:80]!r}") from None
        perms = num("perms", 8)
        out.append(ShmSegment(to_int(parts[col["key"]], "sysvipc/shm", line), num("shmid"), num("size"),
                              num("cpid"), num("lpid"), num("nattch"), num("uid"), num("rss"), num("swap"),
                              bool(perms & SHM_LOCKED)))
    return out
