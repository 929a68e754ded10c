"""Number and time formatting shared by the Markdown, HTML and PDF renderers.

Every renderer prints a cell through ``format_cell`` so that the three
text formats show the same digits. ``Column.fmt`` is a Python format spec
(``".2f"``) or one of the names in ``NAMED`` (see ``report.model``).
Times are the bundle's clock (epoch seconds) printed in UTC, the way the
report's header states the window.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any, Iterable

from snapcollect.analysis.results import SEVERITY_ORDER, Finding
from snapcollect.report.model import Column

NOT_AVAILABLE = "-"


def utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


def hms(t: float) -> str:
    """Epoch seconds -> ``HH:MM:SS`` in UTC."""
    return utc(t).strftime("%H:%M:%S")


def date_time(t: float) -> str:
    """Epoch seconds -> ``YYYY-mm-dd HH:MM:SS UTC``."""
    return utc(t).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(t: float) -> str:
    """Epoch seconds -> ISO 8601 UTC with milliseconds, for JSON."""
    return utc(t).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iec_kb(kb: float) -> str:
    """kB -> the short human form ``free -h`` prints (procps scale_size).

    procps tries ``%.1f`` then ``%ld`` in each power of 1024 and keeps the
    first that fits in 5 characters with its two-letter suffix:
    ``1.5Gi``, ``23Gi``, ``512Mi``; below 1 KiB it prints bytes.
    """
    size = float(kb) * 1024
    if len(f"{int(size)}B") <= 4:
        return f"{int(size)}B"
    for power, unit in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1):
        v = size / 1024 ** power
        text = f"{v:.1f}{unit}"
        if len(text) <= 5:
            return text
        text = f"{int(v)}{unit}"
        if len(text) <= 5:
            return text
    return f"{int(size / 1024 ** 6)}Ei"


def _kb(v: float) -> str:
    return f"{int(round(v)):,}"


def signed_iec_kb(kb: float) -> str:
    """A change in kB, ``free -h`` style with its sign: ``+95Mi``, ``-1.5Gi``, ``0B``."""
    if kb == 0:
        return "0B"
    return ("+" if kb > 0 else "-") + iec_kb(abs(kb))


NAMED = {
    "time": hms,
    "datetime": date_time,
    "iec_kb": iec_kb,
    "+iec_kb": signed_iec_kb,
    "kb": _kb,
}
TIME_FORMATS = ("time", "datetime")


def format_value(value: Any, fmt: str = "") -> str:
    """One value as text: strings and None pass through, numbers use fmt."""
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return NOT_AVAILABLE
    if isinstance(value, (int, float)):
        named = NAMED.get(fmt)
        if named is not None:
            return named(value)
        if fmt:
            try:
                return format(value, fmt)
            except (ValueError, TypeError):
                return str(value)
        return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def format_cell(row: dict, col: Column) -> str:
    return format_value(row.get(col.key), col.fmt)


def format_duration(seconds: float) -> str:
    """A duration for prose: ``850 ms``, ``42 s``, ``5 min 3 s``, ``1 h 2 min``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m} min {s} s" if s else f"{m} min"
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h} h {rest // 60} min" if rest // 60 else f"{h} h"


def time_range(r: tuple[float, float] | None) -> str:
    if not r:
        return NOT_AVAILABLE
    a, b = r
    if hms(a) == hms(b):
        return f"{hms(a)} UTC"
    return f"{hms(a)}–{hms(b)} UTC"


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    """By severity, worst first; the order of the rules within one severity."""
    return sorted(findings, key=lambda f: SEVERITY_ORDER.get(f.severity, 99))


def worst_severity(report) -> str | None:
    if report.worst_severity:
        return report.worst_severity
    found = sorted_findings(report.findings)
    return found[0].severity if found else None


_SLUG = re.compile(r"[^a-z0-9_-]+")


def slug(text: str) -> str:
    """An anchor made from a key: ``SWAP_THRASHING`` -> ``finding-swap_thrashing``."""
    return _SLUG.sub("-", text.lower()).strip("-") or "x"


def finding_anchors(findings: list[Finding]) -> dict[int, str]:
    """Anchor per finding (by id()), unique even when a key repeats."""
    seen: dict[str, int] = {}
    out = {}
    for f in findings:
        base = "finding-" + slug(f.key)
        n = seen.get(base, 0) + 1
        seen[base] = n
        out[id(f)] = base if n == 1 else f"{base}-{n}"
    return out


_ID_KEYS = {"pid", "ppid", "tid", "tgid", "uid", "gid", "nid", "node", "order", "cpu", "seq", "k", "year"}


def _is_id(key: str | None) -> bool:
    if not key:
        return False
    key = key.lower()
    return key in _ID_KEYS or key.endswith(("_pid", "_uid", "_nid", "_id"))


def is_time_key(key: str | None) -> bool:
    """A key whose number is a time (epoch seconds): ``t``, ``*_t``, ``*_at``, ``*_time``."""
    if not key:
        return False
    key = key.lower()
    return key == "t" or key.endswith(("_t", "_at", "_time"))


_is_time = is_time_key


def value_text(v: Any, key: str | None = None) -> str:
    """An evidence value for prose: ``20,354``, ``22.26``, ``0.00123``.

    Identifiers (pid, uid, node...) are printed without separators; a time
    (key ``t``, ``*_t``, ``*_at``, ``*_time`` holding epoch seconds) as
    ``HH:MM:SS`` UTC like the rest of the report.
    """
    if isinstance(v, bool):
        return "yes" if v else "no"
    if _is_time(key) and isinstance(v, (int, float)) and 1e9 <= v < 1e10:
        return hms(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return NOT_AVAILABLE
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if v == 0 or abs(v) >= 0.01:
            return f"{v:.2f}".rstrip("0").rstrip(".")
        return f"{v:.3g}"
    if isinstance(v, int):
        return str(v) if _is_id(key) else f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={value_text(x, k)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "; ".join(value_text(x, key) for x in v)
    if isinstance(v, str):
        return v.strip()
    return format_value(v)


def _count(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def procs_pass_text(pp: Any) -> str | None:
    """The manifest's ``procs_pass`` in a line, when the collector spaced out
    its pass over all processes (a host with many of them); else None."""
    if not isinstance(pp, dict):
        return None
    most = _count(pp.get("max_every_ticks"))
    if most is None or most <= 1:
        return None
    changes = pp.get("changes") if isinstance(pp.get("changes"), list) else []
    pids = max((n for n in (_count(c.get("pids")) for c in changes if isinstance(c, dict)) if n is not None),
               default=None)
    many = f"{pids:,} processes" if pids is not None else "many processes"
    return (f"read every {most} samples at most, not every sample ({many}; "
            "the collector spaced out its pass over them to bound its CPU)")


def cgroups_pass_text(cp: Any) -> str | None:
    """The manifest's ``cgroups_pass`` in a line, when the collector spaced
    out its reads of the memory cgroups; else None."""
    if not isinstance(cp, dict):
        return None
    most = _count(cp.get("max_every_ticks"))
    if most is None or most <= 1:
        return None
    groups = _count(cp.get("groups"))
    which = f"{groups} groups" if groups is not None else "the groups followed"
    return (f"{which} read every {most} samples at most, not every sample "
            "(the collector spaced out its reads of them to bound its CPU)")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def host_speed_text(hs: Any) -> str | None:
    """The manifest's ``host_speed`` in a line, when the host answered so
    slowly that the collector stretched its time bounds; else None."""
    if not isinstance(hs, dict):
        return None
    factor = _number(hs.get("factor"))
    if factor is None or factor <= 1:
        return None
    probe, healthy = _number(hs.get("probe_ms")), _number(hs.get("healthy_ms"))
    took = (f"starting a program and reading two /proc files took {probe:.0f} ms"
            + (f" (healthy: {healthy:.0f} ms)" if healthy else "")) if probe is not None else "the host was slow"
    return f"slow: {took}; the collector's time bounds were stretched {factor:g} times"


def header_items(report) -> list[tuple[str, str]]:
    """The report header as (label, text) pairs, from ``Report.meta``."""
    m = report.meta
    out: list[tuple[str, str]] = []

    def add(label: str, text: str | None) -> None:
        if text:
            out.append((label, text))

    add("Host", m.get("host"))
    add("Kernel", m.get("kernel"))
    window = m.get("window")
    start = m.get("started_at")
    end = m.get("ended_at")
    if window:
        a, b = window
        text = f"{date_time(a)} to {hms(b)} UTC ({format_duration(b - a)} of samples)"
    elif start:
        text = f"{start} to {end or 'unknown (not finished)'}"
    else:
        text = None
    add("Window", text)
    interval = m.get("interval_s")
    if interval is not None:
        extra = []
        if m.get("samples") is not None:
            extra.append(f"{m['samples']} samples")
        if m.get("duration_requested_s") is not None:
            extra.append(f"{format_value(m['duration_requested_s'], 'g')} s requested")
        add("Interval", f"{format_value(interval, 'g')} s" + (f" ({', '.join(extra)})" if extra else ""))
    collector_meta = m.get("collector") if isinstance(m.get("collector"), dict) else {}
    add("Processes", procs_pass_text(collector_meta.get("procs_pass")))
    add("Cgroups", cgroups_pass_text(collector_meta.get("cgroups_pass")))
    add("Host speed", host_speed_text(collector_meta.get("host_speed")))
    collector = []
    if m.get("tool_version"):
        collector.append(f"snapcollect {m['tool_version']}")
    if m.get("format_version") is not None:
        collector.append(f"bundle format {m['format_version']}")
    cost = []
    if m.get("cpu_s") is not None:
        cost.append(f"{format_value(m['cpu_s'], '.2f')} s CPU")
    if m.get("peak_rss_kb") is not None:
        cost.append(f"peak RSS {iec_kb(m['peak_rss_kb'])}")
    # the BPF compile runs in a process of its own: its peak is not the collector's
    bpf_process = collector_meta.get("bpf_process")
    bpf_meta = collector_meta.get("bpf")
    loader = bpf_meta.get("loader") if isinstance(bpf_meta, dict) else None
    if isinstance(bpf_process, dict) and isinstance(bpf_process.get("peak_rss_kb"), int):
        cost.append(f"{'BPF reader' if isinstance(loader, dict) else 'BPF process'} peak RSS "
                    f"{iec_kb(bpf_process['peak_rss_kb'])}")
    if isinstance(loader, dict) and isinstance(loader.get("peak_rss_kb"), int):
        cost.append(f"BPF loader (the compile) peak RSS {iec_kb(loader['peak_rss_kb'])}")
    if cost:
        collector.append("cost " + ", ".join(cost))
    add("Collector", "; ".join(collector))
    if "complete" in m:
        if m["complete"]:
            add("Complete", "yes")
        else:
            why = m.get("incomplete_reason") or (f"stopped by {m['stopped_by']}" if m.get("stopped_by")
                                                 else "collection did not finish")
            add("Complete", f"NO: {why}")
    add("Bundle", m.get("bundle"))
    return out


def missing_rows(report) -> list[tuple[str, str, str]]:
    """(artifact, status, reason) for each artifact not collected."""
    out = []
    for m in report.missing:
        out.append((str(m.get("name", "?")), str(m.get("status", "missing")),
                    str(m.get("reason") or "no reason recorded")))
    return out


def section_titles(sections) -> dict[str, str]:
    """Section id -> title, over the whole tree, for links from findings."""
    out: dict[str, str] = {}

    def walk(items) -> None:
        for s in items:
            out.setdefault(s.id, s.title)
            walk(s.subsections)

    walk(sections)
    return out


def window_start(report, default: float) -> float:
    """Epoch seconds of the window's start: first sample, else started_at."""
    m = report.meta
    if m.get("window"):
        return float(m["window"][0])
    if m.get("started_at"):
        try:
            return datetime.fromisoformat(str(m["started_at"]).replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return default


def offset(t: float, t0: float) -> str:
    """Time since the window's start: ``+4.2 s``, ``+12:05``, ``+1:02:03``."""
    d = t - t0
    sign = "+" if d >= 0 else "-"
    d = abs(d)
    if d < 60:
        return f"{sign}{d:.1f} s"
    s = int(d)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{h}:{m:02d}:{s:02d}" if h else f"{sign}{m}:{s:02d}"


_FILE = re.compile(r"[^A-Za-z0-9_.-]+")


def slug_file(text: str) -> str:
    """A chart id as a safe file name (no slashes, no leading dot)."""
    return _FILE.sub("-", text).strip("-.") or "chart"


def unique(used: set[str], name: str) -> str:
    """name, or name-2, name-3... the first not yet in used (which it joins)."""
    out, n = name, 1
    while out in used:
        n += 1
        out = f"{name}-{n}"
    used.add(out)
    return out


def _merge(values: list, how: str):
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
            and not (isinstance(v, float) and math.isnan(v))]
    if how == "none":
        return None
    if how == "last":
        present = [v for v in values if v is not None]
        return present[-1] if present else None
    if not nums:
        return None
    if how == "mean":
        return sum(nums) / len(nums)
    if how == "max":
        return max(nums)
    if how == "min":
        return min(nums)
    if how == "sum":
        return sum(nums)
    raise ValueError(how)


def merge_plan(columns: list[Column]) -> list[str] | None:
    """How each column merges rows, or None when the table cannot be merged."""
    plan = []
    for c in columns:
        if c.agg in ("mean", "last", "max", "min", "sum", "none"):
            plan.append(c.agg)
        elif c.fmt in TIME_FORMATS:
            plan.append("last")          # sar labels an interval by its end
        elif c.unit.endswith("/s"):
            plan.append("mean")          # equal intervals: mean rate = rate over the span
        else:
            return None
    return plan


def condense_rows(columns: list[Column], rows: list[dict], max_rows: int) -> tuple[list[dict], int] | None:
    """Merge runs of k consecutive rows so that at most max_rows remain.

    Returns (rows, k), or None when the table is short enough or a column
    does not say how to merge.
    """
    if len(rows) <= max_rows:
        return None
    plan = merge_plan(columns)
    if plan is None:
        return None
    k = math.ceil(len(rows) / max_rows)
    out = []
    for i in range(0, len(rows), k):
        chunk = rows[i:i + k]
        out.append({c.key: _merge([r.get(c.key) for r in chunk], how) for c, how in zip(columns, plan)})
    return out, k


def header_line(report) -> str:
    """One line under the title: host, kernel, window and, when it is so, that the bundle is incomplete."""
    m = report.meta
    parts = []
    if m.get("host"):
        parts.append(f"Host {m['host']}")
    if m.get("kernel"):
        parts.append(f"kernel {m['kernel']}")
    window = m.get("window")
    if window:
        a, b = window
        parts.append(f"{date_time(a)[:-4]}–{hms(b)} UTC ({format_duration(b - a)})")
    elif m.get("started_at"):
        parts.append(f"from {m['started_at']}")
    if m.get("complete") is False:
        parts.append("INCOMPLETE bundle (see About this bundle)")
    return " · ".join(str(p) for p in parts)


def top_advice(report) -> tuple[str, str] | None:
    """(key, explanation) of the worst finding above INFO: what happened and what to do next."""
    found = [f for f in sorted_findings(report.findings) if f.severity != "INFO"]
    if not found or not found[0].explanation:
        return None
    return found[0].key, found[0].explanation


def key_charts(report) -> list:
    """The chart blocks named by ``Report.key_charts``, in that order."""
    from snapcollect.report.model import Chart

    by_id: dict[str, Any] = {}

    def walk(items) -> None:
        for s in items:
            for b in s.blocks:
                if isinstance(b, Chart):
                    by_id.setdefault(b.id, b)
            walk(s.subsections)

    walk(report.sections)
    return [by_id[i] for i in report.key_charts if i in by_id]
