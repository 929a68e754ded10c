"""Helpers shared by the section modules: where a snapshot value comes
from, and how an absent source is said in the report."""

from __future__ import annotations

from typing import Any

from snapcollect.analysis.dataset import Dataset
from snapcollect.report.model import Column, Paragraph

TIME = Column("t", "Time", "time", "left")


def _snapshot_or_series(ds: Dataset, phase: str, source: str):
    """``source`` (``meminfo`` or ``vmstat``) at ``start``/``end``: the
    snapshot, else the first/last sample of the series.

    Returns (parsed text, artifact name, time).
    """
    snap = ds.start if phase == "start" else ds.end
    value = getattr(snap, source)
    if value is not None:
        return value, f"proc/{source}@{phase}", snap.t
    series = getattr(ds, source)
    if series:
        p = series[0] if phase == "start" else series[-1]
        return p.value, f"series/proc/{source}", p.t
    return None, None, None


def snapshot_meminfo(ds: Dataset, phase: str) -> tuple[dict[str, int] | None, str | None, float | None]:
    """/proc/meminfo at ``start``/``end`` (see ``_snapshot_or_series``)."""
    return _snapshot_or_series(ds, phase, "meminfo")


def snapshot_vmstat(ds: Dataset, phase: str) -> tuple[dict[str, int] | None, str | None, float | None]:
    """/proc/vmstat at ``start``/``end`` (see ``_snapshot_or_series``)."""
    return _snapshot_or_series(ds, phase, "vmstat")


def why_missing(ds: Dataset, *names: str) -> str:
    """'name: status (reason)' for the first of ``names`` the bundle lacks."""
    for n in names:
        if n in ds.missing:
            status, reason = ds.missing[n]
            return f"`{n}` {status}" + (f": {reason}" if reason else "")
    return f"`{names[0]}` not in this bundle" if names else "not in this bundle"


def absent(ds: Dataset, what: str, *names: str) -> Paragraph:
    return Paragraph(f"No {what}: {why_missing(ds, *names)}.")


def mem_total(ds: Dataset) -> int | None:
    m, _, _ = snapshot_meminfo(ds, "end")
    return (m or {}).get("MemTotal")


def uniq(items: list[Any]) -> list[Any]:
    seen: dict[Any, None] = {}
    for i in items:
        seen.setdefault(i, None)
    return list(seen)


def thin_indexes(n: int, max_rows: int) -> list[int]:
    """Indexes of at most ``max_rows + 1`` samples out of ``n``, evenly spaced,
    always the first and the last (sar -i: records at least N s apart)."""
    if n <= max_rows + 1:
        return list(range(n))
    step = -(-(n - 1) // max_rows)
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx
