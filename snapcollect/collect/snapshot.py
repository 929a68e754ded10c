"""Snapshots at the start and the end of the window.

One phase reads, in priority order (a deadline cuts what matters least),
every file in a worker thread with a timeout (jobs.run_bounded):
/proc/meminfo, vmstat and swaps, the remaining /proc files, /proc/sys/vm,
transparent hugepage settings, per-node NUMA files, then the memory
cgroups, and the classic commands last. The kernel files cost microseconds
and are the baseline every finding compares with; a command costs an
exec, and on a cold page cache loading free, vmstat or numastat from disk
can take longer than the whole phase may: run first, they once ate the
start snapshot's time and the cgroup baseline was lost. Each artifact is
written to the bundle as soon as it is read. What a deadline or a second
Ctrl-C cuts off is recorded with its reason, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from snapcollect.bundle import names
from snapcollect.bundle.names import (CGROUPS_MEMORY, CMD_FREE, CMD_NUMASTAT, CMD_NUMASTAT_M, CMD_SWAPON,
                                      CMD_VMSTAT_S, FS_MEMFS, NODE_FILES, PROCS_MEMORY, PROCS_OPEN_DELETED,
                                      PROC_MEMINFO, PROC_SWAPS, PROC_SYS_VM, PROC_VMSTAT, SYS_THP)
from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect.clock import Deadline
from snapcollect.collect.jobs import Jobs, run_bounded
from snapcollect.collect.signals import StopFlag
from snapcollect.collect import own_processes
from snapcollect.collect.sources import Outcome, cgroups, numa, outcome_of, procfs, shmem
from snapcollect.collect.sources.commands import Command, run_commands

# artifact source -> argv. Verbatim output of the tools the on-call knows.
COMMANDS: dict[str, list[str]] = {
    CMD_FREE: ["free", "-w"],
    CMD_VMSTAT_S: ["vmstat", "-s"],
    CMD_SWAPON: ["swapon", "--show"],
    CMD_NUMASTAT: ["numastat"],
    CMD_NUMASTAT_M: ["numastat", "-m"],
}

FIRST_FILES = (PROC_MEMINFO, PROC_VMSTAT, PROC_SWAPS)

# One /proc or /sys file may take this long before it counts as blocked
# (slabinfo waits for slab_mutex, pagetypeinfo walks zones under their lock).
ITEM_TIMEOUT_S = 1.0


@dataclass
class HostLayout:
    """What the host offers, found once at the start."""

    nodes: list[int]
    cgroup: tuple[int, str] | None
    cgroups_chosen: list[str] = field(default_factory=list)   # at the start


def record(writer: BundleWriter, name: str, got: Outcome, **extra) -> None:
    """Store an outcome: the bytes when there are any, else the reason."""
    if got.has_data:
        writer.add_file(name, got.data, status=got.status, reason=got.reason, **extra)
    else:
        writer.add_missing(name, got.status if got.status != "ok" else "error",
                           got.reason or "no data", **extra)


def snapshot_sources(layout: HostLayout) -> list[str]:
    """Every source a snapshot covers, for recording what was cut off."""
    out = list(procfs.SNAPSHOT_FILES) + list(COMMANDS) + [PROC_SYS_VM, SYS_THP]
    for n in layout.nodes:
        out += [numa.node_source(n, f) for f in NODE_FILES]
    out.append(CGROUPS_MEMORY)
    out += [FS_MEMFS, PROCS_MEMORY, PROCS_OPEN_DELETED]
    return out


def take_snapshot(phase: str, writer: BundleWriter, layout: HostLayout, jobs: Jobs, deadline: Deadline,
                  stop: StopFlag, *, skip_reason: str | None = None, speed: float = 1.0) -> bool:
    """Take one snapshot; returns True when every source was attempted.

    ``speed``: the host_speed factor; a slow host's reads and commands get
    that many times the bounds a healthy host gets."""
    done: set[str] = set()

    def cut_off(why: tuple[str, str]) -> bool:
        status, reason = why
        for src in snapshot_sources(layout):
            if src not in done:
                writer.add_missing(names.at(src, phase), status, reason)
                done.add(src)
        return False

    def out_of_time() -> tuple[str, str] | None:
        """(status, reason) when the rest of the snapshot must be skipped."""
        if skip_reason:
            return "missing", skip_reason
        if stop.hurry:
            return "missing", "skipped: the run was stopped by a second signal"
        if deadline.expired():
            return "timeout", "not read: the snapshot ran out of time before the deadline"
        return None

    def put(src: str, got: Outcome, **extra) -> None:
        record(writer, names.at(src, phase), got, **extra)
        done.add(src)

    def bounded(items: list[tuple[str, Callable[[], Outcome]]]) -> None:
        """Read sources in worker threads: a read that blocks is a timeout."""
        results = run_bounded(jobs, items, deadline.at, item_timeout_s=ITEM_TIMEOUT_S * speed, label="snapshot")
        for src, _fn in items:
            value = results[src]
            extra = {}
            if isinstance(value, tuple):        # (outcome, unreadable files)
                value, unreadable = value
                if unreadable:
                    extra["unreadable"] = unreadable
            put(src, outcome_of(value, src), **extra)

    if (why := out_of_time()):
        return cut_off(why)
    bounded([(src, partial(procfs.read_file, src)) for src in FIRST_FILES])

    if (why := out_of_time()):
        return cut_off(why)
    items: list[tuple[str, Callable]] = [(src, partial(procfs.read_file, src))
                                         for src in procfs.SNAPSHOT_FILES if src not in done]
    items += [(PROC_SYS_VM, procfs.sysvm), (SYS_THP, procfs.thp)]
    items += [(numa.node_source(n, f), partial(numa.read_node_file, n, f))
              for n in layout.nodes for f in NODE_FILES]
    bounded(items)

    if (why := out_of_time()):
        return cut_off(why)
    name = CGROUPS_MEMORY
    if layout.cgroup is None:
        put(name, Outcome("missing", b"", "no memory cgroup hierarchy mounted (v1 memory controller "
                                          "or v2 with memory in cgroup.controllers)"))
    else:
        version, root = layout.cgroup
        budget = max(0.05, min(1.0 * speed, deadline.remaining() * 0.5))
        job = jobs.start(lambda j: cgroups.collect(j, version, root, budget_s=budget,
                                                  also=tuple(layout.cgroups_chosen)), "cgroups")
        if job is None:
            put(name, Outcome("timeout", b"", "not read: earlier reads of this host are still blocked"))
        elif not job.wait_until(deadline.at):
            what = jobs.abandon(job)
            put(name, Outcome("timeout", b"", f"blocked reading {what} past the deadline"))
        elif job.error is not None:
            put(name, Outcome("error", b"", f"{type(job.error).__name__}: {job.error}"))
        else:
            got, chosen = job.result
            if phase == names.START:
                layout.cgroups_chosen = [c for c in chosen if c != "/"]
            put(name, got)

    if (why := out_of_time()):
        return cut_off(why)
    # Where Shmem lives: cheap (statvfs of a few mounts, one status and
    # cgroup read a process), and the end's open deleted files need the
    # end's process memory to choose whose fds to read.
    own = frozenset(own_processes.pids())
    results = run_bounded(jobs, [(FS_MEMFS, shmem.memfs),
                                 (PROCS_MEMORY, partial(shmem.process_memory, None, layout.cgroup,
                                                          budget_s=shmem.MEMORY_BUDGET_S * speed,
                                                          skip_pids=own))],
                          deadline.at, item_timeout_s=ITEM_TIMEOUT_S * speed, label="snapshot")
    put(FS_MEMFS, outcome_of(results[FS_MEMFS], FS_MEMFS))
    memory = outcome_of(results[PROCS_MEMORY], PROCS_MEMORY)
    put(PROCS_MEMORY, memory)
    if phase == names.END and memory.has_data and not out_of_time():
        got = run_bounded(jobs, [(PROCS_OPEN_DELETED, partial(shmem.open_deleted, None, memory.text,
                                                                 budget_s=shmem.FD_BUDGET_S * speed,
                                                                 skip_pids=own))],
                          deadline.at, item_timeout_s=ITEM_TIMEOUT_S * speed, label="snapshot")
        put(PROCS_OPEN_DELETED, outcome_of(got[PROCS_OPEN_DELETED], PROCS_OPEN_DELETED))
    elif phase == names.END:
        put(PROCS_OPEN_DELETED, Outcome("missing", b"", "not read: no process memory pass to choose from"))
    else:
        done.add(PROCS_OPEN_DELETED)      # read at the end only

    if (why := out_of_time()):
        return cut_off(why)
    cmds = [Command(src, argv) for src, argv in COMMANDS.items()]
    run_commands(cmds, deadline.sooner(3.0 * speed).at)
    for c in cmds:
        put(c.name, c.outcome)
    return not any(a.get("status") == "timeout" for a in writer.artifacts()
                   if a["name"].endswith("@" + phase))
