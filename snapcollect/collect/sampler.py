"""One sampling tick: the cheap system files plus the pass over processes.

The system files (/proc/vmstat, meminfo, pressure/memory, uptime and each
node's numastat) are read in one worker thread, each with a timeout of
half an interval; the process pass runs meanwhile in another and gets
until the tick's deadline; a pass that blocks there is abandoned, the pid it was
reading is skipped from then on, and the tick records ``procs`` as a
``timeout``. While an abandoned pass is still blocked no second one is
started on the same pid, so one stuck process costs one thread.

A tick member (see docs/bundle-format.md) carries: ``k``, ``t`` (wall
clock when the tick started), ``mono``, ``dur_s`` (how long its reads
took), ``texts``, ``failures`` and, when the process pass was cut short,
``cut``: {"procs": reason}.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Callable

from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect.jobs import Jobs, run_bounded
from snapcollect.collect.sources import numa, outcome_of, procfs
from snapcollect.collect.sources.processes import PassResult, PassState, pid_from_current, procs_pass


class Sampler:
    def __init__(self, writer: BundleWriter, jobs: Jobs, nodes: list[int], interval_s: float):
        self.writer = writer
        self.jobs = jobs
        self.nodes = nodes
        self.interval = interval_s
        self.state = PassState()
        self.last_pass: PassResult | None = None
        self.last_pass_k: int | None = None
        self.ticks = 0

    def _system_items(self) -> list[tuple[str, Callable]]:
        items: list[tuple[str, Callable]] = [(src, partial(procfs.read_file, src)) for src in procfs.TICK_FILES]
        items += [(numa.node_source(n, "numastat"), partial(numa.read_node_file, n, "numastat"))
                  for n in self.nodes]
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
        job = self.jobs.start(lambda j: procs_pass(j, state, budget), "procs")
        items = self._system_items()
        system = run_bounded(self.jobs, items, deadline_mono, item_timeout_s=max(0.05, 0.5 * self.interval),
                             label="tick")
        for src, _fn in items:
            got = outcome_of(system[src], src)
            if got.has_data:
                texts[src] = got.text
            else:
                failures[src] = (got.status, got.reason or got.status)
        if job is None:
            stuck = ", ".join(sorted({j.current or j.label for j in self.jobs.stuck}))
            failures["procs"] = ("timeout", f"not read: earlier reads are still blocked ({stuck})")
        elif not job.wait_until(deadline_mono):
            what = self.jobs.abandon(job)
            pid = pid_from_current(what)
            if pid is not None:
                state.blocked[pid] = what
            failures["procs"] = ("timeout", f"blocked reading {what}; that process is skipped from now on")
        elif job.error is not None:
            failures["procs"] = ("error", f"{type(job.error).__name__}: {job.error}")
        else:
            res: PassResult = job.result
            texts["procs"] = res.text
            self.last_pass = res
            self.last_pass_k = k
            if res.cut_reason:
                extra["cut"] = {"procs": res.cut_reason}
        if state.blocked:
            extra["skipped_pids"] = sorted(state.blocked)
        extra["dur_s"] = round(time.monotonic() - t_mono, 4)
        self.writer.add_tick(k, t_wall, t_mono, texts, failures, **extra)
        self.ticks += 1
