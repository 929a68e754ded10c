"""Render a ``Report`` to GitHub-flavoured Markdown.

Layout, top to bottom: the header (host, kernel, window, collector and
its cost, completeness, artifacts not collected and why), the verdict
with the worst severity and the findings table (each finding linking to
its details and to the section holding its evidence), the skipped rules
folded in a ``<details>``, the timeline, the findings in detail, then one
heading per section. Every heading is preceded by ``<a id="...">`` with
the section's id, so ``#sar-B`` links keep working whatever the title.

Tables are padded so that columns line up in the raw text too; numbers
go through ``Column.fmt``. Charts and flame graphs are referenced as SVG
files under ``<stem>-charts/``; ``render_markdown`` returns what to
write there and the caller writes it (or, for stdout, says in one line
per chart that it was not written).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from snapcollect.report import formatting as F
from snapcollect.report.model import (Chart, Column, FlameGraph, KeyValues, Paragraph, Preformatted,
                                      Report, Section, Table)

# Anchors the renderers use for their own parts of the page; section ids
# from the report builder must not reuse them.
RESERVED_ANCHORS = ("top", "header", "not-collected", "verdict", "skipped-rules", "timeline",
                    "finding-details", "contents")


@dataclass
class Asset:
    """A picture the Markdown refers to: path relative to the .md, and its block."""

    path: str
    block: Chart | FlameGraph


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _cell(text: str) -> str:
    """A table cell: pipes and backslashes escaped, one line, no raw HTML.

    A process named ``<defunct>`` would otherwise be taken for an HTML tag
    and vanish on GitHub.
    """
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return _TAG_START.sub("\\\\<", text)


def md_table(headers: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    """A GFM table, padded so the columns line up in the raw text."""
    headers = [_cell(h) for h in headers]
    rows = [[_cell(c) for c in r] for r in rows]
    widths = [max(3, len(h)) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            if len(c) > widths[i]:
                widths[i] = len(c)

    def line(cells: list[str]) -> str:
        parts = []
        for i, c in enumerate(cells):
            parts.append(c.rjust(widths[i]) if align[i] == "right" else c.ljust(widths[i]))
        return "| " + " | ".join(parts) + " |"

    rule = []
    for i, w in enumerate(widths):
        rule.append("-" * (w - 1) + ":" if align[i] == "right" else "-" * w)
    out = [line(headers), "| " + " | ".join(rule) + " |"]
    out.extend(line(r) for r in rows)
    return out


def _source(names: list[str]) -> str:
    return "Source: " + ", ".join(f"`{n}`" for n in names) if names else ""


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return fence


class _Writer:
    def __init__(self, report: Report, chart_dir: str | None, stdout_note: bool,
                 charts_missing: str | None = None):
        self.report = report
        self.chart_dir = chart_dir
        self.stdout_note = stdout_note
        self.charts_missing = charts_missing
        self.lines: list[str] = []
        self.assets: list[Asset] = []
        self.titles = F.section_titles(report.sections)
        self.used_names: set[str] = set()

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def heading(self, level: int, anchor: str, title: str) -> None:
        self.blank()
        self.add(f'<a id="{anchor}"></a>', "", "#" * max(1, min(level, 6)) + " " + title, "")

    def section_link(self, sid: str | None) -> str:
        if not sid:
            return ""
        return f"[{self.titles.get(sid, sid)}](#{sid})"

    # -- top of the report ------------------------------------------

    def header(self) -> None:
        r = self.report
        host = r.meta.get("host") or "unknown host"
        self.add(f'<a id="top"></a>', "", f"# Memory report: {host}", "")
        for label, text in F.header_items(r):
            self.add(f"- **{label}:** {text}")
        notes = r.meta.get("notes") or []
        if notes:
            self.blank()
            for n in notes:
                self.add(f"> {n}", ">")
            self.lines.pop()
        missing = F.missing_rows(r)
        if missing:
            self.heading(3, "not-collected", f"Not collected ({len(missing)})")
            self.add(*md_table(["Artifact", "Status", "Why"], [list(m) for m in missing],
                               ["left", "left", "left"]))

    def verdict(self) -> None:
        r = self.report
        worst = F.worst_severity(r)
        findings = F.sorted_findings(r.findings)
        anchors = F.finding_anchors(findings)
        self.heading(2, "verdict", f"Verdict: {worst}" if worst else "Verdict: no findings")
        if worst:
            self.add(f"**Worst severity: {worst}.** " + (r.verdict or ""))
        else:
            self.add(r.verdict or "No finding was raised on this bundle.")
        if findings:
            self.blank()
            rows = []
            for f in findings:
                rows.append([f.severity, f"[{f.key}](#{anchors[id(f)]})", f.title,
                             self.section_link(f.evidence.section) or "-"])
            self.add(*md_table(["Severity", "Key", "Finding", "Evidence"], rows,
                               ["left", "left", "left", "left"]))
        if r.skipped_rules:
            self.blank()
            self.add('<a id="skipped-rules"></a>', "",
                     f"<details><summary>{len(r.skipped_rules)} rules skipped: their inputs are not in "
                     f"this bundle</summary>", "")
            for s in r.skipped_rules:
                self.add(f"- `{s.key}`: {s.reason}")
            self.add("", "</details>")

    def timeline(self) -> None:
        r = self.report
        self.heading(2, "timeline", "Timeline")
        if not r.timeline:
            self.add("No events in the window.")
            return
        events = sorted(r.timeline, key=lambda e: e.t)
        t0 = F.window_start(r, events[0].t)
        rows = []
        for e in events:
            text = e.text
            if e.section:
                text += f" ([{self.titles.get(e.section, e.section)}](#{e.section}))"
            rows.append([F.hms(e.t), F.offset(e.t, t0), e.kind, e.severity or "", text])
        self.add(*md_table(["Time (UTC)", "Since start", "Kind", "Severity", "Event"], rows,
                           ["left", "right", "left", "left", "left"]))

    def finding_details(self) -> None:
        findings = F.sorted_findings(self.report.findings)
        if not findings:
            return
        anchors = F.finding_anchors(findings)
        self.heading(2, "finding-details", "Findings in detail")
        for f in findings:
            self.heading(3, anchors[id(f)], f"{f.severity} {f.key}: {f.title}")
            self.add(f.explanation, "")
            ev = f.evidence
            self.add(f"- **Threshold:** {f.threshold} (source: {f.threshold_source})")
            if ev.time_range:
                self.add(f"- **When:** {F.time_range(ev.time_range)}")
            if ev.values:
                self.add("- **Values:** " + "; ".join(f"{k} = {F.value_text(v, k)}" for k, v in ev.values.items()))
            if ev.artifacts:
                self.add("- **Artifacts:** " + ", ".join(f"`{a}`" for a in ev.artifacts))
            if ev.section:
                self.add(f"- **Evidence:** {self.section_link(ev.section)}")

    # -- sections ---------------------------------------------------

    def section(self, s: Section) -> None:
        self.heading(s.level, s.id, s.title)
        for b in s.blocks:
            self.block(b)
        for sub in s.subsections:
            self.section(sub)

    def block(self, b) -> None:
        self.blank()
        if isinstance(b, Paragraph):
            self.add(b.text)
        elif isinstance(b, Table):
            self.table(b)
        elif isinstance(b, Preformatted):
            if b.caption:
                self.add(f"**{b.caption}**", "")
            fence = _fence(b.text)
            self.add(fence + "text", b.text.rstrip("\n"), fence)
            if b.source:
                self.add("", _source(b.source))
        elif isinstance(b, KeyValues):
            if b.caption:
                self.add(f"**{b.caption}**", "")
            for k, v in b.items:
                self.add(f"- **{k}:** {v}")
        elif isinstance(b, (Chart, FlameGraph)):
            self.picture(b)
        else:  # an unknown block type is a bug in the builder, not data
            raise TypeError(f"cannot render block {type(b).__name__}")

    def table(self, t: Table) -> None:
        if t.caption:
            self.add(f"**{t.caption}**", "")
        cols: list[Column] = t.columns
        rows = [[F.format_cell(r, c) for c in cols] for r in t.rows]
        rows += [[F.format_cell(r, c) for c in cols] for r in t.footer]
        if not rows:
            self.add("No rows.")
        else:
            self.add(*md_table([c.title for c in cols], rows, [c.align for c in cols]))
        extra = [x for x in (t.note, _source(t.source)) if x]
        if extra:
            self.add("", *(" ".join(extra),))

    def picture(self, b: Chart | FlameGraph) -> None:
        kind = "Flame graph" if isinstance(b, FlameGraph) else "Chart"
        if self.chart_dir is None:
            if self.stdout_note:
                self.add(f"_{kind} “{b.title}” not written: Markdown went to standard output; "
                         f"use `-o FILE.md` to get `{b.id}.svg` beside it._")
            return
        if isinstance(b, Chart) and self.charts_missing:
            # Flame graphs are drawn without matplotlib; charts are not.
            self.add(f"_{kind} “{b.title}” not drawn: {self.charts_missing}._")
            return
        path = f"{self.chart_dir}/{F.unique(self.used_names, F.slug_file(b.id))}.svg"
        self.assets.append(Asset(path, b))
        self.add(f"![{b.title}]({path})")
        extra = []
        if isinstance(b, Chart):
            from snapcollect.report.charts import downsample_note  # light: no matplotlib import

            extra.append(downsample_note(b))
        extra.append(b.note)
        extra.append(_source(b.source))
        extra = [x for x in extra if x]
        if extra:
            self.add("", " ".join(extra))


def render_markdown(report: Report, chart_dir: str | None = None, *,
                    stdout_note: bool = True, charts_missing: str | None = None) -> tuple[str, list[Asset]]:
    """The Markdown text and the pictures it refers to.

    ``chart_dir`` is the directory, relative to the .md file, that will
    hold the SVG files; None means the pictures are not written (stdout).
    ``charts_missing`` says why charts cannot be drawn (matplotlib, of the
    report extra, is not installed): each chart becomes that one line.
    """
    w = _Writer(report, chart_dir, stdout_note, charts_missing)
    w.header()
    w.verdict()
    w.timeline()
    w.finding_details()
    for s in report.sections:
        w.section(s)
    w.blank()
    text = "\n".join(w.lines).rstrip("\n") + "\n"
    return text, w.assets
