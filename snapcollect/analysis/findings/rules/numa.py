"""NUMA placement: allocations that landed on another node than wanted.

Input: /sys/devices/system/node/node<N>/numastat over the window (page
counts since boot, kernel Documentation/admin-guide/numastat.rst):

    numa_hit 1574810
    numa_miss 0
    numa_foreign 0
"""

from __future__ import annotations

from snapcollect.analysis.findings.rule import Hit, SkipRule, rule
from snapcollect.analysis.series import vm_window
from snapcollect.bundle.names import NODES_NUMASTAT, SERIES_NODES_NUMASTAT, end_of, start_of

MISS_INFO_PCT = 10.0     # heuristic
MISS_WARN_PCT = 30.0     # heuristic
MIN_MISSES = 1024        # heuristic floor (pages)


def numa_deltas(ds) -> tuple[dict[int, dict[str, int]], list[str], tuple[float, float] | None]:
    """Per-node counter deltas over the window, the artifacts, the time range."""
    if len(ds.numa) >= 2:
        a, b = ds.numa[0].value, ds.numa[-1].value
        arts = [SERIES_NODES_NUMASTAT]
        tr = (ds.numa[0].t, ds.numa[-1].t)
    else:
        a, b = ds.start.numastat or {}, ds.end.numastat or {}
        arts = [start_of(NODES_NUMASTAT), end_of(NODES_NUMASTAT)]
        tr = vm_window(ds)
    out = {}
    for node, cur in b.items():
        prev = a.get(node)
        if prev is None:
            continue
        out[node] = {k: max(v - prev.get(k, v), 0) for k, v in cur.items()}
    return out, arts, tr


@rule(
    key="NUMA_MISSES", area="numa", severities=("WARN", "INFO"),
    detects="Memory meant for one NUMA node allocated on another because the preferred node "
            "was full: remote memory is slower.",
    title="NUMA misses: {pct:.0f}% of node {node}'s allocations were meant for {_preferred}",
    explanation="Over the window node {node} took {miss} allocations meant for another node "
                "(numa_miss) against {hit} meant for itself (numa_hit); {_foreign_text} The "
                "preferred node is short of memory or a process is bound badly; check numastat -m "
                "per node and the placement (numactl, cpusets) of the biggest processes.",
    threshold="d(numa_miss) / (d(numa_hit) + d(numa_miss)) > 10% (INFO), > 30% (WARN), with >= "
              "1024 misses",
    source="heuristic, on kernel Documentation/admin-guide/numastat.rst",
    needs=[(SERIES_NODES_NUMASTAT, end_of(NODES_NUMASTAT))], section="numastat")
def numa_misses(m):
    ds = m.ds
    deltas, arts, tr = numa_deltas(ds)
    if not deltas:
        raise SkipRule(f"needs two numastat samples per node ({SERIES_NODES_NUMASTAT}, or the "
                       "@start and @end snapshots)")
    worst = None
    for node, d in deltas.items():
        miss, hit = d.get("numa_miss", 0), d.get("numa_hit", 0)
        if miss < MIN_MISSES:
            continue
        pct = 100.0 * miss / (hit + miss)
        if pct > MISS_INFO_PCT and (worst is None or pct > worst[0]):
            worst = (pct, node, miss, hit)
    if worst is None:
        return None
    pct, node, miss, hit = worst
    # numa_foreign counts, on the preferred node, what went elsewhere: the
    # other side of the same misses.
    foreign = {n: d.get("numa_foreign", 0) for n, d in deltas.items()
               if n != node and d.get("numa_foreign", 0) > 0}
    preferred = sorted(foreign, key=lambda n: -foreign[n])
    return Hit("WARN" if pct > MISS_WARN_PCT else "INFO",
               {"node": node, "pct": pct, "miss": miss, "hit": hit,
                "_preferred": (" and ".join(f"node {n}" for n in preferred[:3]) if preferred
                               else "another node"),
                "_foreign_text": ("; ".join(f"node {n} saw {foreign[n]} of its allocations go elsewhere "
                                            "(numa_foreign)" for n in preferred[:3]) + "."
                                  if preferred else "no other node counted them as numa_foreign."),
                "foreign": {str(n): v for n, v in foreign.items()},
                "per_node": {str(n): {"numa_miss": d.get("numa_miss", 0), "numa_hit": d.get("numa_hit", 0)}
                             for n, d in deltas.items()}}, arts, tr)
