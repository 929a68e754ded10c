"""Kernel log lines that matter for memory, recognised from /dev/kmsg records.

The collector stores the kernel log as records (``KmsgLine``: seq, kernel
timestamp, bundle-clock estimate, priority, text). This module classifies
the texts (OOM kills themselves are rebuilt by ``parsers.oom_report`` and
merged by ``analysis.oom``):

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

from snapcollect.parsers.oom_report import KILLED
from snapcollect.parsers.records import KmsgLine

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
    m = KILLED.search(text)
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
