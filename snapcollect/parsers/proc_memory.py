"""``procs/memory@P``: every process's memory fields of /proc/PID/status and its memory cgroup.

The collector writes a header line naming the columns, one line per
process (values in kB as status prints them; empty when the kernel has
no such field: RssShmem is 4.5+, VmPin 3.2+, VmSwap 2.6.34+), then one
``cgroup`` line per memory cgroup of the larger processes with that
cgroup's usage and limit in bytes (empty when unreadable; -1 for v2
"max"; v1's PAGE_COUNTER_MAX, about 2^63, also means no limit).
Sample (kernel 6.1, cgroup v1)::

    pid	Name	VmRSS	RssAnon	RssFile	RssShmem	VmSwap	VmLck	VmPin	cgroup
    4711	leaker	614400	612000	2400	0	0	0	0	/leak
    cgroup	/leak	630000000	1073741824
"""

from __future__ import annotations

from snapcollect.bundle.names import PROCS_MEMORY
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.records import CgroupLimit, StatusMemory

FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSwap", "VmLck", "VmPin")
# v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (2^63 rounded down to a page).
NO_LIMIT_FROM = 1 << 60


def _kb(text: str, line: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise ParseError(f"{PROCS_MEMORY}: not a size in kB {text[:20]!r} in {line.strip()[:80]!r}")
    return int(text)


def _bytes(text: str, line: str) -> int | None:
    if not text:
        return None
    try:
        v = int(text)
    except ValueError:
        raise ParseError(f"{PROCS_MEMORY}: not a byte count {text[:20]!r} in {line.strip()[:80]!r}") from None
    return None if v < 0 or v >= NO_LIMIT_FROM else v


def parse_proc_memory(text: str) -> tuple[list[StatusMemory], dict[str, CgroupLimit]]:
    lines = text.split("\n")
    head = lines[0].rstrip("\r").split("\t") if lines else []
    if head[:2] != ["pid", "Name"] or "cgroup" not in head:
        raise ParseError(f"{PROCS_MEMORY}: missing the 'pid<TAB>Name<TAB>VmRSS...' header")
    col = {h: i for i, h in enumerate(head)}
    procs: list[StatusMemory] = []
    groups: dict[str, CgroupLimit] = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        parts = line.split("\t")
        if parts[0] == "cgroup":
            if len(parts) != 4:
                raise ParseError(f"{PROCS_MEMORY}: a cgroup line has 4 fields: {line.strip()[:80]!r}")
            limit = _bytes(parts[3], line)
            groups[parts[1]] = CgroupLimit(parts[1], _bytes(parts[2], line), limit)
            continue
        if len(parts) != len(head) or not parts[0].isdigit() or len(parts[0]) > 10:
            raise ParseError(f"{PROCS_MEMORY}: unexpected line {line.strip()[:80]!r}")
        v = {f: _kb(parts[col[f]], line) if f in col else None for f in FIELDS}
        procs.append(StatusMemory(int(parts[0]), parts[col["Name"]], v["VmRSS"], v["RssAnon"], v["RssFile"],
                                 v["RssShmem"], v["VmSwap"], v["VmLck"], v["VmPin"], parts[col["cgroup"]]))
    return procs, groups
