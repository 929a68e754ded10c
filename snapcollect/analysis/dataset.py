"""Everything parsed from one bundle, the input of analysis and findings.

``load_dataset(bundle)`` is the only place that asks the bundle for
artifacts by name and hands their text to the parsers. Every field may be
empty or None: old kernels, containers and unprivileged runs leave gaps;
``status`` says why a source is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapcollect.parsers.records import (BpfData, KmsgLine, Point, ProcDetail, ProcSample, Psi,
                                         SlabCache, SwapDevice)


@dataclass
class Snapshot:
    """Parsed snapshot of the host at one phase (start or end)."""

    t: float | None = None
    meminfo: dict[str, int] | None = None
    vmstat: dict[str, int] | None = None
    swaps: list[SwapDevice] | None = None
    slabinfo: list[SlabCache] | None = None
    buddyinfo: list[dict] | None = None            # {"node", "zone", "free": [count per order]}
    zoneinfo: dict | None = None
    psi: Psi | None = None
    sysvm: dict[str, str] | None = None            # /proc/sys/vm/<name> -> value text
    thp: dict[str, str] | None = None              # transparent_hugepage/<path> -> value text
    numa_meminfo: dict[int, dict[str, int]] | None = None
    numastat: dict[int, dict[str, int]] | None = None
    cgroups: dict | None = None                    # parsed cgroups/memory: see parsers.cgroups
    commands: dict[str, str] = field(default_factory=dict)   # "free" -> verbatim output


@dataclass
class Dataset:
    manifest: dict[str, Any]
    host: dict[str, Any]
    interval_s: float
    page_size: int
    start: Snapshot
    end: Snapshot
    meminfo: list[Point[dict[str, int]]] = field(default_factory=list)
    vmstat: list[Point[dict[str, int]]] = field(default_factory=list)
    uptime: list[Point[float]] = field(default_factory=list)
    psi: list[Point[Psi]] = field(default_factory=list)
    numa: list[Point[dict[int, dict[str, int]]]] = field(default_factory=list)
    procs: list[Point[dict[int, ProcSample]]] = field(default_factory=list)
    top: list[ProcDetail] = field(default_factory=list)
    kmsg: list[KmsgLine] = field(default_factory=list)
    bpf: BpfData = field(default_factory=BpfData)
    # artifact name -> (status, reason) for everything not "ok"
    missing: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def window(self) -> tuple[float, float] | None:
        times = [p.t for p in self.vmstat] or [p.t for p in self.meminfo]
        return (times[0], times[-1]) if times else None

    def has(self, name: str) -> bool:
        """True when artifact ``name`` was collected (status ok)."""
        return name not in self.missing
