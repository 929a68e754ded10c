"""The one-screen summary for a terminal: verdict, top findings, what to do,
where the bundle is and how to render it.

Printed by ``snapcollect report BUNDLE`` without ``-o`` when stdout is a
terminal (off a terminal, Markdown goes to stdout as before) and at the
end of ``snapcollect collect`` on a terminal. At most ``MAX_LINES`` lines
of at most ``WIDTH`` columns; the model's Markdown fields are shown as
plain text (backticks and emphasis dropped), bundle strings through
``printable`` like every other output.
"""

from __future__ import annotations

import re
import textwrap

from snapcollect.report import formatting as F
from snapcollect.report.model import Report
from snapcollect.report.printable import printable

WIDTH = 79
MAX_LINES = 22
TOP_FINDINGS = 6
_MARKUP = re.compile(r"\*\*|`|\[([^\]]*)\]\(#[^)]*\)")


def plain(md: str) -> str:
    """Inline Markdown of the model as terminal text: ``**a** `b` [c](#d)`` -> ``a b c``."""
    return " ".join(_MARKUP.sub(lambda m: m.group(1) or "", printable(md or "")).split())


def _wrap(text: str, first: str, rest: str, lines: int) -> list[str]:
    out = textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest) or [first.rstrip()]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][:WIDTH - 3].rstrip() + "..."
    return out


def summary_text(report: Report, bundle_path: str, command: str = "snapcollect") -> str:
    """The summary as text, ending with a newline."""
    worst = F.worst_severity(report)
    head = f"snapcollect: {worst or 'no findings'}: "
    lines = _wrap(plain(report.verdict) or "No finding was raised on this bundle.", head, "  ", 5)
    found = F.sorted_findings(report.findings)
    if found:
        lines.append("  findings:")
        for f in found[:TOP_FINDINGS]:
            lines += _wrap(plain(f.title), f"    {f.severity:<4} {f.key}: ", "        ", 1)
        if len(found) > TOP_FINDINGS:
            lines.append(f"    (and {len(found) - TOP_FINDINGS} more in the report)")
    advice = F.top_advice(report)
    if advice is not None:
        lines += _wrap(plain(advice[1]), "  what to do: ", "    ", 4)
    if report.meta.get("complete") is False:
        lines += _wrap(f"incomplete bundle: {printable(str(report.meta.get('incomplete_reason') or ''))}",
                       "  ", "    ", 2)
    shown = printable(bundle_path)
    lines.append(f"  bundle: {shown}")
    lines.append(f"  render: {command} report {shown} -o report.html  (or .pdf .md .json)")
    lines.append(f"  CSV:    {command} export {shown} -o series/")
    return "\n".join(lines[:MAX_LINES]) + "\n"
