"""Memory pressure stall information (PSI, 4.20+): /proc/pressure/memory.

    some avg10=1.53 avg60=0.40 avg300=0.09 total=2318467
    full avg10=0.91 avg60=0.25 avg300=0.05 total=1521019

``some``: share of time at least one task stalled on memory; ``full``:
share of time all non-idle tasks stalled at once. ``total`` is cumulative
microseconds, so the window's share is d(total) / d(uptime), as sar -q
MEM's %smem and %fmem (``analysis.pressure``, read from the model).
"""

from __future__ import annotations

from snapcollect.analysis import series
from snapcollect.analysis.findings.rule import Hit, SkipRule, rule
from snapcollect.analysis.findings.rules.cgroups import where_reclaim
from snapcollect.analysis.findings.signals import sustained
from snapcollect.analysis.wording import hms
from snapcollect.bundle.names import PROC_PRESSURE_MEMORY, SERIES_PROC_PRESSURE_MEMORY, end_of

FULL_SEVERE_AVG10 = 60.0     # systemd-oomd ManagedOOMMemoryPressureLimit default 60%
FULL_SEVERE_HOLD_S = 30.0    # systemd-oomd ManagedOOMMemoryPressureDurationSec default 30 s
FULL_WARN_PCT = 5.0
FULL_HIGH_PCT = 40.0
SOME_INFO_PCT = 100 * 10 / 6000   # senpai: 10 ms of stall per 6 s interval


_NO_WINDOW = (f"needs two samples of /proc/pressure/memory ({SERIES_PROC_PRESSURE_MEMORY}, "
              "or the @start and @end snapshots)")


def _need_full(ds):
    pts = series.samples(ds, "psi")
    if pts and all(p.full is None for _, p in pts):
        raise SkipRule("needs the 'full' line of /proc/pressure/memory (this kernel prints only 'some')")
    return pts


@rule(
    key="PSI_FULL_SEVERE", area="pressure", severities=("CRIT",),
    detects="All runnable tasks stalled on memory most of the time, for long enough that "
            "systemd-oomd would start killing.",
    title="Severe memory pressure: full avg10 >= 60% for {held_s:.0f} s (peak {_peak:.1f}%)",
    explanation="From {_start} to {_end}, every non-idle task was waiting on memory (reclaim, "
                "swap-in, refaults) for {_peak:.1f}% of the time at worst: the host was "
                "effectively frozen. This is where systemd-oomd kills. Free memory now (stop or "
                "restart the biggest grower) and find what filled it.",
    threshold="PSI memory full avg10 >= 60% held >= 30 s over the series",
    source="systemd-oomd defaults (ManagedOOMMemoryPressureLimit=60%, 30 s)",
    needs=[SERIES_PROC_PRESSURE_MEMORY], section="psi")
def psi_full_severe(m):
    ds = m.ds
    pts = _need_full(ds)
    samples = [(t, p.full.avg10 if p.full else None) for t, p in pts]
    run = sustained(samples, lambda v: v >= FULL_SEVERE_AVG10, FULL_SEVERE_HOLD_S)
    if run is None:
        return None
    return Hit("CRIT", {"held_s": run.seconds, "_peak": max(run.values), "_start": hms(run.t0),
                        "_end": hms(run.t1), "full_avg10_peak": max(run.values)},
               series.sources(ds, "psi"), (run.t0, run.t1))


@rule(
    key="PSI_PRESSURE", area="pressure", severities=("HIGH", "WARN"),
    detects="Over the window, a significant share of time in which all non-idle tasks were "
            "stalled on memory at once (sar -q MEM %fmem).",
    title="Memory pressure{_where}: all tasks stalled {fmem:.1f}% of the window",
    explanation="For {fmem:.1f}% of the window (some task stalled {smem:.1f}%; full avg10 peaked "
                "at {full_avg10_peak:.1f}% at {_peak_at}) no task could make progress because of "
                "memory. Work slows down in proportion. {_advice}",
    threshold="window %fmem >= 5% (WARN), >= 40% (HIGH)",
    source="oomd configuration examples (memory full pressure 5% / 40%)",
    needs=[(SERIES_PROC_PRESSURE_MEMORY, end_of(PROC_PRESSURE_MEMORY))], section="psi")
def psi_pressure(m):
    ds = m.ds
    pts = _need_full(ds)
    share = m.psi_full
    if share is None:
        raise SkipRule(_NO_WINDOW)
    fmem, t0, t1 = share.pct, share.t0, share.t1
    if fmem < FULL_WARN_PCT:
        return None
    smem = m.psi_some.pct if m.psi_some else 0.0
    peak_t, peak = max(((t, p.full.avg10) for t, p in pts if p.full), key=lambda x: x[1])
    # Host PSI counts the stalls at cgroup limits too: when the BPF
    # reclaim stalls say where they were, say so.
    where, advice = where_reclaim(m, m.stall_groups) if m.stall_groups else (None, None)
    if where is None:
        advice = ("Check the reclaim and swap sections for the cause, and the top processes for who "
                  "fills memory.")
    return Hit("HIGH" if fmem >= FULL_HIGH_PCT else "WARN",
               {"fmem": fmem, "smem": smem, "full_avg10_peak": peak, "_peak_at": hms(peak_t),
                "cgroup": where, "_where": f" (reclaim in memory cgroup {where})" if where else "",
                "_advice": advice},
               series.sources(ds, "psi"), (t0, t1))


@rule(
    key="PSI_STALLS", area="pressure", severities=("INFO",),
    detects="Some task stalled on memory for more than a trace of the window: the first sign "
            "that memory is getting tight, before it hurts.",
    title="Memory stalls: some task stalled {smem:.2f}% of the window",
    explanation="Tasks waited on memory {smem:.2f}% of the time (about {_ms_per_6s:.0f} ms per "
                "6 s). Harmless on its own; it says reclaim or refaults have started. Watch the "
                "trend; senpai-style tuning aims just above this level.",
    threshold="window %smem > 0.17% (10 ms of stall per 6 s)",
    source="senpai defaults (facebookincubator/senpai: 10 ms per 6 s)",
    needs=[(SERIES_PROC_PRESSURE_MEMORY, end_of(PROC_PRESSURE_MEMORY))], section="psi")
def psi_stalls(m):
    ds = m.ds
    share = m.psi_some
    if share is None:
        raise SkipRule(_NO_WINDOW)
    smem, t0, t1 = share.pct, share.t0, share.t1
    if smem <= SOME_INFO_PCT:
        return None
    return Hit("INFO", {"smem": smem, "_ms_per_6s": smem / 100 * 6000}, series.sources(ds, "psi"), (t0, t1))
