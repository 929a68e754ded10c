"""The model of an incident: every fact of a bundle computed once.

``build_model(dataset)`` derives, from the parsed Dataset, the facts that
more than one reader needs: the OOM kills merged from every source, each
process's life and growth (RSS + swap, its rate or step, the time left
at a leak's rate), the pressure shares of the window, the
cgroups' pressure, each memory cgroup over time (usage against its limit,
refaults, reclaim, its tasks), where the page cache thrashes, where
Shmem lives, where page faults land (files, swap-ins, huge pages), who waited on memory (delay accounting),
whether BPF was built against another kernel's headers, and inside reclaim (slab shrinkers, kswapd runs, page
migration, from BPF), swap residency and THP faults that fell back per process (BPF kprobes, opt-in).
Rules (``findings``), the timeline, the verdict and
the report's sections read these facts from the model instead of
deriving them again, so a finding and the section it points at show the
same number. Facts only one reader needs stay with that reader, computed
from ``model.ds`` through the one module that owns them (``series``,
``rates``, ``sar``, ``slab``, ...).

The results built on the model (findings, timeline, verdict) are the
``incident``.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis import series
from snapcollect.analysis.bpf_headers import HeaderMismatch, header_mismatch
from snapcollect.analysis.cgroup_series import (CgroupSeries, GroupStalls, MemcgReclaim, Thrashing,
                                                cgroup_series, memcg_reclaim, stalls_by_cgroup, task_cgroups,
                                                thrashing)
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.deepdive import DeepDiveFacts, deepdive_facts
from snapcollect.analysis.delays import DelayFacts, delay_facts
from snapcollect.analysis.faultmaps import FaultMapFacts, fault_map_facts
from snapcollect.analysis.leak import Leak, leaks
from snapcollect.analysis.oom import OomFacts, oom_facts
from snapcollect.analysis.pidstat import Life, lives
from snapcollect.analysis.pressure import CgroupPressure, WindowShare, cgroup_pressure, window_share
from snapcollect.analysis.processes import Growth, ProcMemory, growth, process_memory, suspects
from snapcollect.analysis.shmem import ShmemFacts, shmem_facts
from snapcollect.analysis.swap_residency import SwapResidencyFacts, swap_residency_facts
from snapcollect.analysis.thp_faults import ThpFaultFacts, thp_fault_facts
from snapcollect.analysis.vmscan import VmscanFacts, vmscan_facts


@dataclass(frozen=True)
class Model:
    ds: Dataset                              # the parsed bundle the facts come from
    oom: OomFacts
    lives: tuple[Life, ...]                  # every process of series/procs, by (pid, starttime)
    memory: tuple[ProcMemory, ...]           # every process by last RSS, largest first
    growth: tuple[Growth, ...]               # RSS first sight -> peak, >= 1 MiB, largest first
    suspects: tuple[Growth, ...]             # the growers oomd's thresholds single out
    leaks: tuple[Leak, ...]                  # steady growers with the time left at their rate
    psi_some: WindowShare | None             # host PSI share of the window (sar %smem Average)
    psi_full: WindowShare | None             # (sar %fmem Average)
    cgroup_pressure: dict[str, CgroupPressure]
    mem_total_kb: int | None                 # MemTotal at the end
    cgroups: dict[str, CgroupSeries]         # each followed memory cgroup over the window
    task_cgroup: dict[int, str]              # pid -> the deepest followed cgroup holding it
    memcg_reclaim: MemcgReclaim | None       # reclaim at cgroup limits, host-wide (vmstat)
    thrashing: tuple[Thrashing, ...]         # where the page cache thrashes, most refaulted first
    stall_groups: tuple[GroupStalls, ...]    # BPF reclaim stalls by the cgroup of the task
    shmem: ShmemFacts                        # where Shmem lives: mounts, SysV, processes, deleted files
    bpf_headers: HeaderMismatch | None       # BPF compiled against another kernel's headers
    deepdive: tuple[DeepDiveFacts, ...] = ()  # --pid/--comm: each followed process's allocations
    delays: DelayFacts | None = None          # who waited on memory (delay accounting), swap residency estimate
    fault_maps: FaultMapFacts | None = None  # BPF: faults by file/mapping, swap-ins, huge-page faults
    vmscan: VmscanFacts | None = None        # BPF: shrinkers, kswapd runs, page migration
    swap_residency: SwapResidencyFacts | None = None   # BPF kprobes: swap-out to swap-in times
    thp_faults: ThpFaultFacts | None = None  # BPF kretprobe: THP faults that fell back, per process


def build_model(ds: Dataset) -> Model:
    """Every shared fact of ``ds``, once."""
    end_meminfo, _, _ = series.at(ds, "meminfo", "end")
    total = (end_meminfo or {}).get("MemTotal")
    all_lives = tuple(lives(ds.procs))
    grown = tuple(growth(all_lives))
    groups = cgroup_series(ds)
    in_group = task_cgroups(groups)
    return Model(
        ds=ds, oom=oom_facts(ds), lives=all_lives,
        memory=tuple(process_memory(ds.procs, total, all_lives)),
        growth=grown, suspects=tuple(suspects(all_lives, grown)), leaks=tuple(leaks(ds, grown)),
        psi_some=window_share(ds, "some"), psi_full=window_share(ds, "full"),
        cgroup_pressure=cgroup_pressure(ds), mem_total_kb=total,
        cgroups=groups, task_cgroup=in_group, memcg_reclaim=memcg_reclaim(ds),
        thrashing=tuple(thrashing(ds, groups)), stall_groups=stalls_by_cgroup(ds.bpf.reclaim, in_group),
        shmem=shmem_facts(ds, ds.top), deepdive=deepdive_facts(ds), bpf_headers=header_mismatch(ds),
        delays=delay_facts(ds), fault_maps=fault_map_facts(ds, all_lives),
        vmscan=vmscan_facts(ds), swap_residency=swap_residency_facts(ds), thp_faults=thp_fault_facts(ds))
