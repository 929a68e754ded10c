"""What the first screen shows and what gets detail: event markers, the
charts that prove the verdict, the processes the findings are about.

These are layout choices over analysed data (the model and the
incident's findings): nothing here computes a number a finding cites.

- ``event_markers``: OOM kills of the window (``Model.oom.kills``) as
  points, and bursts of BPF reclaim and compaction stalls as spans: stalls
  closer than ``BURST_GAP_S`` to each other are one burst, from the first
  stall's begin to the last one's end. Every time chart gets them.
- ``key_chart_ids``: for each finding, worst first, the first time chart
  of the section its evidence cites (subsections included); pressure is
  always among them when the bundle has a PSI chart and a finding was
  raised. At most ``MAX_KEY_CHARTS``.
- ``involved_pids``: the pids the findings name (evidence values keyed
  ``pid`` or ``*_pid``, at any depth), the OOM victims of the window and
  the ``TOP_GROWERS`` largest growers: they get their full pmap -x.
"""

from __future__ import annotations

from typing import Any, Iterable

from snapcollect.analysis.model import Model
from snapcollect.analysis.results import SEVERITY_ORDER, Finding
from snapcollect.report.model import Chart, Marker, Section

BURST_GAP_S = 1.0
# A burst shorter than this in total stall time is not drawn: a few
# microsecond stalls are not what a reader should look for on a chart.
MIN_BURST_STALL_US = 1000.0
MAX_KEY_CHARTS = 3
TOP_GROWERS = 3
PRESSURE_CHART = "chart-psi"


def _bursts(stalls: Iterable[tuple[float, float]], kind: str) -> list[Marker]:
    out: list[Marker] = []
    start = end = total = None
    count = 0

    def close() -> None:
        if start is not None and total >= MIN_BURST_STALL_US:
            out.append(Marker(start, "stall", f"{count} {kind} stall(s), {total / 1000:.1f} ms in all",
                              max(end, start)))

    for t, lat in sorted(stalls):
        if not isinstance(t, (int, float)) or not isinstance(lat, (int, float)):
            continue
        if start is None or t - end > BURST_GAP_S:
            close()
            start, end, total, count = t, t + lat / 1e6, 0.0, 0
        end = max(end, t + lat / 1e6)
        total += lat
        count += 1
    close()
    return out


def event_markers(m: Model) -> list[Marker]:
    """OOM kills and stall bursts of the window, in time order."""
    marks = [Marker(k.t, "oom", f"OOM kill: {k.victim_comm} ({k.victim_pid})") for k in m.oom.kills
             if isinstance(k.t, (int, float))]
    marks += _bursts(((s.t, s.latency_us) for s in m.ds.bpf.reclaim), "reclaim")
    marks += _bursts(((s.t, s.latency_us) for s in m.ds.bpf.compaction), "compaction")
    return sorted(marks, key=lambda x: x.t)


def time_charts(sections: list[Section]) -> list[Chart]:
    out: list[Chart] = []

    def walk(items: list[Section]) -> None:
        for s in items:
            out.extend(b for b in s.blocks if isinstance(b, Chart) and b.kind != "bar")
            walk(s.subsections)

    walk(sections)
    return out


def _find(sections: list[Section], sid: str) -> Section | None:
    for s in sections:
        if s.id == sid:
            return s
        found = _find(s.subsections, sid)
        if found is not None:
            return found
    return None


def key_chart_ids(findings: list[Finding], sections: list[Section]) -> list[str]:
    """The ids of the charts shown under the verdict (see the module docstring)."""
    serious = sorted(findings, key=lambda f: SEVERITY_ORDER.get(f.severity, 99))
    chosen: list[str] = []
    for f in serious:
        sec = _find(sections, f.evidence.section) if f.evidence.section else None
        if sec is None:
            continue
        charts = [c for c in time_charts([sec]) if c.id not in chosen]
        if charts:
            chosen.append(charts[0].id)
    present = {c.id for c in time_charts(sections)}
    if findings and PRESSURE_CHART in present and PRESSURE_CHART not in chosen[:MAX_KEY_CHARTS]:
        chosen = chosen[:MAX_KEY_CHARTS - 1] + [PRESSURE_CHART]
    return chosen[:MAX_KEY_CHARTS]


def _pids(value: Any, key: str = "") -> set[int]:
    out: set[int] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out |= _pids(v, str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            out |= _pids(v, key)
    elif isinstance(value, int) and not isinstance(value, bool) and (key == "pid" or key.endswith("_pid")):
        out.add(value)
    return out


def involved_pids(m: Model, findings: list[Finding]) -> set[int]:
    """Pids that get their full pmap -x (see the module docstring)."""
    pids: set[int] = set()
    for f in findings:
        pids |= _pids(f.evidence.values)
    pids |= {k.victim_pid for k in m.oom.kills if isinstance(k.victim_pid, int)}
    pids |= {g.pid for g in m.growth[:TOP_GROWERS]}
    return pids
