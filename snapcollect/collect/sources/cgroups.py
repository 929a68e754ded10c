"""Memory cgroups, v1 and v2, for the groups holding the most memory.

Which hierarchy: /proc/self/mountinfo names the mounts. cgroup v2 is used
when its root lists ``memory`` in cgroup.controllers (4.5+); otherwise the
v1 ``memory`` controller mount (hybrid systemd layouts mount both, with
memory on v1). Sample mountinfo lines::

    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

The tree is walked (bounded in directories and time), every group's usage,
limit and limit events read (v2 ``memory.current``, ``memory.max``,
``memory.events``; v1 ``memory.usage_in_bytes``, ``memory.limit_in_bytes``,
``memory.failcnt``), and the groups that matter get their files stored
raw: the root, the ``TOP`` largest, every group at ``NEAR`` of its limit
or with limit events, and the ancestors of all of them. Files a kernel
lacks are simply absent from a group (memory.peak is 5.19+,
memory.swap.* needs swap accounting, memory.memsw.* needs
CONFIG_MEMCG_SWAP / swapaccount=1). v1 ``memory.pressure_level`` is only
an eventfd target (reading it fails with EINVAL) and is not read.

Output, JSON: {"version": 1|2, "root": mountpoint, "usage_file": ...,
"scanned": n, "groups": {"/path": {"memory.stat": "...", ...}},
"unreadable": {"/path/file": reason}}.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass

from snapcollect.collect.jobs import Job
from snapcollect.collect.sources import Outcome, read_capped

TOP = 20
MAX_DIRS = 20000
# A group at this share of its limit or more is followed whatever its size.
NEAR = 0.8
# Groups stored by a snapshot, and followed by the tick series, at most.
MOST = 40
SERIES_MOST = 32

V2_FILES = ("memory.current", "memory.max", "memory.high", "memory.low", "memory.min",
            "memory.peak", "memory.stat", "memory.events", "memory.events.local",
            "memory.pressure", "memory.swap.current", "memory.swap.max", "memory.swap.events",
            "memory.zswap.current", "memory.oom.group")
V1_FILES = ("memory.usage_in_bytes", "memory.limit_in_bytes", "memory.max_usage_in_bytes",
            "memory.soft_limit_in_bytes", "memory.failcnt", "memory.stat", "memory.oom_control",
            "memory.memsw.usage_in_bytes", "memory.memsw.limit_in_bytes",
            "memory.memsw.max_usage_in_bytes", "memory.memsw.failcnt", "memory.swappiness",
            "memory.use_hierarchy", "cgroup.procs")
V2_FILES = V2_FILES + ("cgroup.procs",)
# At every tick: what usage, limits, events, the stat figures behind usage,
# pressure and the tasks of a group need, and nothing else.
V2_SERIES = ("memory.current", "memory.max", "memory.high", "memory.swap.current", "memory.swap.max",
             "memory.events", "memory.stat", "memory.pressure", "cgroup.procs")
V1_SERIES = ("memory.usage_in_bytes", "memory.limit_in_bytes", "memory.memsw.usage_in_bytes",
             "memory.memsw.limit_in_bytes", "memory.failcnt", "memory.memsw.failcnt", "memory.oom_control",
             "memory.stat", "cgroup.procs")
USAGE_FILE = {1: "memory.usage_in_bytes", 2: "memory.current"}
LIMIT_FILE = {1: "memory.limit_in_bytes", 2: "memory.max"}
# cgroup.procs of a big group (the root's lists every process) is capped:
# a group's tasks are named in findings, a few thousand pids are plenty.
PROCS_CAP = 16 * 1024
FILE_CAP = 256 * 1024
# v1 prints PAGE_COUNTER_MAX * PAGE_SIZE for "no limit".
_V1_UNLIMITED = 1 << 62


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), path)


def find_hierarchy(mountinfo: str | None = None) -> tuple[int, str] | None:
    """(version, mountpoint) of the memory cgroup hierarchy, or None."""
    if mountinfo is None:
        got = read_capped("/proc/self/mountinfo", 4 * 1024 * 1024)
        if not got.has_data:
            return None
        mountinfo = got.text
    v1 = None
    v2: list[str] = []
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields = pre.split()
        fstype, _source, *opts = post.split()
        if len(fields) < 5:
            continue
        mnt = _unescape(fields[4])
        if fstype == "cgroup2":
            v2.append(mnt)
        elif fstype == "cgroup" and opts and "memory" in opts[0].split(",") and v1 is None:
            v1 = mnt
    for mnt in v2:
        ctl = read_capped(os.path.join(mnt, "cgroup.controllers"), 4096)
        if ctl.ok and "memory" in ctl.text.split():
            return 2, mnt
    if v1 is not None:
        return 1, v1
    return None


def _int_file(path: str) -> int | None:
    got = read_capped(path, 64)
    if not got.ok:
        return None
    try:
        return int(got.text.strip())
    except ValueError:
        return None         # v2 "max", or junk


def _usage(path: str, version: int) -> int | None:
    return _int_file(os.path.join(path, USAGE_FILE[version]))


def _has_events(path: str, version: int) -> bool:
    """Did the group ever hit its limit or OOM (v2 memory.events, v1 failcnt)?"""
    if version == 1:
        return bool(_int_file(os.path.join(path, "memory.failcnt"))
                    or _int_file(os.path.join(path, "memory.memsw.failcnt")))
    got = read_capped(os.path.join(path, "memory.events"), 4096)
    if not got.ok:
        return False
    for line in got.text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("max", "oom", "oom_kill") and parts[1] not in ("0",):
            return True
    return False


@dataclass(frozen=True)
class Walked:
    """One group seen by the walk: usage, limit, whether it has limit events."""

    rel: str
    usage: int
    limit: int | None
    events: bool

    @property
    def near_limit(self) -> bool:
        return self.limit is not None and 0 < self.limit < _V1_UNLIMITED and self.usage >= NEAR * self.limit


def walk(job: Job | None, version: int, root: str, budget_s: float) -> tuple[list[Walked], int, str | None]:
    """Every group's usage, limit and limit events, bounded in groups and time.

    Returns (groups, directories scanned, why the walk stopped early or None).
    """
    t_end = time.monotonic() + budget_s
    seen: list[Walked] = []
    scanned = 0
    cut = None
    for dirpath, dirnames, _files in os.walk(root):
        dirnames.sort()
        if job is not None:
            job.current = dirpath
        scanned += 1
        if scanned > MAX_DIRS or time.monotonic() > t_end:
            cut = f"walk stopped after {scanned - 1} groups (bounded)"
            break
        if dirpath == root:
            continue        # the root is always included
        u = _usage(dirpath, version)
        if u is None:
            continue
        lim = _int_file(os.path.join(dirpath, LIMIT_FILE[version]))
        seen.append(Walked("/" + os.path.relpath(dirpath, root), u, lim, _has_events(dirpath, version)))
    if job is not None:
        job.current = None
    return seen, scanned, cut


def _ancestors(rel: str) -> list[str]:
    parts = rel.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def choose(seen: list[Walked], top: int, most: int) -> list[str]:
    """The groups that matter: the root, the ``top`` largest, every one near
    its limit or with limit events (closest to the limit first), and the
    ancestors of all of them; at most ``most`` in all."""
    by_usage = sorted(seen, key=lambda w: (-w.usage, w.rel))
    pressing = sorted((w for w in seen if w.near_limit or w.events),
                      key=lambda w: (-(w.usage / w.limit if w.limit else 0), w.rel))
    chosen = ["/"]
    # Pressing groups first: on a host with hundreds of large idle groups
    # the one at its limit is what the reader came for.
    for w in pressing[:most] + by_usage[:top]:
        for rel in _ancestors(w.rel) + [w.rel]:
            if rel not in chosen and len(chosen) < most:
                chosen.append(rel)
    return chosen


def read_groups(job: Job | None, root: str, chosen: list[str],
                files: tuple[str, ...]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The raw ``files`` of each chosen group; what could not be read, and why."""
    groups: dict[str, dict[str, str]] = {}
    unreadable: dict[str, str] = {}
    for rel in chosen:
        d = root if rel == "/" else os.path.join(root, rel.lstrip("/"))
        if not os.path.isdir(d):
            unreadable[rel] = "group no longer exists"
            continue
        g: dict[str, str] = {}
        for f in files:
            if f == "cgroup.procs" and rel == "/":
                continue        # every process of the host: not a group's tasks
            path = os.path.join(d, f)
            if job is not None:
                job.current = path
            got = read_capped(path, PROCS_CAP if f == "cgroup.procs" else FILE_CAP)
            if got.has_data:
                g[f] = got.text
            elif got.status != "missing":
                unreadable[f"{rel.rstrip('/')}/{f}"] = got.reason or got.status
        groups[rel] = g
    if job is not None:
        job.current = None
    return groups, unreadable


def collect(job: Job | None, version: int, root: str, *, top: int = TOP, budget_s: float = 1.0,
            also: tuple[str, ...] = ()) -> tuple[Outcome, list[str]]:
    """Walk the hierarchy, store the files of the largest groups.

    ``also`` names groups (relative paths) to include whatever their
    usage, e.g. the groups chosen at the start, so start and end compare.
    Returns the JSON outcome and the chosen group paths.
    """
    seen, scanned, cut = walk(job, version, root, budget_s)
    chosen = choose(seen, top, MOST)
    chosen += [a for a in also if a not in chosen]
    groups, unreadable = read_groups(job, root, chosen, V2_FILES if version == 2 else V1_FILES)
    doc = {"version": version, "root": root, "usage_file": USAGE_FILE[version], "scanned": scanned,
           "groups": groups}
    if unreadable:
        doc["unreadable"] = unreadable
    if cut:
        doc["walk_cut"] = cut
    data = json.dumps(doc, indent=1, sort_keys=True).encode()
    if job is not None:
        job.current = None
    if not any(groups.values()):
        reason = "; ".join(f"{k}: {v}" for k, v in list(unreadable.items())[:3]) or "no readable file"
        status = "denied" if any("denied" in v or "not permitted" in v for v in unreadable.values()) else "error"
        return Outcome(status, data, reason), chosen
    return Outcome("ok", data), chosen


# The tick series: the groups are chosen again every RESELECT_EVERY reads
# (a walk, bounded by WALK_BUDGET_SHARE of an interval), so a group that
# fills up during the window is followed from then on.
RESELECT_EVERY = 10
WALK_BUDGET_SHARE = 0.2
# Like the process pass: the reads may cost at most this share of one core
# on average (median of the last reads); above it they are spaced out, but
# run at least every MAX_EVERY ticks.
CPU_SHARE = 0.025
MAX_EVERY = 10


class Follower:
    """The ``cgroups/memory`` series: the files of the groups that matter, each tick.

    ``tick()`` runs in the sampler's system-file worker; it returns the
    Outcome of this tick's read (a JSON document shaped like the snapshot's)
    or None on a tick the spacing skips. ``cost()`` is what the manifest's
    ``cgroups_pass`` records.
    """

    def __init__(self, version: int, root: str, interval_s: float, initial: list[str] | None = None):
        self.version, self.root, self.interval = version, root, interval_s
        self.chosen: list[str] = ["/"] + [c for c in (initial or []) if c != "/"][:SERIES_MOST - 1]
        self.reads = 0
        self.walks = 0
        self.every = 1
        self.max_every = 1
        self._calls = 0
        self._next = 0
        self._costs: list[float] = []
        self.last_walk: dict = {}
        self.max_read_cpu_s = 0.0
        self._busy = False

    def _reselect(self) -> None:
        t0 = time.thread_time()
        seen, scanned, cut = walk(None, self.version, self.root, max(0.02, WALK_BUDGET_SHARE * self.interval))
        chosen = choose(seen, TOP, SERIES_MOST)
        # Keep following what was followed, while there is room, so a
        # group's series does not stop when it shrinks for a moment.
        for rel in self.chosen:
            if rel not in chosen and len(chosen) < SERIES_MOST:
                chosen.append(rel)
        self.chosen = chosen
        self.walks += 1
        self.last_walk = {"dirs": scanned, "cpu_s": round(time.thread_time() - t0, 4)}
        if cut:
            self.last_walk["cut"] = cut

    def tick(self) -> Outcome | None:
        if self._busy:
            # An earlier tick's read is still blocked in its abandoned
            # thread: no second read of the same files beside it.
            return Outcome("timeout", b"", "not read: an earlier read of the cgroup files is still blocked")
        self._busy = True
        try:
            return self._tick()
        finally:
            self._busy = False

    def _tick(self) -> Outcome | None:
        k = self._calls
        self._calls += 1
        if k < self._next:
            return None
        t0 = time.thread_time()
        if self.reads % RESELECT_EVERY == 0:
            self._reselect()
        groups, unreadable = read_groups(None, self.root, self.chosen,
                                         V2_SERIES if self.version == 2 else V1_SERIES)
        self.reads += 1
        cpu = time.thread_time() - t0
        self.max_read_cpu_s = max(self.max_read_cpu_s, cpu)
        self._costs = (self._costs + [cpu])[-5:]
        med = sorted(self._costs)[len(self._costs) // 2]
        if self.interval > 0:
            self.every = min(MAX_EVERY, max(1, math.ceil(med / (CPU_SHARE * self.interval))))
            self.max_every = max(self.max_every, self.every)
        self._next = k + self.every
        doc: dict = {"version": self.version, "root": self.root, "groups": groups}
        if unreadable:
            doc["unreadable"] = unreadable
        data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        if not any(groups.values()):
            reason = "; ".join(f"{a}: {b}" for a, b in list(unreadable.items())[:3]) or "no readable file"
            return Outcome("error", b"", reason)
        return Outcome("ok", data)

    def cost(self) -> dict:
        med = sorted(self._costs)[len(self._costs) // 2] if self._costs else 0.0
        return {"groups": len(self.chosen), "reads": self.reads, "every_ticks": self.every,
                "max_every_ticks": self.max_every, "reselect_every_reads": RESELECT_EVERY,
                "walks": self.walks, "last_walk": dict(self.last_walk), "cpu_share": CPU_SHARE,
                "read_cpu_s_median": round(med, 4), "read_cpu_s_max": round(self.max_read_cpu_s, 4)}
