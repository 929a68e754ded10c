"""Kernel log lines an expert looks for in a memory incident.

Input: the kernel log records of the window (/dev/kmsg), plus the lines
kept from before it. See ``kmsg_events`` for the texts recognised:

    python3: page allocation failure: order:4, mode:0x40dc0(GFP_KERNEL|__GFP_COMP)
    INFO: task kworker/0:1:123 blocked for more than 120 seconds.
    Out of memory: Killed process 4711 (java) total-vm:...
"""

from __future__ import annotations

from snapcollect.analysis.findings.kmsg_events import kernel_events
from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.analysis.wording import hms, kill_label
from snapcollect.bundle.names import KMSG


def _range(evs):
    ts = [e.line.t for e in evs if e.line.t is not None]
    return (min(ts), max(ts)) if ts else None


@rule(
    key="KMSG_ALLOC_FAILURE", area="kmsg", severities=("WARN",),
    detects="The kernel logged that a memory allocation failed (\"page allocation failure\", "
            "SLUB unable to allocate): some kernel operation did not get memory.",
    title="Kernel allocation failures: {count} ({_first})",
    explanation="The kernel log shows {count} allocation failure(s) in the window, e.g. "
                "\"{_example}\". Highest order {max_order}. Failures of order > 3 point at "
                "fragmentation (see HIGH_FRAGMENTATION); order 0-3 failures at real exhaustion "
                "or atomic allocations outrunning kswapd (raise vm.min_free_kbytes).",
    threshold="any \"page allocation failure\" or \"SLUB: Unable to allocate\" line in the window",
    source="kernel mm/page_alloc.c warn_alloc(); mm/slub.c slab_out_of_memory()",
    needs=[KMSG], section="kmsg")
def kmsg_alloc_failure(m):
    ds = m.ds
    evs = [e for e in kernel_events(ds.kmsg) if e.kind == "alloc_failure"]
    if not evs:
        return None
    orders = [e.order for e in evs if e.order is not None]
    first = evs[0]
    return Hit("WARN", {
        "count": len(evs), "_first": f"first {first.comm or 'kernel'} at {hms(first.line.t)}",
        "_example": first.text[:120], "max_order": max(orders) if orders else "unknown",
        "lines": [e.text[:200] for e in evs[:5]],
    }, [KMSG], _range(evs))


@rule(
    key="KMSG_HUNG_TASK", area="kmsg", severities=("WARN",),
    detects="The kernel's hung-task detector saw tasks blocked in uninterruptible sleep for "
            "minutes; under memory pressure often stuck in reclaim or on I/O.",
    title="Hung tasks: {count} task(s) blocked, such as {_example}",
    explanation="khungtaskd reported {count} task(s) blocked for longer than "
                "kernel.hung_task_timeout_secs. The stack traces follow those lines in the kernel "
                "log section: reclaim, writeback or a filesystem lock in them ties the hang to "
                "memory.",
    threshold="any \"blocked for more than N seconds\" line in the window",
    source="kernel/hung_task.c (kernel.hung_task_timeout_secs, default 120 s)",
    needs=[KMSG], section="kmsg")
def kmsg_hung_task(m):
    ds = m.ds
    evs = [e for e in kernel_events(ds.kmsg) if e.kind == "hung_task"]
    if not evs:
        return None
    names = list(dict.fromkeys(f"{e.comm} (pid {e.pid})" for e in evs))
    return Hit("WARN", {"count": len(names), "_example": ", ".join(names[:3]),
                        "lines": [e.text[:200] for e in evs[:5]]}, [KMSG], _range(evs))


@rule(
    key="OOM_BEFORE_WINDOW", area="kmsg", severities=("INFO",),
    detects="OOM kills in the kernel log from before the window: the incident may have "
            "happened before snapcollect started.",
    title="Earlier OOM kill(s) in the kernel log: {_victims}",
    explanation="The kernel log kept from before the window shows {count} OOM kill(s), the last "
                "at {_last}. They are not part of this window's figures, but they are probably "
                "why someone is looking: read the kernel log section for the full OOM report.",
    threshold="any OOM kill line in the kernel log lines from before the window",
    source="kernel mm/oom_kill.c OOM report",
    needs=[KMSG], section="kmsg")
def oom_before_window(m):
    kills = m.oom.earlier
    if not kills:
        return None
    labels = list(dict.fromkeys(kill_label(k) for k in kills))
    return Hit("INFO", {"_victims": ", ".join(labels[-3:]), "count": len(kills),
                        "_last": hms(kills[-1].t)}, [KMSG], (kills[0].t, kills[-1].t))
