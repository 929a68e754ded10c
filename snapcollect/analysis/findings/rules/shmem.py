"""Shared memory and tmpfs: Shmem that grew or holds a large share of RAM, and where it lives.

Input: /proc/meminfo ``Shmem`` over the window (kB, 2.6.32+), and the
inventory of ``analysis/shmem.py`` (memory file systems with statvfs,
SysV segments, RssShmem per process, deleted files still open)::

    Shmem:           1057832 kB
"""

from __future__ import annotations

from snapcollect.analysis.findings.rule import Hit, SkipRule, rule
from snapcollect.analysis.shmem import places
from snapcollect.analysis.wording import hms, human_kb
from snapcollect.bundle.names import (FS_MEMFS, PROCS_MEMORY, PROCS_OPEN_DELETED, PROC_SYSVIPC_SHM,
                                      SERIES_PROC_MEMINFO, end_of)

GROWTH_MIN_KB = 256 * 1024       # heuristic: growth worth a note whatever the host's size
SHARE_INFO_PCT = 25.0            # heuristic: a quarter of RAM that cannot be dropped like cache
SHARE_WARN_PCT = 50.0            # heuristic: half of RAM: the host is small for what it runs
AVAILABLE_WARN_PCT = 10.0        # LOW_AVAILABLE's level: below it, users meet reclaim and OOM kills
PLACE_SHARE = 0.05               # a place holding less than 5% of Shmem is not worth a mention


@rule(
    key="SHMEM_GROWTH", area="memory", severities=("WARN", "INFO"),
    detects="Shared memory (tmpfs files, SysV and POSIX shared memory) that grew or holds a large "
            "share of RAM, with where it lives: it looks like cache in free(1) but cannot be "
            "dropped, only swapped.",
    title="Shmem {_what}: {_where}",
    explanation="Shmem went from {_first} to {_last} ({share_pct:.0f}% of RAM at the end). {_inventory}"
                "{_hint}",
    threshold="Shmem grows >= 256 MiB in the window, or is >= 25% of MemTotal at the end (INFO); "
              "WARN when it is >= 50% of MemTotal, or it grew and MemAvailable ended below 10%",
    source="heuristic; 10% available is LOW_AVAILABLE's level (node-exporter mixin)",
    needs=[SERIES_PROC_MEMINFO], section="shmem")
def shmem_growth(m):
    f = m.shmem
    t = f.trend
    if t is None:
        raise SkipRule("needs two meminfo samples with Shmem (2.6.32+)")
    total = f.mem_total_kb
    if not total:
        return None
    grew = t.last_kb - t.first_kb
    share = 100.0 * t.last_kb / total
    if grew < GROWTH_MIN_KB and share < SHARE_INFO_PCT:
        return None
    low = f.available_end_kb is not None and 100.0 * f.available_end_kb / total < AVAILABLE_WARN_PCT
    sev = "WARN" if share >= SHARE_WARN_PCT or (grew >= GROWTH_MIN_KB and low) else "INFO"
    what = (f"grew {human_kb(grew)}" + (f" in a step at {hms(t.step_t1)}" if t.kind == "step" else "")
            if grew >= GROWTH_MIN_KB else f"holds {share:.0f}% of RAM ({human_kb(t.last_kb)})")
    floor = PLACE_SHARE * t.last_kb
    where = [p for p in places(f) if p.kb >= floor or (p.growth_kb or 0) >= floor]
    arts = [SERIES_PROC_MEMINFO]
    if not f.collected:
        head = "the bundle has no shared-memory inventory (collected by newer versions)"
        inventory = ""
    elif not where:
        head = "no tmpfs mount, SysV segment or process holds it (shared anonymous mappings?)"
        inventory = ""
    else:
        top = where[0]
        head = f"{human_kb(top.kb)} in {top.label}, {top.holders}"
        inventory = "Where it lives at the end: " + "; ".join(
            f"{p.label} {human_kb(p.kb)}" + (f" (+{human_kb(p.growth_kb)})" if p.growth_kb else "")
            + f", {p.holders}" for p in where[:5]) + ". "
        arts += sorted({a for a in (end_of(FS_MEMFS), end_of(PROC_SYSVIPC_SHM), end_of(PROCS_MEMORY),
                                    end_of(PROCS_OPEN_DELETED))
                        if any(p.kind == k for p in where[:5] for k in _KINDS[a])})
    hint = ("Files on tmpfs stay in RAM until they are deleted (and, once deleted, until the last "
            "process holding them closes them): remove what is not needed, or cap the mount "
            "(size=); a SysV segment stays until ipcrm; shared memory a process maps goes when it "
            "exits.")
    return Hit(sev, {
        "_what": what, "_where": head, "_first": human_kb(t.first_kb), "_last": human_kb(t.last_kb),
        "share_pct": share, "_inventory": inventory, "_hint": hint,
        "Shmem_first_kb": t.first_kb, "Shmem_last_kb": t.last_kb, "growth_kb": grew, "shape": t.kind,
        "places": [{"kind": p.kind, "label": p.label, "kb": p.kb, "growth_kb": p.growth_kb,
                    "holders": p.holders} for p in where[:5]],
    }, arts, (t.t_first, t.t_peak), section=None if f.collected else "sar-r")


_KINDS = {end_of(FS_MEMFS): ("mount",), end_of(PROC_SYSVIPC_SHM): ("sysv",), end_of(PROCS_MEMORY): ("process",),
          end_of(PROCS_OPEN_DELETED): ("mount",)}
