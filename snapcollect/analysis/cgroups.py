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

from snapcollect.analysis.dataset import Dataset, Snapshot
from snapcollect.parsers.cgroups import parse_cgroups
from snapcollect.parsers.records import MemCgroup

# The root of a hierarchy is not a group that can be "at its limit" or
# "the cgroup that reclaimed": it has no limit, and its memory.stat (v2)
# or counters (v1 with use_hierarchy) are the totals of its children.
ROOT = "/"


def cgroups(snap: Snapshot) -> dict[str, MemCgroup]:
    """Parsed memory cgroups of a snapshot by path (``parsers.cgroups.MemCgroup``)."""
    if snap.memcgs is not None:
        return dict(snap.memcgs)
    raw = snap.cgroups
    if isinstance(raw, Mapping):        # a Snapshot built without the loader
        return dict(parse_cgroups(json.dumps(raw))["groups"])
    return {}


# Keys of memory.oom_control (v1) that are states, not counters.
NOT_COUNTERS = frozenset({"under_oom", "oom_kill_disable"})


def counter_changes(g: MemCgroup, prev: MemCgroup | None, field: str = "events") -> dict[str, int | None]:
    """Each counter of ``g.<field>`` (``events`` or ``stat``) -> its change since ``prev``.

    None when there is no baseline: a group (or counter) missing at the
    start may hold an old count, so its value is not a change of the window.
    """
    now, before = getattr(g, field), getattr(prev, field, None) if prev is not None else None
    return {k: (v - before[k] if before is not None and k in before and k not in NOT_COUNTERS else None)
            for k, v in now.items()}


def cgroup_event_rises(ds: Dataset, event: str, field: str = "events") -> list[tuple[MemCgroup, int]]:
    """Non-root cgroups whose ``event`` counter (in ``events`` or ``stat``) rose between the snapshots."""
    a, b = cgroups(ds.start), cgroups(ds.end)
    out = []
    for path, g in b.items():
        if path == ROOT:
            continue
        rise = counter_changes(g, a.get(path), field).get(event)
        if rise is not None and rise > 0:
            out.append((g, rise))
    out.sort(key=lambda x: -x[1])
    return out
