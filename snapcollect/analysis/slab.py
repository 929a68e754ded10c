"""The slabtop view of /proc/slabinfo: cache sizes, summary, growth.

slabtop (procps-ng) computes CACHE SIZE as num_slabs * pagesperslab *
page size, USE as active_objs / num_objs, and its summary lines from the
sums over all caches ("Active / Total Size" = active_objs * objsize over
num_objs * objsize). Sample line (kernel 6.18)::

    dentry             38472  38472    192   21    1 : tunables    0    0    0 : slabdata   1832   1832      0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from snapcollect.parsers.records import SlabCache


def cache_size_kb(c: SlabCache, page_size: int = 4096) -> float:
    return c.num_slabs * c.pagesperslab * page_size / 1024


@dataclass(frozen=True)
class SlabSummary:
    active_objs: int
    total_objs: int
    active_slabs: int
    total_slabs: int
    active_caches: int
    total_caches: int
    active_size_kb: float
    total_size_kb: float
    min_obj_kb: float
    avg_obj_kb: float
    max_obj_kb: float


def summary(caches: Sequence[SlabCache]) -> SlabSummary:
    objs = sum(c.num_objs for c in caches)
    total_size = sum(c.num_objs * c.objsize for c in caches)
    sizes = [c.objsize for c in caches] or [0]
    return SlabSummary(
        active_objs=sum(c.active_objs for c in caches), total_objs=objs,
        active_slabs=sum(c.active_slabs for c in caches), total_slabs=sum(c.num_slabs for c in caches),
        active_caches=sum(1 for c in caches if c.active_objs), total_caches=len(caches),
        active_size_kb=sum(c.active_objs * c.objsize for c in caches) / 1024, total_size_kb=total_size / 1024,
        min_obj_kb=min(sizes) / 1024, avg_obj_kb=total_size / objs / 1024 if objs else 0.0,
        max_obj_kb=max(sizes) / 1024)


def largest(caches: Sequence[SlabCache], page_size: int = 4096, n: int = 20) -> list[SlabCache]:
    """``slabtop -s c``: by cache size, largest first."""
    return sorted(caches, key=lambda c: (-cache_size_kb(c, page_size), c.name))[:n]


@dataclass(frozen=True)
class SlabGrowth:
    name: str
    size_start_kb: float
    size_end_kb: float
    objs_start: int
    objs_end: int

    @property
    def change_kb(self) -> float:
        return self.size_end_kb - self.size_start_kb


def growth(start: Sequence[SlabCache], end: Sequence[SlabCache], page_size: int = 4096,
           n: int = 10) -> list[SlabGrowth]:
    """Caches whose size grew most from start to end (a cache new at the end starts at 0)."""
    before = {c.name: c for c in start}
    out = []
    for c in end:
        b = before.get(c.name)
        size0 = cache_size_kb(b, page_size) if b else 0.0
        g = SlabGrowth(c.name, size0, cache_size_kb(c, page_size), b.active_objs if b else 0, c.active_objs)
        if g.change_kb > 0:
            out.append(g)
    out.sort(key=lambda g: (-g.change_kb, g.name))
    return out[:n]
