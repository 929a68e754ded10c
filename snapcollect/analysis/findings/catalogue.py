"""The catalogue of findings rules: ``snapcollect rules`` and docs/findings.md.

Both are generated from the rule declarations (``engine.all_rules``), so
the documentation cannot drift from the code: a test compares
docs/findings.md with ``markdown()``. Regenerate it with
``snapcollect rules --markdown > docs/findings.md``.
"""

from __future__ import annotations

import textwrap

from snapcollect.analysis.findings.engine import Rule, all_rules

WIDTH = 80

AREAS = {
    "oom": "OOM events",
    "pressure": "Pressure (PSI)",
    "memory": "Available memory",
    "swap": "Swap",
    "reclaim": "Reclaim",
    "faults": "Page faults",
    "slab": "Kernel memory (slab)",
    "zones": "Zones and fragmentation",
    "hugepages": "Compaction and huge pages",
    "numa": "NUMA",
    "commit": "Commit",
    "processes": "Processes",
    "kmsg": "Kernel log",
    "bpf": "The BPF collection",
}

_HEADER = """\
# Findings catalogue

Generated from the rule declarations in `snapcollect/analysis/findings/rules/`
by `snapcollect rules --markdown`; do not edit by hand (a test compares this
file with the code).

Each rule is a pure function over the parsed bundle. It returns a finding
(stable key, severity, title, explanation with what to do next, threshold and
its source, and evidence: artifacts, time range, the values that crossed the
threshold and the report section that shows them) or nothing. A rule whose
inputs were not collected is listed in the report as skipped, with the
reason; it is never silently passed.

Severities: **CRIT** (something was killed or the host is about to be),
**HIGH** (users feel it now), **WARN** (needs attention), **INFO** (context).
Counters are evaluated as deltas over the window; levels must hold over the
series (30 s, or half the window when it is shorter), not in one sample.
"Heuristic" marks thresholds for which no published number was found.

Inputs are artifact names (docs/bundle-format.md); `a or b` means either will do.
"""


def _needs(r: Rule) -> str:
    return ", ".join(" | ".join(g) for g in r.needs)


def markdown() -> str:
    rules = all_rules()
    out = [_HEADER, "## Summary", "",
           "| key | severity | detects |", "|---|---|---|"]
    for r in rules:
        out.append(f"| [{r.key}](#{r.key.lower()}) | {'/'.join(r.severities)} | "
                   f"{r.detects.replace('|', '/')} |")
    area = None
    for r in rules:
        if r.area != area:
            area = r.area
            out += ["", f"## {AREAS.get(area, area)}"]
        out += ["", f"### {r.key}", "",
                f"- **Severity:** {'/'.join(r.severities)}",
                f"- **Detects:** {r.detects}",
                f"- **Threshold:** {r.threshold}",
                f"- **Source:** {r.source}",
                f"- **Inputs:** {_needs(r).replace('|', 'or')}",
                f"- **Report section:** `#{r.section}`"]
    return "\n".join(out) + "\n"


def _field(label: str, text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"  {label:<10} ",
                         subsequent_indent=" " * 13, break_on_hyphens=False) or [f"  {label}"]


def text() -> str:
    """The terminal listing: one block per rule, 80 columns."""
    rules = all_rules()
    out = [f"{len(rules)} rules; severities CRIT, HIGH, WARN, INFO. The full catalogue:",
           "`snapcollect rules --markdown` (docs/findings.md).", ""]
    for r in rules:
        out.append(f"{r.key}  [{'/'.join(r.severities)}]")
        out += _field("detects:", r.detects)
        out += _field("threshold:", r.threshold)
        out += _field("source:", r.source)
        out.append("")
    return "\n".join(out)


def run_rules(args) -> int:
    print(markdown() if getattr(args, "markdown", False) else text(), end="")
    return 0
