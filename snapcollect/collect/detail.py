"""Expensive detail for the top N processes by RSS, once, at the end.

The processes are chosen from the last tick's pass (RSS = stat field 24,
in pages). For each: /proc/PID/{status,cmdline,smaps_rollup,smaps} read by
a few worker threads taking pids from a shared queue (one blocked process
holds up one worker, not the phase), and ``pmap -x PID`` run meanwhile,
a few at a time. Everything is bounded by the phase deadline; what is not
back by then is recorded as ``timeout`` with the file that blocked.
"""

from __future__ import annotations

import json
import os
import threading

from snapcollect.bundle.names import PID_PMAP_X, PROCS_TOP, pid_file
from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect import own_processes
from snapcollect.collect.clock import Deadline
from snapcollect.collect.jobs import Job, Jobs
from snapcollect.collect.signals import StopFlag
from snapcollect.collect.snapshot import record
from snapcollect.collect.sources import Outcome
from snapcollect.collect.sources.commands import Command, run_commands
from snapcollect.collect.sources.processes import (DETAIL_FILES, PassResult, PassState, ProcInfo,
                                                   procs_pass, read_detail, top_by_rss)

WORKERS = 4


def _worker(job: Job, queue: list[int], lock: threading.Lock, results: dict[int, dict[str, Outcome]]) -> None:
    while True:
        with lock:
            if not queue:
                return
            pid = queue.pop(0)
            got = results[pid] = {}
        read_detail(job, pid, got)


def choose(last: PassResult | None, n: int, jobs: Jobs, deadline: Deadline) -> list[ProcInfo]:
    """Top ``n`` processes; runs one pass when no tick produced one."""
    if last is None:
        own = frozenset(own_processes.pids())
        job = jobs.start(lambda j: procs_pass(j, PassState(), min(0.5, deadline.remaining()), own), "procs-top")
        if job is None or not job.wait_until(deadline.at) or job.error is not None:
            return []
        last = job.result
    # Never the collector's own (the BPF process holds LLVM's memory and
    # would take a slot and a pmap of its own): the user's top N.
    return top_by_rss(last.procs, n, set(own_processes.pids()))


def collect_detail(writer: BundleWriter, jobs: Jobs, last: PassResult | None, last_k: int | None, n: int,
                   page_kb: int, deadline: Deadline, stop: StopFlag) -> bool:
    """Write procs/top and each chosen process's detail; True when all came back."""
    top = choose(last, n, jobs, deadline)
    listing = [{"pid": p.pid, "comm": p.comm, "rss_kb": p.rss_pages * page_kb, "uid": p.uid, "tick": last_k}
               for p in top]
    writer.add_file(PROCS_TOP, json.dumps(listing, indent=1).encode())
    if not top:
        return last is not None

    queue = [p.pid for p in top]
    lock = threading.Lock()
    results: dict[int, dict[str, Outcome]] = {}
    workers = []
    for _ in range(min(WORKERS, len(queue))):
        w = jobs.start(lambda j: _worker(j, queue, lock, results), "detail")
        if w is not None:
            workers.append(w)

    cmds = [Command(pid_file(p.pid, PID_PMAP_X), ["pmap", "-x", str(p.pid)], cap=16 * 1024 * 1024) for p in top]
    if stop.hurry:
        for c in cmds:
            c.outcome = Outcome("missing", b"", "skipped: the run was stopped by a second signal")
    else:
        run_commands(cmds, deadline.at, parallel=2)

    for w in workers:
        while not w.done.is_set() and not stop.hurry and not deadline.expired():
            w.done.wait(min(0.1, deadline.remaining()))
    complete = True
    blocked = {w.current for w in workers if not w.done.is_set() and w.current}
    for w in workers:
        if not w.done.is_set():
            jobs.abandon(w)
            complete = False
    for p in top:
        got = dict(results.get(p.pid, {}))     # a blocked worker may still add to it
        for name in DETAIL_FILES:
            art = pid_file(p.pid, name)
            if name in got:
                record(writer, art, got[name])
            else:
                path = f"/proc/{p.pid}/{DETAIL_FILES[name][0]}"
                if path in blocked:
                    why = f"blocked reading {path} past the deadline (mmap lock held?)"
                elif p.pid in results:
                    why = "not read: an earlier file of this process blocked"
                else:
                    why = "not read before the deadline"
                writer.add_missing(art, "timeout", why)
                complete = False
    for c in cmds:
        out = c.outcome
        smaps = results.get(int(c.argv[2]), {}).get("smaps")
        if out.status == "error" and smaps is not None and smaps.status == "denied":
            # pmap prints its header line, then fails on smaps like we did.
            out = Outcome("denied", out.data, f"{out.reason}; {smaps.reason}")
        elif out.status == "error" and not os.path.exists(f"/proc/{c.argv[2]}"):
            out = Outcome("missing", out.data, f"{out.reason}: the process exited before pmap read it")
        record(writer, c.name, out)
        complete = complete and out.status != "timeout"
    return complete
