"""The incident: the model of a bundle and what analysis concludes from it.

``build_incident(dataset)`` builds the model once (``analysis.model``),
runs every rule over it (``findings.engine``), then the timeline and the
verdict, which read the same model and the findings. The report lays the
incident out; it computes nothing of its own that a finding could
contradict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snapcollect.analysis.dataset import Dataset
from snapcollect.analysis.findings.engine import evaluate
from snapcollect.analysis.model import Model, build_model
from snapcollect.analysis.results import Finding, Severity, SkippedRule, TimelineEvent, worst_severity
from snapcollect.analysis.timeline import build_timeline
from snapcollect.analysis.verdict import build_verdict


@dataclass
class Incident:
    model: Model
    findings: list[Finding] = field(default_factory=list)
    skipped_rules: list[SkippedRule] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)
    verdict: str = ""
    worst_severity: Severity | None = None

    @property
    def ds(self) -> Dataset:
        return self.model.ds


def build_incident(ds: Dataset) -> Incident:
    """Model, findings, timeline and verdict of a dataset; a failing step is a skipped rule, never fatal."""
    m = build_model(ds)
    findings, skipped = evaluate(m)
    inc = Incident(m, findings, skipped, worst_severity=worst_severity(findings))
    try:
        inc.timeline = build_timeline(m)
    except Exception as exc:  # the timeline must never cost the report
        inc.skipped_rules.append(SkippedRule("TIMELINE", f"timeline failed: {exc.__class__.__name__}: {exc}"))
    try:
        inc.verdict = build_verdict(m, findings, inc.timeline)
    except Exception as exc:  # nor must the verdict
        inc.skipped_rules.append(SkippedRule("VERDICT", f"verdict failed: {exc.__class__.__name__}: {exc}"))
    return inc
