"""Helpers shared by the section modules: where a snapshot value comes
from, and how an absent source is said in the report."""

from __future__ import annotations

from typing import Any

from snapcollect.analysis import series
from snapcollect.analysis.dataset import Dataset
from snapcollect.report.model import Column, Paragraph

TIME = Column("t", "Time", "time", "left")


def snapshot_meminfo(ds: Dataset, phase: str) -> tuple[dict[str, int] | None, str | None, float | None]:
    """/proc/meminfo at ``start``/``end`` (``analysis.series.at``)."""
    return series.at(ds, "meminfo", phase)


def snapshot_vmstat(ds: Dataset, phase: str) -> tuple[dict[str, int] | None, str | None, float | None]:
    """/proc/vmstat at ``start``/``end`` (``analysis.series.at``)."""
    return series.at(ds, "vmstat", phase)


def why_missing(ds: Dataset, *names: str) -> str:
    """'name: status (reason)' for the first of ``names`` the bundle lacks."""
    for n in names:
        if n in ds.missing:
            status, reason = ds.missing[n]
            return f"`{n}` {status}" + (f": {reason}" if reason else "")
    return f"`{names[0]}` not in this bundle" if names else "not in this bundle"


def absent(ds: Dataset, what: str, *names: str) -> Paragraph:
    return Paragraph(f"No {what}: {why_missing(ds, *names)}.")


def not_measured(name: str, status: tuple[str, str | None], instead: str) -> Paragraph:
    """Why an artifact was not measured, and where the report's reader finds the like instead."""
    st, reason = status
    return Paragraph(f"Not measured (`{name}` {st}): {reason or 'no reason recorded'}. {instead}")


def unless_missing(facts, section) -> list:
    """``[section(facts)]``, or nothing for a fact the bundle predates:
    None, or its artifact's status "missing" (an opt-in BPF measure that was
    off still has a section that says why)."""
    if facts is None or facts.status[0] == "missing":
        return []
    return [section(facts)]


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


HIST_BAR = 40   # bcc's print_log2_hist star width


def stars(count: int, peak: int, width: int = HIST_BAR) -> str:
    """The bar bcc prints beside a bucket (``|*****     |``)."""
    n = int(width * count / peak) if peak else 0
    if count and n == 0:
        n = 1
    return "*" * n
