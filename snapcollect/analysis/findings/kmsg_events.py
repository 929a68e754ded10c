"""Kernel log lines that matter for memory, recognised from /dev/kmsg records.

The collector stores the kernel log as records (``KmsgLine``: seq, kernel
timestamp, bundle-clock estimate, priority, text). This module classifies
the texts; OOM kills are rebuilt from the pair of lines the kernel prints
(mm/oom_kill.c, 4.19+ for the ``oom-kill:`` summary line):

    python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
    oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/t,task_memcg=/t,task=python3,pid=4711,uid=0
    Memory cgroup out of memory: Killed process 4711 (python3) total-vm:214236kB, anon-rss:64812kB, file-rss:4096kB, shmem-rss:0kB, UID:0 pgtables:472kB oom_score_adj:0
    python3: page allocation failure: order:4, mode:0x40dc0(GFP_KERNEL|__GFP_COMP), nodemask=(null)
    INFO: task kworker/0:1:123 blocked for more than 120 seconds.

Kernels before 4.19 print "Out of memory: Kill process N (comm) score S or
sacrifice child" and then "Killed process N (comm) total-vm:...".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from snapcollect.parsers.records import KmsgLine, OomKill

_KILLED = re.compile(r"(?:(Memory cgroup out of memory|Out of memory)[^:]*: )?Killed process (\d+) \((.*?)\)(?=\s+total-vm|,|\s*$)"
                     r"(?: total-vm:(\d+)kB, anon-rss:(\d+)kB, file-rss:(\d+)kB, shmem-rss:(\d+)kB)?"
                     r"(?:,? UID:(\d+))?(?: pgtables:(\d+)kB)?(?: oom_score_adj:(-?\d+))?")
_SUMMARY = re.compile(r"oom-kill:(\S+)")
_INVOKED = re.compile(r"^(.*?) invoked oom-killer: .*?order=(-?\d+)")
_ALLOC_FAIL = re.compile(r"^(.*?): page allocation failure: order:(\d+), mode:(\S+)")
_HUNG = re.compile(r"task (.+?):(\d+) blocked for more than (\d+) seconds")
_SWAPON = re.compile(r"Adding (\d+)k swap on (\S+)")


@dataclass(frozen=True)
class KernelEvent:
    """One kernel log line classified: ``kind`` is oom, alloc_failure, hung_task, swap."""

    kind: str
    line: KmsgLine
    comm: str | None = None
    pid: int | None = None
    order: int | None = None
    text: str = ""


def classify(line: KmsgLine) -> KernelEvent | None:
    text = line.text
    m = _KILLED.search(text)
    if m:
        return KernelEvent("oom", line, m.group(3), int(m.group(2)), None, text)
    m = _INVOKED.search(text)
    if m:
        return KernelEvent("oom_invoked", line, m.group(1), None, int(m.group(2)), text)
    if "Out of memory and no killable processes" in text:
        return KernelEvent("oom", line, None, None, None, text)
    m = _ALLOC_FAIL.search(text)
    if m:
        return KernelEvent("alloc_failure", line, m.group(1), None, int(m.group(2)), text)
    if "SLUB: Unable to allocate memory" in text:
        return KernelEvent("alloc_failure", line, None, None, None, text)
    m = _HUNG.search(text)
    if m:
        return KernelEvent("hung_task", line, m.group(1), int(m.group(2)), None, text)
    m = _SWAPON.search(text)
    if m:
        return KernelEvent("swap", line, None, None, None, text)
    return None


def kernel_events(lines: list[KmsgLine], in_window: bool | None = True) -> list[KernelEvent]:
    """Classified lines; ``in_window``: True only the window, False only before it, None all."""
    out = []
    for ln in lines:
        if in_window is not None and ln.before_window == in_window:
            continue
        ev = classify(ln)
        if ev:
            out.append(ev)
    return out


def _summary_fields(text: str) -> dict[str, str]:
    m = _SUMMARY.search(text)
    if not m:
        return {}
    out = {}
    for part in m.group(1).split(","):
        k, _, v = part.partition("=")
        out[k] = v
    return out


def oom_kills_from_kmsg(lines: list[KmsgLine]) -> list[OomKill]:
    """OOM kills rebuilt from the kernel log (victim, memcg, rss), in log order."""
    kills: list[OomKill] = []
    summary: dict[str, str] = {}
    trigger: str | None = None
    for ln in lines:
        text = ln.text
        inv = _INVOKED.search(text)
        if inv:
            trigger, summary = inv.group(1), {}
            continue
        if "oom-kill:" in text:
            summary = _summary_fields(text)
            continue
        m = _KILLED.search(text)
        if not m or ln.t is None:
            continue
        pid = int(m.group(2))
        if summary.get("pid") and summary.get("pid") != str(pid):
            summary = {}
        constraint = summary.get("constraint")
        memcg = None
        if constraint:
            memcg = constraint == "CONSTRAINT_MEMCG"
        elif m.group(1):
            memcg = m.group(1).startswith("Memory cgroup")
        num = lambda i: int(m.group(i)) if m.group(i) is not None else None  # noqa: E731
        kills.append(OomKill(
            t=ln.t, victim_pid=pid, victim_comm=m.group(3), trigger_comm=trigger, memcg=memcg,
            constraint=constraint, oom_memcg=summary.get("oom_memcg"),
            task_memcg=summary.get("task_memcg"), total_vm_kb=num(4), anon_rss_kb=num(5),
            file_rss_kb=num(6), shmem_rss_kb=num(7), uid=num(8), pgtables_kb=num(9),
            oom_score_adj=num(10), sources=("kmsg",)))
        summary, trigger = {}, None
    return kills
