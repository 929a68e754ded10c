"""Who waited on memory: per-process delay accounting over the window, and
how long a swapped page stays out.

From the ``delay/taskstats`` stream (kernel delay accounting, read per
process through taskstats netlink): each process's swap-in wait
(``swapin_delay_total``: time blocked on a page fault reading from swap),
direct reclaim wait (``freepages_delay_total``), thrashing wait
(``thrashing_delay_total``: waiting on a refaulting page of the working
set, file or anon) and compaction wait (``compact_delay_total``), as ms,
count and share of the window. When the collector switched
``kernel.task_delayacct`` on itself ("enabled for the window"), every
counter started at zero then, so the last read is the window's figure;
when it was already on, the figures are the last read minus the first.

Not counted: the kernel gives a task a delay record only when it is forked
while accounting is on, so with "enabled for the window" a process started
before the switch reads as zeros whatever it waited (the collector marks
its records ``counted: false``, from its start time against the switch's).
Such a process is listed apart (``DelayFacts.uncounted``), never as a
process that did not wait; one that shows waits anyway has them from
threads it started since the switch (``ProcDelay.counted`` False: a lower
bound). When accounting was already on, every process counts.

Swap residency (Little's law): the mean number of pages out in swap over
the window (``SwapTotal - SwapFree`` of the meminfo series) divided by the
rate at which pages come back (``pswpin`` of the vmstat series) is the mean
time a swapped page stays out before it is read back. A mean, not a
histogram: a distribution needs the time of each page's swap-out and
swap-in, which only kprobes on the swap paths reading kernel structs give,
and this collector does not use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.analysis.dataset import Dataset
from snapcollect.parsers.taskstats import KINDS

INTERVAL_SHARE = 0.10     # an interval whose swap-in wait exceeds this share goes on the timeline


@dataclass(frozen=True)
class ProcDelay:
    pid: int
    comm: str
    wait_ms: dict[str, float]        # kind -> wait over the window, ms
    count: dict[str, int]            # kind -> waits over the window
    share: dict[str, float]          # kind -> wait / window length (0..1, can pass 1 for many threads)
    counted: bool = True             # False: started before the switch; figures of newer threads only


@dataclass(frozen=True)
class SwapInBurst:
    t0: float
    t1: float
    pid: int
    comm: str
    wait_ms: float
    share: float


@dataclass(frozen=True)
class SwapResidency:
    mean_swapped_pages: float
    swapin_pages_per_s: float
    mean_s: float                    # Little's law: L / lambda


@dataclass(frozen=True)
class DelayFacts:
    state: str                       # how delay accounting was obtained (manifest ``delayacct.state``)
    window_s: float
    procs: tuple[ProcDelay, ...]     # by swap-in wait, then all memory waits, largest first
    bursts: tuple[SwapInBurst, ...]  # intervals with swap-in wait > INTERVAL_SHARE
    residency: SwapResidency | None
    residency_why: str | None        # why there is no residency estimate
    uncounted: tuple[ProcDelay, ...] = ()   # started before the switch, no delay record: zeros, not "no wait"
    boot_param: bool = False         # booted with ``delayacct``: every task has had a record since boot


def _state(ds: Dataset) -> str:
    d = ds.manifest.get("delayacct") if isinstance(ds.manifest, dict) else None
    st = d.get("state") if isinstance(d, dict) else None
    return st[:200] if isinstance(st, str) else "not collected (a bundle from before delay accounting)"


def _window_s(ds: Dataset) -> float:
    w = ds.manifest.get("window") if isinstance(ds.manifest, dict) else None
    if isinstance(w, dict):
        a, b = w.get("start"), w.get("end")
        if type(a) in (int, float) and type(b) in (int, float) and b > a:
            return float(b - a)
    return ds.window[1] - ds.window[0] if ds.window and ds.window[1] > ds.window[0] else 0.0


def residency(ds: Dataset) -> tuple[SwapResidency | None, str | None]:
    mem = [p.value for p in ds.meminfo if isinstance(p.value, dict)]
    used = [m["SwapTotal"] - m["SwapFree"] for m in mem
            if isinstance(m.get("SwapTotal"), int) and isinstance(m.get("SwapFree"), int)]
    vm = [(p.t, p.value.get("pswpin")) for p in ds.vmstat if isinstance(p.value, dict)]
    vm = [(t, v) for t, v in vm if isinstance(v, int)]
    if not used:
        return None, "no swap figures in the meminfo series"
    if len(vm) < 2 or vm[-1][0] <= vm[0][0]:
        return None, "no pswpin series over the window"
    rate = (vm[-1][1] - vm[0][1]) / (vm[-1][0] - vm[0][0])
    mean_pages = sum(used) / len(used) * 1024 / max(ds.page_size, 1)
    if rate <= 0 or mean_pages <= 0:
        return None, "no page was read back from swap in the window" if mean_pages > 0 else "nothing in swap"
    return SwapResidency(mean_pages, rate, mean_pages / rate), None


def _switch_tick(ds: Dataset) -> int | None:
    d = ds.manifest.get("delayacct") if isinstance(ds.manifest, dict) else None
    v = d.get("switched_on_tick") if isinstance(d, dict) else None
    return v if type(v) is int and v >= 0 else None


def _counted(r, whole_window: bool, switch_tick: int | None) -> bool:
    """Whether the process of read ``r`` has a delay record covering it."""
    if not whole_window:
        return True                  # already on at the start: every process counts
    if r.counted is not None:
        return r.counted
    if switch_tick is not None and r.starttime is not None:
        return r.starttime > switch_tick
    return True                      # unknown (a bundle without start times): as the figures say


def delay_facts(ds: Dataset) -> DelayFacts:
    state = _state(ds)
    window_s = _window_s(ds)
    whole_window = state == "enabled for the window"
    first: dict[int, object] = {}
    last: dict[int, object] = {}
    bursts: list[SwapInBurst] = []
    for r in ds.delays:
        if r.pid in ds.collector_pids:
            continue
        prev = last.get(r.pid)
        same = prev is not None and prev.comm == r.comm and (
            prev.starttime is None or r.starttime is None or prev.starttime == r.starttime)
        if same and r.t > prev.t:
            d_ns = r.totals_ns.get("swapin", 0) - prev.totals_ns.get("swapin", 0)
            share = d_ns / ((r.t - prev.t) * 1e9)
            if share > INTERVAL_SHARE:
                bursts.append(SwapInBurst(prev.t, r.t, r.pid, r.comm, d_ns / 1e6, share))
        elif prev is not None and not same:   # pid reused by another program: start again
            first[r.pid] = r
        first.setdefault(r.pid, r)
        last[r.pid] = r
    switch_tick = _switch_tick(ds)
    procs, uncounted = [], []
    for pid, end in last.items():
        start = first[pid]
        wait, count, share = {}, {}, {}
        for kind in KINDS:
            if kind not in end.totals_ns:
                continue
            base_ns = 0 if whole_window or start is end else start.totals_ns.get(kind, 0)
            base_n = 0 if whole_window or start is end else start.counts.get(kind, 0)
            ns = max(0, end.totals_ns[kind] - base_ns)
            wait[kind] = ns / 1e6
            count[kind] = max(0, end.counts.get(kind, 0) - base_n)
            share[kind] = ns / (window_s * 1e9) if window_s > 0 else 0.0
        counted = _counted(end, whole_window, switch_tick)
        p = ProcDelay(pid, end.comm, wait, count, share, counted)
        if any(wait.values()):
            procs.append(p)
        elif not counted:
            uncounted.append(p)
    procs.sort(key=lambda p: (-p.wait_ms.get("swapin", 0.0), -sum(p.wait_ms.values()), p.pid))
    # the largest first (RSS of the last process sample): those most likely to have waited
    rss = {}
    if ds.procs and isinstance(ds.procs[-1].value, dict):
        rss = {pid: getattr(s, "rss_kb", 0) or 0 for pid, s in ds.procs[-1].value.items()}
    uncounted.sort(key=lambda p: (-rss.get(p.pid, 0), p.pid))
    res, why = residency(ds)
    d = ds.manifest.get("delayacct") if isinstance(ds.manifest, dict) else None
    boot = isinstance(d, dict) and d.get("boot_param") is True
    return DelayFacts(state, window_s, tuple(procs), tuple(bursts), res, why, tuple(uncounted), boot)
