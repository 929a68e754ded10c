"""Memory cgroups, v1 and v2, for the groups holding the most memory.

Which hierarchy: /proc/self/mountinfo names the mounts. cgroup v2 is used
when its root lists ``memory`` in cgroup.controllers (4.5+); otherwise the
v1 ``memory`` controller mount (hybrid systemd layouts mount both, with
memory on v1). Sample mountinfo lines::

    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

The tree is walked (bounded in directories and time), every group's usage
read (v2 ``memory.current``, v1 ``memory.usage_in_bytes``), and the
``TOP`` largest plus the root get their files stored raw. Files a kernel
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
import os
import re
import time

from snapcollect.collect.jobs import Job
from snapcollect.collect.sources import Outcome, read_capped

TOP = 20
MAX_DIRS = 20000

V2_FILES = ("memory.current", "memory.max", "memory.high", "memory.low", "memory.min",
            "memory.peak", "memory.stat", "memory.events", "memory.events.local",
            "memory.pressure", "memory.swap.current", "memory.swap.max", "memory.swap.events",
            "memory.zswap.current", "memory.oom.group")
V1_FILES = ("memory.usage_in_bytes", "memory.limit_in_bytes", "memory.max_usage_in_bytes",
            "memory.soft_limit_in_bytes", "memory.failcnt", "memory.stat", "memory.oom_control",
            "memory.memsw.usage_in_bytes", "memory.memsw.limit_in_bytes",
            "memory.memsw.max_usage_in_bytes", "memory.memsw.failcnt", "memory.swappiness",
            "memory.use_hierarchy")
USAGE_FILE = {1: "memory.usage_in_bytes", 2: "memory.current"}


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


def _usage(path: str, version: int) -> int | None:
    got = read_capped(os.path.join(path, USAGE_FILE[version]), 64)
    if not got.ok:
        return None
    try:
        return int(got.text.strip())
    except ValueError:
        return None


def collect(job: Job | None, version: int, root: str, *, top: int = TOP, budget_s: float = 1.0,
            also: tuple[str, ...] = ()) -> tuple[Outcome, list[str]]:
    """Walk the hierarchy, store the files of the largest groups.

    ``also`` names groups (relative paths) to include whatever their
    usage, e.g. the groups chosen at the start, so start and end compare.
    Returns the JSON outcome and the chosen group paths.
    """
    t_end = time.monotonic() + budget_s
    usages: list[tuple[int, str]] = []
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
        rel = "/" + os.path.relpath(dirpath, root) if dirpath != root else "/"
        if rel == "/":
            continue        # the root is always included
        u = _usage(dirpath, version)
        if u is not None:
            usages.append((u, rel))
    usages.sort(key=lambda x: (-x[0], x[1]))
    chosen = ["/"] + [rel for _u, rel in usages[:top]]
    chosen += [a for a in also if a not in chosen]
    files = V2_FILES if version == 2 else V1_FILES
    groups: dict[str, dict[str, str]] = {}
    unreadable: dict[str, str] = {}
    for rel in chosen:
        d = root if rel == "/" else os.path.join(root, rel.lstrip("/"))
        if not os.path.isdir(d):
            unreadable[rel] = "group no longer exists"
            continue
        g: dict[str, str] = {}
        for f in files:
            path = os.path.join(d, f)
            if job is not None:
                job.current = path
            got = read_capped(path, 256 * 1024)
            if got.has_data:
                g[f] = got.text
            elif got.status != "missing":
                unreadable[f"{rel.rstrip('/')}/{f}"] = got.reason or got.status
        groups[rel] = g
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
