"""Memory cgroups, the ``cgroups/memory@P`` artifact (v1 and v2).

The collector stores the raw files of the groups holding the most memory
as JSON::

    {"version": 2, "root": "/sys/fs/cgroup",
     "groups": {"/system.slice": {"memory.current": "123\\n",
                                  "memory.max": "max\\n",
                                  "memory.events": "low 0\\nhigh 0\\nmax 3\\noom 1\\noom_kill 1\\n", ...}}}

v2 files used: memory.current, memory.max, memory.high, memory.peak
(5.19+), memory.swap.current/max, memory.stat, memory.events,
memory.pressure (PSI, 4.20+). v1 files used: memory.usage_in_bytes,
memory.limit_in_bytes, memory.max_usage_in_bytes, memory.memsw.* (when
swap accounting is on), memory.failcnt, memory.oom_control, memory.stat.
Both: cgroup.procs (the group's own pids, one a line; read up to a size
cap, so a last partial line is dropped).

The ``series/cgroups/memory`` series holds the same document at every
tick, for the groups the collector follows (``collect/sources/cgroups``),
with fewer files per group: usage, limits, events, memory.stat,
memory.pressure (v2) and cgroup.procs.
"""

from __future__ import annotations

import json

from snapcollect.parsers.base import ParseError
from snapcollect.parsers.psi import parse_psi
from snapcollect.parsers.records import MemCgroup

# v1 prints PAGE_COUNTER_MAX * PAGE_SIZE (9223372036854771712 on x86-64)
# for "no limit"; nothing real comes near 2**62 bytes.
_V1_UNLIMITED = 1 << 62


def _num(text: str | None) -> int | None:
    if text is None:
        return None
    s = text.strip()
    if s in ("", "max"):
        return None
    try:
        return int(s)
    except ValueError:
        raise ParseError(f"cgroups: not a number {s[:40]!r}") from None


def _kv(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                raise ParseError(f"cgroups: unexpected line {line.strip()[:80]!r}") from None
    return out


def _limit_v1(text: str | None) -> int | None:
    v = _num(text)
    return None if v is None or v >= _V1_UNLIMITED else v


def _tasks(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]          # cut at the size cap: the last pid may be partial
    return tuple(int(x) for x in (ln.strip() for ln in lines) if x.isdigit())


def _v2(path: str, f: dict[str, str]) -> MemCgroup:
    pressure = parse_psi(f["memory.pressure"]) if f.get("memory.pressure", "").strip() else None
    return MemCgroup(path=path, version=2, usage_bytes=_num(f.get("memory.current")),
                     limit_bytes=_num(f.get("memory.max")), high_bytes=_num(f.get("memory.high")),
                     peak_bytes=_num(f.get("memory.peak")),
                     swap_usage_bytes=_num(f.get("memory.swap.current")),
                     swap_limit_bytes=_num(f.get("memory.swap.max")),
                     stat=_kv(f.get("memory.stat")), events=_kv(f.get("memory.events")), pressure=pressure,
                     tasks=_tasks(f.get("cgroup.procs")))


def _v1(path: str, f: dict[str, str]) -> MemCgroup:
    usage = _num(f.get("memory.usage_in_bytes"))
    limit = _limit_v1(f.get("memory.limit_in_bytes"))
    memsw = _num(f.get("memory.memsw.usage_in_bytes"))
    memsw_limit = _limit_v1(f.get("memory.memsw.limit_in_bytes"))
    events = {}
    if f.get("memory.failcnt") is not None:
        events["failcnt"] = _num(f["memory.failcnt"]) or 0
    oc = _kv(f.get("memory.oom_control"))
    for k in ("under_oom", "oom_kill"):
        if k in oc:
            events[k] = oc[k]
    if f.get("memory.memsw.failcnt") is not None:
        # With memsw.limit equal to the memory limit the memsw counter is
        # the one that hits first, and memory.failcnt stays 0.
        events["memsw_failcnt"] = _num(f["memory.memsw.failcnt"]) or 0
    return MemCgroup(path=path, version=1, usage_bytes=usage, limit_bytes=limit,
                     peak_bytes=_num(f.get("memory.max_usage_in_bytes")),
                     swap_usage_bytes=(memsw - usage) if memsw is not None and usage is not None else None,
                     swap_limit_bytes=(memsw_limit - limit) if memsw_limit is not None and limit is not None
                     else None,
                     stat=_kv(f.get("memory.stat")), events=events, tasks=_tasks(f.get("cgroup.procs")))


def parse_cgroups(text: str) -> dict:
    """``{"version": 1|2, "root": str, "groups": {path: MemCgroup}}``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"cgroups: not JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("version") not in (1, 2) or not isinstance(doc.get("groups"), dict):
        raise ParseError("cgroups: expected {'version': 1|2, 'root', 'groups': {...}}")
    make = _v2 if doc["version"] == 2 else _v1
    groups = {}
    for path, files in doc["groups"].items():
        if not isinstance(files, dict) or not path.startswith("/"):
            raise ParseError(f"cgroups: group {path[:80]!r} is not a path with a map of files")
        files = {k: v for k, v in files.items() if isinstance(v, str)}
        groups[path] = make(path, files)
    root = doc.get("root")
    return {"version": doc["version"], "root": root if isinstance(root, str) else None, "groups": groups}
