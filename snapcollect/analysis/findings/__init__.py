"""Findings: rules over a Dataset that say what went wrong, with evidence.

``apply_findings(report, dataset)`` runs every rule (``engine``), builds
the timeline and the verdict, and fills the Report. The rules live in
``rules/``, one module per area; ``catalogue`` prints them and generates
docs/findings.md.
"""

from snapcollect.analysis.findings.engine import apply_findings, evaluate

__all__ = ["apply_findings", "evaluate"]
