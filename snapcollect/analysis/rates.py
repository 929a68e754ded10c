"""Counter deltas and rates between samples, the way sysstat computes them.

sysstat reads /proc/uptime with every sample and divides counter deltas
by the uptime delta (rd_stats.c read_uptime, in 1/100 s), not by the
requested interval: a late sample gives a longer interval, not a spike.
``intervals`` does the same with the ``proc/uptime`` series and falls
back to the tick's wall clock when uptime was not read.

``vm_counter`` is the one place that folds the /proc/vmstat names of
every kernel into the current ones: before 4.8, when the LRU lists moved
from zones to nodes, reclaim counters were kept per zone, e.g.
``pgscan_kswapd_normal`` and ``pgsteal_direct_dma32``; kernels before
3.4 had ``pgsteal_<zone>`` without the kswapd/direct split; 4.8 split
allocstall per zone; 5.9 split workingset_* by anon/file::

    pgscan_kswapd 0            (4.8+; before: pgscan_kswapd_dma, _normal, ...)
    allocstall_normal 0        (4.8+; before: one allocstall)
    workingset_refault_file 0  (5.9+; before: workingset_refault)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from snapcollect.parsers.records import Point

ZONES = ("dma", "dma32", "normal", "high", "movable", "device")


def _zone_sum(vm: Mapping[str, int], prefix: str) -> int | None:
    total, found = 0, False
    for z in ZONES:
        v = vm.get(f"{prefix}_{z}")
        if v is not None:
            total += v
            found = True
    return total if found else None


def vm_counter(vm: Mapping[str, int] | None, name: str) -> int | None:
    """A /proc/vmstat counter by its current name, on any kernel.

    ``pgsteal`` is the virtual total of pages reclaimed, as upstream sysstat
    (12.7.9+) counts it: pgsteal_kswapd + pgsteal_direct, plus
    pgsteal_khugepaged and pgsteal_proactive where the kernel has them
    (recent kernels split those out of the direct count). pgsteal_anon and
    pgsteal_file (5.8+) split the same pages by type and are NOT added.
    ``pgscan`` is the same sum of scans (never pgscan_direct_throttle).

    Older names folded in: per-zone reclaim counters before 4.8;
    ``allocstall`` as the sum of allocstall_<zone> (per zone since 4.8);
    workingset_refault_file/_activate_file as workingset_refault/_activate
    before 5.9 split them by anon/file.
    """
    if not vm:
        return None
    if name == "pgsteal":
        parts = [vm_counter(vm, n) for n in ("pgsteal_kswapd", "pgsteal_direct")]
        if all(p is None for p in parts):
            return _zone_sum(vm, "pgsteal")          # before 3.4
        total = sum(p or 0 for p in parts)
        for extra in ("pgsteal_khugepaged", "pgsteal_proactive"):
            total += vm.get(extra, 0)
        return total
    if name == "pgscan":
        parts = [vm_counter(vm, f"pgscan_{w}") for w in ("kswapd", "direct")]
        parts += [vm.get(f"pgscan_{w}") for w in ("khugepaged", "proactive")]
        found = [p for p in parts if p is not None]
        return sum(found) if found else None
    v = vm.get(name)
    if v is not None:
        return v
    if name in ("pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct", "pgrefill",
                "allocstall"):
        return _zone_sum(vm, name)                    # before 4.8 (allocstall: since 4.8)
    if name in ("workingset_refault_file", "workingset_activate_file"):
        return vm.get(name.rsplit("_", 1)[0])         # pre-5.9: no anon/file split
    return None


def sysstat_1261_pgsteal(vm: Mapping[str, int]) -> int:
    """pgsteal as Debian 12's sysstat 12.6.1 reads it: every ``pgsteal_*`` line.

    On 5.8+ kernels that adds pgsteal_anon + pgsteal_file on top of
    pgsteal_kswapd + pgsteal_direct (+ khugepaged, proactive), counting
    globally reclaimed pages twice and memcg-limit reclaim once. Used by
    the cross-check against that sar only.
    """
    return sum(v for k, v in vm.items() if k.startswith("pgsteal_"))


@dataclass(frozen=True)
class Interval:
    """Two consecutive samples: indexes into the series and the time between them."""

    i_prev: int
    i_cur: int
    t: float           # wall time of the current sample (what sar prints)
    seconds: float     # uptime delta (sysstat's itv)


def _uptime_by_k(uptime: Sequence[Point[float]]) -> dict[int, float]:
    return {p.k: p.value for p in uptime}


def elapsed(a: Point, b: Point, up: Mapping[int, float]) -> float:
    """Seconds between two samples: uptime delta, else wall clock delta."""
    if a.k in up and b.k in up and up[b.k] > up[a.k]:
        return up[b.k] - up[a.k]
    return b.t - a.t


def intervals(points: Sequence[Point], uptime: Sequence[Point[float]]) -> list[Interval]:
    """Consecutive sample pairs of a series with their lengths in seconds.

    Pairs whose length is not positive (a clock that stood still) are left
    out, as sysstat refuses a null interval.
    """
    up = _uptime_by_k(uptime)
    out = []
    for i in range(1, len(points)):
        sec = elapsed(points[i - 1], points[i], up)
        if sec > 0:
            out.append(Interval(i - 1, i, points[i].t, sec))
    return out


def rate(prev: int | None, cur: int | None, seconds: float) -> float | None:
    """(cur - prev) / seconds; None when a value is missing."""
    if prev is None or cur is None or seconds <= 0:
        return None
    return (cur - prev) / seconds


def window_seconds(points: Sequence[Point], uptime: Sequence[Point[float]]) -> float:
    """Seconds from the first to the last sample (sysstat's Average: interval)."""
    if len(points) < 2:
        return 0.0
    return elapsed(points[0], points[-1], _uptime_by_k(uptime))
