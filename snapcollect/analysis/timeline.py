"""One chronological timeline of the window across every source.

Merges, on the bundle's clock (epoch seconds, the time each sample was
read; kernel log and BPF timestamps already converted by the loader):

- pressure: PSI memory avg10 rising above / falling below thresholds
  (/proc/pressure/memory series);
- reclaim: kswapd and direct reclaim episodes (vmstat pgscan_* per
  interval), and, when BPF recorded them, kswapd wake-ups and reclaim
  stalls per task (vmscan tracepoints);
- reclaim, from BPF too: kswapd busy periods per node (runs of
  vmscan:mm_vmscan_kswapd_wake -> sleep closer than 1 s merged) and slab
  shrinker calls of 10 ms or more (vmscan:mm_shrink_slab_start/end), per
  callback and episode;
- oom: each OOM kill (BPF oom:mark_victim and/or the kernel log);
- swap: bursts of swap-in/out (vmstat pswpin/pswpout per interval);
- swap, per process: intervals in which one process waited for swap-in
  more than 10% of the time (delay accounting, delay/taskstats);
- faults: bursts of major faults (vmstat pgmajfault per interval);
- kmsg: kernel log lines that matter (allocation failures, hung tasks,
  swap added);
- growth: a process the growth suspects name (``processes.suspects``),
  when it crossed 1.25x and 64 MiB above its first sight.

Each event names the artifact it comes from and the report section that
shows it.
"""

from __future__ import annotations

from snapcollect.analysis import series
from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.findings.kmsg_events import kernel_events
from snapcollect.analysis.findings.signals import interval_runs, page_kb
from snapcollect.analysis.model import Model
from snapcollect.analysis.oom import is_memcg_kill, memcg_of
from snapcollect.analysis.results import TimelineEvent
from snapcollect.analysis.series import Interval, vm_intervals
from snapcollect.analysis.wording import hms, human_kb, human_ms, kill_label
from snapcollect.bundle.names import (BPF_KSWAPD_RUNS, BPF_KSWAPD_WAKE, BPF_OOM_KILL, BPF_RECLAIM,
                                      BPF_SHRINKER_SLOW, DELAY_TASKSTATS, KMSG, SERIES_PROCS, SERIES_PROC_VMSTAT)

# (PSI line, avg10 threshold %, severity when rising above it)
PSI_LEVELS = (("some", 10.0, "INFO"), ("full", 5.0, "WARN"), ("full", 60.0, "CRIT"))
STALL_BURST_GAP_S = 5.0      # stalls of one task closer than this are one episode
SWAP_BURST_PAGES_S = 256     # heuristic: 1 MiB/s with 4 KiB pages
MAJFLT_BURST_S = 500         # MAJOR_FAULTS' WARN level
KSWAPD_MERGE_GAP_S = 1.0     # kswapd runs of a node closer than this are one busy period
KSWAPD_BUSY_MIN_S = 0.1      # heuristic: shorter busy periods are routine background reclaim
EARLIER_OOM_SHOWN = 3        # OOM kills from before the window listed one by one


def _pressure(ds: Dataset) -> list[TimelineEvent]:
    pts = series.samples(ds, "psi")
    src = series.sources(ds, "psi")[0]
    out = []
    for line, level, sev in PSI_LEVELS:
        above = False
        for i, (t, p) in enumerate(pts):
            v = getattr(p, line)
            if v is None:
                break
            if not above and v.avg10 >= level:
                above = True
                when = "was already above" if i == 0 else "rose above"
                out.append(TimelineEvent(t, "pressure", f"memory pressure ({line} avg10) {when} "
                                         f"{level:g}%: {v.avg10:.1f}%", sev, src, "psi"))
            elif above and v.avg10 < level:
                above = False
                out.append(TimelineEvent(t, "pressure", f"memory pressure ({line} avg10) fell "
                                         f"below {level:g}%: {v.avg10:.1f}%", None, src, "psi"))
    return out


def _interval_bursts(ivs: list[Interval], pred) -> list[list[Interval]]:
    return interval_runs(ivs, pred)


def _reclaim(ds: Dataset) -> list[TimelineEvent]:
    out = []
    kb = page_kb(ds)
    for name, who, sev in (("pgscan_kswapd", "kswapd", "INFO"), ("pgscan_direct", "direct", "WARN")):
        for run in _interval_bursts(vm_intervals(ds, name), lambda i: i.delta > 0):
            pages = sum(i.delta for i in run)
            text = (f"{'kswapd' if who == 'kswapd' else 'direct'} reclaim: {pages} pages scanned "
                    f"({human_kb(pages * kb)}, peak {max(i.rate for i in run):.0f}/s) until "
                    f"{hms(run[-1].t1)}")
            out.append(TimelineEvent(run[0].t0, "reclaim", text, sev, SERIES_PROC_VMSTAT, "sar-B"))
    # BPF: kswapd wake-ups, one event per burst and node.
    by_node: dict[int, list[tuple[float, int]]] = {}
    for t, nid, order in sorted(ds.bpf.kswapd_wakes):
        by_node.setdefault(nid, []).append((t, order))
    for nid, wakes in by_node.items():
        burst: list[tuple[float, int]] = []
        for w in wakes + [None]:
            if w is not None and (not burst or w[0] - burst[-1][0] <= STALL_BURST_GAP_S):
                burst.append(w)
                continue
            if burst:
                out.append(TimelineEvent(
                    burst[0][0], "reclaim", f"kswapd{nid} woken {len(burst)} time(s) (highest order "
                    f"{max(o for _, o in burst)}) until {hms(burst[-1][0])}", "INFO", BPF_KSWAPD_WAKE,
                    "reclaim"))
            burst = [w] if w is not None else []
    # BPF: one event per episode of each task.
    by_task: dict[tuple[int, str], list] = {}
    for s in sorted(ds.bpf.reclaim, key=lambda s: s.t):
        by_task.setdefault((s.pid, s.comm), []).append(s)
    for (pid, comm), stalls in by_task.items():
        episode: list = []
        for s in stalls + [None]:
            if s is not None and (not episode or s.t - episode[-1].t <= STALL_BURST_GAP_S):
                episode.append(s)
                continue
            if episode:
                worst = max(x.latency_us for x in episode)
                kinds = "/".join(sorted({x.kind for x in episode}))
                out.append(TimelineEvent(
                    episode[0].t, "reclaim",
                    f"{kinds} reclaim stalled {comm} (pid {pid}): {len(episode)} stall(s), worst "
                    f"{human_ms(worst)}", "HIGH" if worst >= 100_000 else "WARN", BPF_RECLAIM,
                    "reclaim"))
            episode = [s] if s is not None else []
    return out


def _vmscan(m: Model) -> list[TimelineEvent]:
    v = m.vmscan
    if v is None:
        return []
    out = []
    by_node: dict[int, list] = {}
    for r in v.kswapd_runs:
        by_node.setdefault(r.nid, []).append(r)
    for nid, runs in sorted(by_node.items()):
        period: list = []
        for r in runs + [None]:
            if r is not None and (not period or r.t - max(x.t + x.awake_ns / 1e9 for x in period)
                                  <= KSWAPD_MERGE_GAP_S):
                period.append(r)
                continue
            if period:
                awake = sum(x.awake_ns for x in period) / 1e9
                end = max(x.t + x.awake_ns / 1e9 for x in period)
                if awake >= KSWAPD_BUSY_MIN_S:
                    out.append(TimelineEvent(
                        period[0].t, "reclaim", f"kswapd{nid} busy: awake {awake:.1f} s in {len(period)} "
                        f"run(s) until {hms(end)}", "INFO", BPF_KSWAPD_RUNS, "kswapd-activity"))
            period = [r] if r is not None else []
    by_cb: dict[str, list] = {}
    for c in v.slow_calls:
        by_cb.setdefault(c.callback, []).append(c)
    for cb, calls in sorted(by_cb.items()):
        episode: list = []
        for c in calls + [None]:
            if c is not None and (not episode or c.t - episode[-1].t <= STALL_BURST_GAP_S):
                episode.append(c)
                continue
            if episode:
                worst = max(x.latency_ns for x in episode)
                tasks = sorted({x.comm for x in episode})
                out.append(TimelineEvent(
                    episode[0].t, "reclaim", f"slab shrinker {cb}: {len(episode)} call(s) of 10 ms or more, "
                    f"worst {human_ms(worst / 1000)} (in {', '.join(tasks[:3])})",
                    "HIGH" if worst >= 100_000_000 else "WARN", BPF_SHRINKER_SLOW, "shrinkers"))
            episode = [c] if c is not None else []
    return out


def _ooms(m: Model) -> list[TimelineEvent]:
    out = []
    for k in m.oom.kills:
        where = (f" in memcg {memcg_of(k)}" if is_memcg_kill(k) and memcg_of(k)
                 else " (memcg limit)" if is_memcg_kill(k) else
                 " (system-wide)" if k.memcg is False or k.constraint else "")
        out.append(TimelineEvent(k.t, "oom", f"OOM kill: {kill_label(k)}{where}", "CRIT",
                                 (k.sources or (BPF_OOM_KILL,))[0], "oom"))
    earlier = list(m.oom.earlier)
    # The kernel log kept from before the window can hold many old kills;
    # the most recent ones matter, the rest is one line pointing to the log.
    if len(earlier) > EARLIER_OOM_SHOWN:
        older = earlier[:-EARLIER_OOM_SHOWN]
        out.append(TimelineEvent(older[-1].t, "oom",
                                 f"{len(older)} older OOM kill(s) before the window, the first at "
                                 f"{hms(older[0].t)} (listed in the kernel log section)",
                                 "INFO", KMSG, "kmsg"))
        earlier = earlier[-EARLIER_OOM_SHOWN:]
    for k in earlier:
        out.append(TimelineEvent(k.t, "oom", f"OOM kill before the window: {kill_label(k)}",
                                 "INFO", KMSG, "kmsg"))
    return out


def _swap(ds: Dataset) -> list[TimelineEvent]:
    ins = {(i.t0, i.t1): i for i in vm_intervals(ds, "pswpin")}
    both = [Interval(o.t0, o.t1, o.delta + ins[(o.t0, o.t1)].delta)
            for o in vm_intervals(ds, "pswpout") if (o.t0, o.t1) in ins]
    out = []
    for run in interval_runs(both, lambda i: i.rate >= SWAP_BURST_PAGES_S):
        pin = sum(ins[(i.t0, i.t1)].delta for i in run)
        pout = sum(i.delta for i in run) - pin
        sev = "WARN" if pin and pout else "INFO"
        out.append(TimelineEvent(run[0].t0, "swap", f"swap burst: {pin} pages in, {pout} out "
                                 f"until {hms(run[-1].t1)}", sev, SERIES_PROC_VMSTAT, "sar-W"))
    return out


def _faults(ds: Dataset) -> list[TimelineEvent]:
    out = []
    for run in interval_runs(vm_intervals(ds, "pgmajfault"), lambda i: i.rate > MAJFLT_BURST_S):
        out.append(TimelineEvent(run[0].t0, "faults", f"major faults above {MAJFLT_BURST_S}/s "
                                 f"(peak {max(i.rate for i in run):.0f}/s) until {hms(run[-1].t1)}",
                                 "WARN", SERIES_PROC_VMSTAT, "sar-B"))
    return out


def _kmsg(ds: Dataset) -> list[TimelineEvent]:
    out = []
    for e in kernel_events(ds.kmsg):
        if e.line.t is None or e.kind == "oom_invoked" or (e.kind == "oom" and e.pid is not None):
            continue   # kills are events of their own (_ooms)
        sev = {"alloc_failure": "WARN", "hung_task": "WARN", "oom": "CRIT"}.get(e.kind)
        out.append(TimelineEvent(e.line.t, "kmsg", f"kernel: {e.text[:100]}", sev, KMSG, "kmsg"))
    return out


def _growth(m: Model) -> list[TimelineEvent]:
    out = []
    for g in m.suspects:
        out.append(TimelineEvent(g.crossed_t, "growth", f"{g.comm} (pid {g.pid}) grew from "
                                 f"{human_kb(g.first_kb)} to {human_kb(g.peak_kb)} RSS + swap (peak at "
                                 f"{hms(g.peak_t)})", "INFO", SERIES_PROCS, "top-processes"))
    return out


def _swapin_waits(m: Model) -> list[TimelineEvent]:
    """Intervals in which one process waited for swap-in more than 10% of the time (delay accounting)."""
    d = m.delays
    return [TimelineEvent(b.t0, "swap", f"{b.comm or '?'} (pid {b.pid}) waited {b.wait_ms:.0f} ms for swap-in "
                          f"({100 * b.share:.0f}% of the interval) until {hms(b.t1)}", "WARN",
                          DELAY_TASKSTATS, "delays")
            for b in (d.bursts if d is not None else ())]


def build_timeline(m: Model) -> list[TimelineEvent]:
    """Every event of every source, in time order."""
    events: list[TimelineEvent] = []
    for part in (_pressure, _reclaim, _swap, _faults, _kmsg):
        events.extend(part(m.ds))
    events += _ooms(m) + _growth(m) + _swapin_waits(m) + _vmscan(m)
    order = {"oom": 0, "kmsg": 1, "reclaim": 2, "pressure": 3, "swap": 4, "faults": 5, "growth": 6}
    events.sort(key=lambda e: (e.t, order.get(e.kind, 9)))
    return events
