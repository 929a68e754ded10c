"""One sampling tick: the cheap system files plus the pass over processes.

The memory cgroups that matter are read with the system files (the
``cgroups/memory`` series, ``collect/sources/cgroups.Follower``): spaced
out like the process pass when they cost more than their share of a core,
their cost in the manifest's ``cgroups_pass``::

    "cgroups_pass": {"groups": 7, "reads": 30, "every_ticks": 1, "max_every_ticks": 1,
                     "reselect_every_reads": 10, "walks": 3, "last_walk": {"dirs": 12, "cpu_s": 0.001},
                     "cpu_share": 0.025, "read_cpu_s_median": 0.0009, "read_cpu_s_max": 0.002}

The system files (/proc/vmstat, meminfo, pressure/memory, uptime and each
node's numastat) are read in one worker thread, each with a timeout of
half an interval; the process pass runs meanwhile in another and gets
until the tick's deadline; a pass that blocks there is abandoned, the pid it was
reading is skipped until that read returns, and the tick records ``procs``
as a ``timeout``. While an abandoned pass is still blocked no second one is
started on the same pid, so one stuck process costs one thread.

A tick member (see docs/bundle-format.md) carries: ``k``, ``t`` (wall
clock when the tick started), ``mono``, ``dur_s`` (how long its reads
took), ``texts``, ``failures`` and, when the process pass was cut short,
``cut``: {"procs": reason}.

On a host with many processes the process pass is the collector's main
cost (about 7 us of CPU a process for /proc/PID/stat alone on a quiet
host, 15-35 us on a busy one with the line handled; 10,000 processes,
0.1-0.3 s a pass). Above ``ADAPT_ABOVE_PIDS`` processes it runs every
few ticks instead of every tick, so that on average it costs at most
``PASS_CPU_SHARE`` of one core; the system files are still read every
tick. The share is what is left of the collector's 2% of a core once
the system files, cgroups and compression have theirs (about 0.6-0.9%
measured by benchmarks/bench_scale.py): with 1,000 processes a pass of
20 ms runs every other tick. Ticks between passes carry no ``procs`` text. Each change of
spacing is recorded in the manifest's ``procs_pass``::

    "procs_pass": {"every_ticks": 9, "max_every_ticks": 9, "adapt_above_pids": 500,
                   "cpu_share": 0.011, "changes": [{"k": 1, "every_ticks": 9, "pids": 10088,
                   "pass_cpu_s": 0.094}]}
"""

from __future__ import annotations

import math
import time
from collections import deque
from functools import partial
from typing import Callable

from snapcollect.bundle.names import CGROUPS_MEMORY, NODE_NUMASTAT, PROCS
from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect import own_processes
from snapcollect.collect.jobs import NOT_RUN, Jobs, run_bounded
from snapcollect.collect.median import median
from snapcollect.collect.snapshot import HostLayout
from snapcollect.collect.sources import cgroups, numa, outcome_of, procfs
from snapcollect.collect.sources.processes import PassResult, PassState, pid_from_current, procs_pass


# At or below this many processes the pass runs every tick: per-tick fault
# counters of every process, as pidstat -r 1 prints them. A pass over 500
# processes costs 4-15 ms, within the share below on any host we measured.
ADAPT_ABOVE_PIDS = 500
# Above it, passes are spaced so that they cost at most this share of one
# core on average (median of the last passes), but never fewer than one
# pass every MAX_PASS_EVERY ticks.
PASS_CPU_SHARE = 0.011
MAX_PASS_EVERY = 10
MAX_CHANGES_KEPT = 50
CGROUPS = CGROUPS_MEMORY


def pass_every(cpu_s: float, pids: int, interval_s: float) -> int:
    """Ticks from one process pass to the next, for passes costing ``cpu_s``."""
    if pids <= ADAPT_ABOVE_PIDS or interval_s <= 0:
        return 1
    return min(MAX_PASS_EVERY, max(1, math.ceil(cpu_s / (PASS_CPU_SHARE * interval_s))))


class Sampler:
    def __init__(self, writer: BundleWriter, jobs: Jobs, nodes: list[int], interval_s: float, *,
                 layout: HostLayout | None = None):
        # ``layout`` (snapshot.HostLayout): the memory cgroup hierarchy and
        # the groups the start snapshot chose, which the series follows.
        self.layout = layout
        self.cgroups: cgroups.Follower | None = None
        self.writer = writer
        self.jobs = jobs
        self.nodes = nodes
        self.interval = interval_s
        self.state = PassState()
        self.last_pass: PassResult | None = None
        self.last_pass_k: int | None = None
        self.ticks = 0
        self.every = 1
        self.next_pass_k = 0
        self._costs: deque[float] = deque(maxlen=3)
        self._changes: list[dict] = []
        self._max_every = 1

    def _space_passes(self, k: int, res: PassResult) -> None:
        """When the next pass runs, from what the last ones cost."""
        if self.state.passes > 1:
            # The first pass reads every process's status: not a typical cost.
            self._costs.append(res.cpu_s)
        every = pass_every(median(self._costs), res.seen, self.interval) if self._costs else 1
        if every != self.every:
            self.every = every
            self._max_every = max(self._max_every, every)
            if len(self._changes) < MAX_CHANGES_KEPT:
                self._changes.append({"k": k, "every_ticks": every, "pids": res.seen, "pass_cpu_s": res.cpu_s})
            self.writer.merge_manifest("procs_pass", every_ticks=every, max_every_ticks=self._max_every,
                                       adapt_above_pids=ADAPT_ABOVE_PIDS, cpu_share=PASS_CPU_SHARE,
                                       changes=list(self._changes))
        self.next_pass_k = k + every

    def _system_items(self) -> list[tuple[str, Callable]]:
        items: list[tuple[str, Callable]] = [(src, partial(procfs.read_file, src)) for src in procfs.TICK_FILES]
        items += [(numa.node_source(n, NODE_NUMASTAT), partial(numa.read_node_file, n, NODE_NUMASTAT))
                  for n in self.nodes]
        hierarchy = self.layout.cgroup if self.layout is not None else None
        if hierarchy is not None:
            if self.cgroups is None:
                self.cgroups = cgroups.Follower(hierarchy[0], hierarchy[1], self.interval,
                                                list(self.layout.cgroups_chosen))
            items.append((CGROUPS, self.cgroups.tick))
        return items

    def take(self, k: int, deadline_mono: float) -> None:
        """Take tick ``k`` and write it; the process pass gets until ``deadline_mono``."""
        t_wall = time.time()
        t_mono = time.monotonic()
        texts: dict[str, str] = {}
        failures: dict[str, tuple[str, str]] = {}
        extra: dict = {}
        budget = max(0.05, min(0.5 * self.interval, deadline_mono - t_mono))
        state = self.state
        for pid, stuck_job in list(state.blocked_by.items()):
            if stuck_job.done.is_set():         # the read was late, not stuck: try it again
                del state.blocked_by[pid]
                state.blocked.pop(pid, None)
        run_pass = k >= self.next_pass_k
        own = frozenset(own_processes.pids())
        job = self.jobs.start(lambda j: procs_pass(j, state, budget, own), "procs") if run_pass else None
        items = self._system_items()
        system = run_bounded(self.jobs, items, deadline_mono, item_timeout_s=max(0.05, 0.5 * self.interval),
                             label="tick")
        for src, _fn in items:
            if src == CGROUPS and system.get(src, False) is None:
                continue            # the cgroup reads are spaced out this tick
            got = outcome_of(system.get(src, NOT_RUN), src)
            if got.has_data:
                texts[src] = got.text
            else:
                failures[src] = (got.status, got.reason or got.status)
        if not run_pass:
            pass                    # spaced out on a host with many processes (see above)
        elif job is None:
            stuck = ", ".join(sorted({j.current or j.label for j in self.jobs.stuck}))
            failures[PROCS] = ("timeout", f"not read: earlier reads are still blocked ({stuck})")
        elif not job.wait_until(deadline_mono):
            what = self.jobs.abandon(job)
            pid = pid_from_current(what)
            if pid is not None:
                state.blocked[pid] = what
                state.blocked_by[pid] = job
            failures[PROCS] = ("timeout", f"blocked reading {what}; that process is skipped until the read "
                                            "returns")
        elif job.error is not None:
            failures[PROCS] = ("error", f"{type(job.error).__name__}: {job.error}")
        else:
            res: PassResult = job.result
            texts[PROCS] = res.text
            self.last_pass = res
            self.last_pass_k = k
            self._space_passes(k, res)
            if res.cut_reason:
                extra["cut"] = {PROCS: res.cut_reason}
        if state.blocked:
            extra["skipped_pids"] = sorted(state.blocked)
        if self.cgroups is not None:
            self.writer.merge_manifest("cgroups_pass", **self.cgroups.cost())
        extra["dur_s"] = round(time.monotonic() - t_mono, 4)
        self.writer.add_tick(k, t_wall, t_mono, texts, failures, **extra)
        self.ticks += 1
