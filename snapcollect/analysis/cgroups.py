"""Memory cgroups over the window: which counters rose (their pressure: ``pressure``).

Input: the ``cgroups/memory`` snapshots at the start and the end, parsed
by ``parsers.cgroups`` into ``MemCgroup`` (cgroup v2 ``memory.events``,
``memory.stat``, ``memory.pressure``; cgroup v1 ``memory.failcnt``,
``memory.oom_control``)::

    /sys/fs/cgroup/app/memory.events:   low 0  high 0  max 12  oom 1  oom_kill 1
    /sys/fs/cgroup/app/memory.pressure: some avg10=0.00 avg60=0.00 avg300=0.00 total=1520000
"""

from __future__ import annotations

import json
from typing import Mapping

from snapcollect.analysis.dataset import Dataset
from snapcollect.parsers.cgroups import parse_cgroups
from snapcollect.parsers.records import MemCgroup

# The root of a hierarchy is not a group that can be "at its limit" or
# "the cgroup that reclaimed": it has no limit, and its memory.stat (v2)
# or counters (v1 with use_hierarchy) are the totals of its children.
ROOT = "/"


def cgroups(snap) -> dict[str, MemCgroup]:
    """Parsed memory cgroups of a snapshot by path (``parsers.cgroups.MemCgroup``)."""
    groups = getattr(snap, "memcgs", None)
    if groups is not None:
        return dict(groups)
    raw = getattr(snap, "cgroups", None)
    if isinstance(raw, Mapping):        # a Snapshot built without the loader
        return dict(parse_cgroups(json.dumps(raw))["groups"])
    return {}


def cgroup_event_rises(ds: Dataset, event: str, field: str = "events") -> list[tuple[MemCgroup, int]]:
    """Non-root cgroups whose ``event`` counter (in ``events`` or ``stat``) rose between the snapshots."""
    a, b = cgroups(ds.start), cgroups(ds.end)
    out = []
    for path, g in b.items():
        if path == ROOT:
            continue
        prev = a.get(path)
        now, before = getattr(g, field), getattr(prev, field, None)
        # A group missing at the start has no baseline: its counter may be old.
        if prev is None or event not in now or event not in before:
            continue
        rise = now[event] - before[event]
        if rise > 0:
            out.append((g, rise))
    out.sort(key=lambda x: -x[1])
    return out
