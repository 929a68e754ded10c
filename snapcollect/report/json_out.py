"""Render a ``Report`` to JSON for machines (documented in docs/report-json.md).

Same content as the other formats, without the layout: metadata, the
artifacts not collected, findings with their evidence, skipped rules,
the timeline, every table (sar tables as rows of ``{time, column: value}``
plus their ``Average:`` row) and the section tree, whose blocks refer to
tables by id. Numbers are the raw values, not the printed text; times
are ISO 8601 UTC strings. NaN and infinities become null (JSON has no
spelling for them). Bump ``REPORT_JSON_VERSION`` on any change that can
break a reader; adding a field does not.
"""

from __future__ import annotations

import json
import math
from typing import Any

from snapcollect import __version__
from snapcollect.report import formatting as F
from snapcollect.report.model import (Chart, FlameGraph, KeyValues, Paragraph, Preformatted, Report, Section,
                                      Table)
from snapcollect.report.printable import printable_report

REPORT_JSON_VERSION = 1


def _clean(v: Any) -> Any:
    """JSON-safe value: tuples to lists, NaN/inf to None, keys to str."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_clean(x) for x in v]
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


def _times(v: Any, key: str = "") -> Any:
    """Evidence values with their times as ISO 8601 strings, as everywhere else in the JSON.

    A time is a number under a key ``formatting`` reads as a time (``t``,
    ``*_t``, ``*_at``, ``*_time``) that lies in epoch seconds (2001-2286),
    at any depth (``kills: [{"t": ...}]``); other values are kept.
    """
    if isinstance(v, dict):
        return {k: _times(x, str(k)) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_times(x, key) for x in v]
    if (F.is_time_key(key) and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and 1e9 <= v < 1e10):
        return _time(float(v))
    return v


def _time(t: float | None) -> str | None:
    return F.iso(t) if isinstance(t, (int, float)) and math.isfinite(t) else None


def _row(row: dict, table: Table, time_keys: set[str]) -> dict:
    out = {}
    for c in table.columns:
        v = row.get(c.key)
        if c.key in time_keys and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = _time(float(v))
        out[c.key] = _clean(v)
    return out


def table_json(t: Table) -> dict:
    time_keys = {c.key for c in t.columns if c.fmt in F.TIME_FORMATS}
    footer = [_row(r, t, time_keys) for r in t.footer]
    average = None
    if t.footer:
        # sar labels its mean row "Average:" in the time column; the label
        # is layout, not data.
        first = t.columns[0].key if t.columns else None
        avg_rows = [r for r in t.footer if isinstance(r.get(first), str) and r[first].lower().startswith("average")]
        chosen = avg_rows[0] if avg_rows else (t.footer[0] if len(t.footer) == 1 else None)
        if chosen is not None:
            average = {k: v for k, v in _row(chosen, t, time_keys).items()
                       if not (k == first and isinstance(chosen.get(first), str))}
    return {
        "id": t.id,
        "caption": t.caption,
        "columns": [{"key": c.key, "title": c.title, "unit": c.unit,
                     **({"type": "time"} if c.key in time_keys else {})} for c in t.columns],
        "rows": [_row(r, t, time_keys) for r in t.rows],
        "average": average,
        "footer": footer,
        "source": list(t.source),
        "note": t.note,
    }


def _chart(c: Chart) -> dict:
    timeseries = c.kind != "bar"
    return {"type": "chart", "id": c.id, "title": c.title, "kind": c.kind, "y_label": c.y_label,
            "x": [_time(x) for x in c.x] if timeseries else _clean(c.x),
            "categories": list(c.categories),
            "series": {k: _clean(list(v)) for k, v in c.series.items()},
            "markers": [{"t": _time(m.t), "end": _time(m.end) if m.end is not None else None, "kind": m.kind,
                         "label": m.label} for m in c.markers] if timeseries else [],
            "note": c.note, "source": list(c.source)}


def _block(b, table_ids: dict[int, str]) -> dict:
    if isinstance(b, Paragraph):
        return {"type": "paragraph", "text": b.text}
    if isinstance(b, Table):
        return {"type": "table", "id": table_ids[id(b)]}
    if isinstance(b, Preformatted):
        return {"type": "preformatted", "caption": b.caption, "text": b.text, "source": list(b.source),
                "collapsed": b.collapsed}
    if isinstance(b, KeyValues):
        return {"type": "key_values", "caption": b.caption, "items": [[k, v] for k, v in b.items]}
    if isinstance(b, Chart):
        return _chart(b)
    if isinstance(b, FlameGraph):
        return {"type": "flamegraph", "id": b.id, "title": b.title, "count_name": b.count_name,
                "folded": [[s, n] for s, n in b.folded], "note": b.note, "source": list(b.source)}
    raise TypeError(f"cannot render block {type(b).__name__}")


def report_dict(report: Report) -> dict:
    """The report as plain JSON-ready data."""
    report = printable_report(report)
    tables: dict[str, dict] = {}
    table_ids: dict[int, str] = {}
    used: set[str] = set()

    def add_table(t: Table) -> str:
        tid = F.unique(used, t.id)
        table_ids[id(t)] = tid
        tables[tid] = table_json(t) | {"id": tid}
        return tid

    # Section tables first, in reading order; data_tables replace a section
    # table of the same id (they are the machine version of it).
    for t in report.all_tables():
        add_table(t)
    for tid, t in report.data_tables.items():
        if tid in tables:
            tables[tid] = table_json(t) | {"id": tid}
        else:
            used.add(tid)
            tables[tid] = table_json(t) | {"id": tid}

    def section(s: Section) -> dict:
        return {"id": s.id, "title": s.title, "level": s.level,
                "blocks": [_block(b, table_ids) for b in s.blocks],
                "subsections": [section(x) for x in s.subsections]}

    findings = []
    for f in F.sorted_findings(report.findings):
        ev = f.evidence
        tr = ev.time_range
        findings.append({
            "key": f.key, "severity": f.severity, "title": f.title, "explanation": f.explanation,
            "threshold": f.threshold, "threshold_source": f.threshold_source,
            "evidence": {
                "artifacts": list(ev.artifacts),
                "time_range": {"start": _time(tr[0]), "end": _time(tr[1])} if tr else None,
                "values": _clean(_times(ev.values)),
                "section": ev.section,
            },
        })
    timeline = [{"t": _time(e.t), "kind": e.kind, "text": e.text, "severity": e.severity, "source": e.source,
                 "section": e.section} for e in sorted(report.timeline, key=lambda e: e.t)]
    meta = _clean(dict(report.meta))
    if isinstance(report.meta.get("window"), (list, tuple)) and len(report.meta["window"]) == 2:
        a, b = report.meta["window"]
        meta["window"] = {"start": _time(a), "end": _time(b)}
    for key, value in report.meta.items():
        # Times in meta are ISO strings too (stopped_at: epoch seconds in the model).
        if key.endswith("_at") and isinstance(value, (int, float)) and not isinstance(value, bool):
            meta[key] = _time(float(value))
    return {
        "report_json_version": REPORT_JSON_VERSION,
        "generator": {"name": "snapcollect", "version": __version__},
        "meta": meta,
        "missing": _clean(report.missing),
        "worst_severity": F.worst_severity(report),
        "verdict": report.verdict,
        "findings": findings,
        "skipped_rules": [{"key": s.key, "reason": s.reason} for s in report.skipped_rules],
        "timeline": timeline,
        "key_charts": list(report.key_charts),
        "tables": list(tables.values()),
        "sections": [section(s) for s in report.sections],
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
