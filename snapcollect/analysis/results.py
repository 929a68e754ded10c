"""What analysis concludes about an incident: findings, their evidence, timeline events.

These are the results of analysis, not parts of a document: a finding
says what went wrong (a stable UPPER_SNAKE key, a severity, a sentence)
and cites the artifacts and the time range it came from; a timeline
event places one thing that happened on the bundle's clock. The report
lays them out (``report.model.Report`` holds them); every renderer and
the JSON output read them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["CRIT", "HIGH", "WARN", "INFO"]
SEVERITIES = ("CRIT", "HIGH", "WARN", "INFO")
SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Evidence:
    artifacts: list[str]
    time_range: tuple[float, float] | None   # epoch seconds
    values: dict[str, Any]
    section: str | None = None               # anchor of the section showing it


@dataclass
class Finding:
    key: str                # stable UPPER_SNAKE
    severity: Severity
    title: str
    explanation: str        # plain words, with what to do next
    threshold: str
    threshold_source: str   # a published default, or "heuristic"
    evidence: Evidence


@dataclass
class SkippedRule:
    key: str
    reason: str


@dataclass
class TimelineEvent:
    t: float                # epoch seconds, the bundle's clock
    kind: str               # "pressure", "reclaim", "oom", "swap", "kmsg", "growth", ...
    text: str
    severity: Severity | None = None
    source: str = ""        # artifact name
    section: str | None = None


def worst_severity(findings: list[Finding]) -> Severity | None:
    """The most serious severity among ``findings``, None when there are none."""
    if not findings:
        return None
    return min((f.severity for f in findings), key=lambda s: SEVERITY_ORDER[s])
