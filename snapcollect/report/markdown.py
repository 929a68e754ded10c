"""Render a ``Report`` to GitHub-flavoured Markdown.

Layout, top to bottom, the answer first: the title and one line naming
the host and window; the verdict with the worst severity, the findings
table (each finding linking to its details and to the section holding
its evidence), what to do (the worst finding's advice) and the one to
three charts that prove it (``Report.key_charts``, drawn here and
pointed at from their sections); the skipped rules folded in a
``<details>``; then "About this bundle" (host, kernel, window, collector
and its cost, completeness, notes, and the artifacts not collected,
folded); the timeline, the findings in detail, then one heading per
section. Every heading is preceded by ``<a id="...">`` with
the section's id, so ``#sar-B`` links keep working whatever the title.

Nothing from the bundle reaches the document as raw HTML or as Markdown
structure: every string goes through ``report.markdown_escape`` (plain
text escaped, the model's Markdown fields neutralised, code spans fenced
to fit, table cells with their pipes escaped), and the only HTML in the
document is the renderer's own anchors and ``<details>``.

Tables are padded so that columns line up in the raw text too; numbers
go through ``Column.fmt``. Charts and flame graphs are referenced as SVG
files under ``<stem>-charts/``; ``render_markdown`` returns what to
write there and the caller writes it (or, for stdout, says in one line
per chart that it was not written).
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcollect.report import formatting as F
from snapcollect.report import markdown_escape as E
from snapcollect.report.model import (Chart, Column, FlameGraph, KeyValues, Paragraph, Preformatted,
                                      Report, Section, Table)
from snapcollect.report.printable import printable_report

# Anchors the renderers use for their own parts of the page; section ids
# from the report builder must not reuse them.
RESERVED_ANCHORS = ("top", "header", "not-collected", "verdict", "skipped-rules", "timeline",
                    "finding-details", "contents", "about")


@dataclass
class Asset:
    """A picture the Markdown refers to: path relative to the .md, and its block."""

    path: str
    block: Chart | FlameGraph


def md_table(headers: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    """A GFM table of plain-text cells, padded so the columns line up in the raw text.

    Cells are escaped here (``markdown_escape.text``): a process named
    ``<defunct>`` would otherwise be taken for an HTML tag and vanish on
    GitHub, and ``a|b`` would add a column. A cell that is already
    Markdown (a link made by this renderer) comes wrapped in ``_Md``.
    """
    def esc(c) -> str:
        return E.cell(c.md if isinstance(c, _Md) else E.text(c))

    headers = [esc(h) for h in headers]
    rows = [[esc(c) for c in r] for r in rows]
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


@dataclass(frozen=True)
class _Md:
    """A table cell that is Markdown already (escaped by whoever made it)."""

    md: str


def _source(names: list[str]) -> str:
    return "Source: " + ", ".join(E.code(n) for n in names) if names else ""


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
        """A heading of plain text, preceded by its anchor."""
        self.blank()
        self.add(f'<a id="{E.anchor(anchor)}"></a>', "", "#" * max(1, min(level, 6)) + " " + E.heading(title), "")

    def section_link(self, sid: str | None) -> str:
        if not sid:
            return ""
        return f"[{E.text(self.titles.get(sid, sid))}](#{E.anchor(sid)})"

    # -- top of the report ------------------------------------------

    def header(self) -> None:
        """The title and one line saying which host and window: the rest of the
        metadata waits below the verdict (``about``)."""
        r = self.report
        host = r.meta.get("host") or "unknown host"
        self.add(f'<a id="top"></a>', "", f"# Memory report: {E.heading(host)}", "")
        line = F.header_line(r)
        if line:
            self.add(E.block_start(E.text(line)))

    def about(self) -> None:
        """Metadata, notes and what was not collected: after the verdict, compact."""
        r = self.report
        self.heading(2, "about", "About this bundle")
        for label, text in F.header_items(r):
            self.add(f"- **{E.text(label)}:** {E.text(text)}")
        notes = r.meta.get("notes") or []
        if notes:
            self.blank()
            for n in notes:
                self.add(f"> {E.text(n)}", ">")
            self.lines.pop()
        for hint in r.hints:
            self.blank()
            self.add(E.block_start(E.inline(hint)))
        missing = F.missing_rows(r)
        if missing:
            self.blank()
            self.add('<a id="not-collected"></a>', "",
                     f"<details><summary>Not collected ({len(missing)})</summary>", "")
            self.add(*md_table(["Artifact", "Status", "Why"], [list(m) for m in missing],
                               ["left", "left", "left"]))
            self.add("", "</details>")

    def verdict(self) -> None:
        r = self.report
        worst = F.worst_severity(r)
        findings = F.sorted_findings(r.findings)
        anchors = F.finding_anchors(findings)
        self.heading(2, "verdict", f"Verdict: {worst}" if worst else "Verdict: no findings")
        if worst:
            self.add(f"**Worst severity: {E.text(worst)}.** " + E.inline(r.verdict or ""))
        else:
            self.add(E.inline(r.verdict or "No finding was raised on this bundle."))
        if findings:
            self.blank()
            rows = []
            for f in findings:
                rows.append([f.severity, _Md(f"[{E.text(f.key)}](#{E.anchor(anchors[id(f)])})"), f.title,
                             _Md(self.section_link(f.evidence.section) or "-")])
            self.add(*md_table(["Severity", "Key", "Finding", "Evidence"], rows,
                               ["left", "left", "left", "left"]))
        advice = F.top_advice(r)
        if advice is not None:
            key, text = advice
            self.blank()
            self.add(f"**What to do** ({E.code(key)}): " + E.inline(text))
        for b in F.key_charts(r):
            self.blank()
            self.picture(b)
        if r.skipped_rules:
            self.blank()
            self.add('<a id="skipped-rules"></a>', "",
                     f"<details><summary>{len(r.skipped_rules)} rules skipped: their inputs are not in "
                     f"this bundle</summary>", "")
            for s in r.skipped_rules:
                self.add(f"- {E.code(s.key)}: {E.text(s.reason)}")
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
            text = E.inline(e.text)
            if e.section:
                text += f" ({self.section_link(e.section)})"
            rows.append([F.hms(e.t), F.offset(e.t, t0), e.kind, e.severity or "", _Md(text)])
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
            self.add(E.inline(f.explanation), "")
            ev = f.evidence
            self.add(f"- **Threshold:** {E.text(f.threshold)} (source: {E.text(f.threshold_source)})")
            if ev.time_range:
                self.add(f"- **When:** {E.text(F.time_range(ev.time_range))}")
            if ev.values:
                self.add("- **Values:** " + "; ".join(E.text(f"{k} = {F.value_text(v, k)}")
                                                    for k, v in ev.values.items()))
            if ev.artifacts:
                self.add("- **Artifacts:** " + ", ".join(E.code(a) for a in ev.artifacts))
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
            self.add(E.inline(b.text))
        elif isinstance(b, Table):
            self.table(b)
        elif isinstance(b, Preformatted):
            if b.collapsed:
                self.add(f"<details><summary>{E.text(b.caption or 'Text')}</summary>", "")
            elif b.caption:
                self.add(f"**{E.text(b.caption)}**", "")
            fence = _fence(b.text)
            self.add(fence + "text", b.text.rstrip("\n"), fence)
            if b.source:
                self.add("", _source(b.source))
            if b.collapsed:
                self.add("", "</details>")
        elif isinstance(b, KeyValues):
            if b.caption:
                self.add(f"**{E.text(b.caption)}**", "")
            for k, v in b.items:
                self.add(f"- **{E.text(k)}:** {E.text(v)}")
        elif isinstance(b, Chart) and b.id in self.report.key_charts:
            self.add(f"_Chart “{E.text(b.title)}”: shown under the [verdict](#verdict)._")
        elif isinstance(b, (Chart, FlameGraph)):
            self.picture(b)
        else:  # an unknown block type is a bug in the builder, not data
            raise TypeError(f"cannot render block {type(b).__name__}")

    def table(self, t: Table) -> None:
        if t.caption:
            self.add(f"**{E.text(t.caption)}**", "")
        cols: list[Column] = t.columns
        rows = [[F.format_cell(r, c) for c in cols] for r in t.rows]
        rows += [[F.format_cell(r, c) for c in cols] for r in t.footer]
        if not rows:
            self.add("No rows.")
        else:
            self.add(*md_table([c.title for c in cols], rows, [c.align for c in cols]))
        extra = [x for x in (E.text(t.note), _source(t.source)) if x]
        if extra:
            self.add("", E.block_start(" ".join(extra)))

    def picture(self, b: Chart | FlameGraph) -> None:
        kind = "Flame graph" if isinstance(b, FlameGraph) else "Chart"
        if self.chart_dir is None:
            if self.stdout_note:
                self.add(f"_{kind} “{E.text(b.title)}” not written: Markdown went to standard output; "
                         f"use `-o FILE.md` to get {E.code(F.slug_file(b.id) + '.svg')} beside it._")
            return
        if isinstance(b, Chart) and self.charts_missing:
            # Flame graphs are drawn without matplotlib; charts are not.
            self.add(f"_{kind} “{E.text(b.title)}” not drawn: {E.text(self.charts_missing)}._")
            return
        path = f"{self.chart_dir}/{F.unique(self.used_names, F.slug_file(b.id))}.svg"
        self.assets.append(Asset(path, b))
        self.add(f"![{E.text(b.title)}]({path})")
        extra = []
        if isinstance(b, Chart):
            from snapcollect.report.charts import downsample_note  # light: no matplotlib import

            extra.append(E.text(downsample_note(b)))
        extra.append(E.text(b.note))
        extra.append(_source(b.source))
        extra = [x for x in extra if x]
        if extra:
            self.add("", E.block_start(" ".join(extra)))


def render_markdown(report: Report, chart_dir: str | None = None, *,
                    stdout_note: bool = True, charts_missing: str | None = None) -> tuple[str, list[Asset]]:
    """The Markdown text and the pictures it refers to.

    ``chart_dir`` is the directory, relative to the .md file, that will
    hold the SVG files; None means the pictures are not written (stdout).
    ``charts_missing`` says why charts cannot be drawn (matplotlib, of the
    report extra, is not installed): each chart becomes that one line.
    """
    report = printable_report(report)
    w = _Writer(report, chart_dir, stdout_note, charts_missing)
    w.header()
    w.verdict()
    w.about()
    w.timeline()
    w.finding_details()
    for s in report.sections:
        w.section(s)
    w.blank()
    text = "\n".join(w.lines).rstrip("\n") + "\n"
    return text, w.assets
