"""Render a ``Report`` to one self-contained HTML page (also the PDF's source).

The page is ``report_templates/report.html.j2`` with ``report.css``
inlined and every chart and flame graph inlined as SVG: it fetches
nothing (no URL in any src/href, no web font, no external script), so it
opens the same on an air-gapped laptop and through weasyprint. Its one
script is ``flamegraph.FLAME_SCRIPT``, inline, when the page has a flame
graph (zoom, search, reset); the page for print has none. Paragraph text is
Markdown, rendered with markdown-it-py; links to other sites are shown as
text with their address, never as links, and Markdown images are off.
"""

from __future__ import annotations

import dataclasses
import math
import os
from functools import lru_cache
from html import escape

from markupsafe import Markup

from snapcollect import __version__
from snapcollect.bundle.names import KMSG
from snapcollect.report import formatting as F
from snapcollect.report import markdown_escape
from snapcollect.report.model import (Chart, FlameGraph, KeyValues, Paragraph, Preformatted, Report, Section,
                                      Table)
from snapcollect.report.flamegraph import FLAME_SCRIPT
from snapcollect.report.printable import printable_report

def _template_dir() -> str:
    """Where report.html.j2 and report.css are: beside the package in a
    checkout (so that a checkout run with PYTHONPATH uses its own templates,
    not those of whichever checkout is installed editable), else installed."""
    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "report_templates")
    if os.path.isfile(os.path.join(checkout, "report.html.j2")):
        return checkout
    from importlib.resources import files

    return str(files("snapcollect.report_templates"))


TEMPLATE_DIR = _template_dir()
# On screen (cell tables), column counts at which a table gets a smaller font.
WIDE_COLUMNS = 10
VERY_WIDE_COLUMNS = 14
# Longer tables are merged for print when their columns say how (Column.agg).
PRINT_MAX_ROWS = 180
# In print, sections no finding cites keep this many rows of a long table.
PRINT_UNCITED_ROWS = 3
# ... and those a finding cites this many rows of a ranked table (Table.ranked).
PRINT_CITED_RANKED_ROWS = 8
# Tables up to this many rows are kept on one page in print (longer ones
# may break across pages rather than leave half a page empty).
SHORT_TABLE_ROWS = 12
# Print text tables: DejaVu Sans Mono advances 1233/2048 em per character;
# usable line widths of A4 (report.css margins, less the cell padding).
MONO_EM = 1233 / 2048
TEXT_TABLE_GAP = "  "
PORTRAIT_WIDTH_PT = 515.0
LANDSCAPE_WIDTH_PT = 775.0
TEXT_TABLE_MAX_PT = 7.0
TEXT_TABLE_MIN_PORTRAIT_PT = 5.8
TEXT_TABLE_MIN_PT = 4.5
# Flame graph width in SVG units: scaled to the page, frame names stay legible
# (on A4, 620 units across 186 mm print the 11-unit labels at about 9 pt).
FLAME_WIDTH = 900
FLAME_PRINT_WIDTH = 620
# Deeper stacks are drawn with their middle merged (flamegraph.merge_deep);
# on paper a little shallower, the innermost frames kept.
FLAME_DEPTH = 32
FLAME_PRINT_DEPTH = 20


@lru_cache(maxsize=1)
def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False)


@lru_cache(maxsize=1)
def _css() -> str:
    with open(os.path.join(TEMPLATE_DIR, "report.css"), encoding="utf-8") as fh:
        return fh.read()


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable("image")

    def link_open(self, tokens, idx, options, env):
        href = tokens[idx].attrGet("href") or ""
        stack = env.setdefault("links", [])
        if href.startswith("#"):
            stack.append(None)
            return self.renderToken(tokens, idx, options, env)
        # A link off the page would be a fetch-on-click from an offline
        # report and is an external reference: print the address instead.
        stack.append(href)
        return '<span class="ext-link">'

    def link_close(self, tokens, idx, options, env):
        href = env.setdefault("links", []).pop() if env.get("links") else None
        if href is None:
            return self.renderToken(tokens, idx, options, env)
        return f'</span> <span class="muted">({escape(href)})</span>'

    md.add_render_rule("link_open", link_open)
    md.add_render_rule("link_close", link_close)
    return md


def md_block(text: str) -> Markup:
    # The model's Markdown fields hold names from the bundle: neutralised as
    # for the Markdown report, so that a newline in a cgroup name cannot
    # open a heading or a list here either.
    return Markup(_markdown().render(markdown_escape.inline(text or ""), {}))


def md_inline(text: str) -> Markup:
    return Markup(_markdown().renderInline(markdown_escape.inline(text or ""), {}))


class _Builder:
    """Turns the Report into plain dicts and strings for the template."""

    def __init__(self, report: Report, for_print: bool = False):
        self.report = report
        self.titles = F.section_titles(report.sections)
        self.for_print = for_print
        self.anchors: set[str] = set()
        self.flame_graphs = 0
        # Sections a finding cites are printed whole; the others shorter (print_cut).
        self.cited = {f.evidence.section for f in report.findings if f.evidence.section}

    def anchor(self, prefix: str, ident: str) -> str:
        return F.unique(self.anchors, f"{prefix}-{F.slug_file(ident)}")

    def findings(self) -> list[dict]:
        found = F.sorted_findings(self.report.findings)
        anchors = F.finding_anchors(found)
        out = []
        for f in found:
            ev = f.evidence
            out.append({
                "severity": f.severity, "key": f.key, "title": f.title, "anchor": anchors[id(f)],
                "explanation_html": md_block(f.explanation),
                "threshold": f.threshold, "threshold_source": f.threshold_source,
                "when": F.time_range(ev.time_range) if ev.time_range else "",
                "evidence_values": [(k, F.value_text(v, k)) for k, v in (ev.values or {}).items()],
                "artifacts": list(ev.artifacts or []),
                "section": ev.section, "section_title": self.titles.get(ev.section or "", ev.section),
            })
        return out

    def timeline(self) -> list[dict]:
        events = sorted(self.report.timeline, key=lambda e: e.t)
        if not events:
            return []
        t0 = F.window_start(self.report, events[0].t)
        return [{"time": F.hms(e.t), "offset": F.offset(e.t, t0), "kind": e.kind, "severity": e.severity,
                 "html": md_inline(e.text), "section": e.section,
                 "section_title": self.titles.get(e.section or "", e.section)} for e in events]

    def toc(self, sections: list[Section]) -> list[dict]:
        return [{"id": s.id, "title": s.title, "children": self.toc(s.subsections)} for s in sections]

    def sections(self, sections: list[Section], cited: bool = False) -> list[dict]:
        out = []
        for s in sections:
            here = cited or s.id in self.cited
            blocks = [self.block(self.print_cut(b, here) if self.for_print else b) for b in s.blocks]
            out.append({"id": s.id, "title": s.title, "level": s.level, "hlevel": max(2, min(s.level, 6)),
                        "blocks": blocks,
                        # A section holding a landscape table goes landscape whole,
                        # so that its heading stays with the table.
                        "wide_page": any(b.get("landscape") for b in blocks),
                        "subsections": self.sections(s.subsections, here)})
        return out

    def print_cut(self, b, cited: bool = False):
        """A block of a section no finding cites, as the PDF prints it: shorter.

        The PDF is what gets attached and read on paper: length follows
        importance. Time-series tables keep their ``Average:`` row, other
        long tables and texts their first ``PRINT_UNCITED_ROWS`` rows
        (tables are sorted most important first), charts other than the
        verdict's and flame graphs are left out; each cut says so and where
        the rest is.
        """
        where = "the HTML, Markdown and JSON reports have all of it"
        if cited:
            # A section a finding cites is printed whole, but for the tail of
            # a ranked list (the 11th-worst stall adds nothing on paper).
            if isinstance(b, Table) and b.ranked and len(b.rows) > PRINT_CITED_RANKED_ROWS:
                return dataclasses.replace(b, rows=b.rows[:PRINT_CITED_RANKED_ROWS], note=(
                    f"The first {PRINT_CITED_RANKED_ROWS} of {len(b.rows)} rows ({where}). " + b.note).strip())
            return b
        if isinstance(b, Table) and len(b.rows) > PRINT_UNCITED_ROWS:
            if b.time_series and b.footer:
                return dataclasses.replace(b, rows=[], note=(
                    f"{len(b.rows)} intervals; printed here: the Average: row ({where}, and "
                    f"snapcollect export writes them as CSV). " + b.note).strip())
            return dataclasses.replace(b, rows=b.rows[:PRINT_UNCITED_ROWS], note=(
                f"The first {PRINT_UNCITED_ROWS} of {len(b.rows)} rows ({where}). " + b.note).strip())
        if isinstance(b, Preformatted) and not b.collapsed and b.text.count("\n") >= PRINT_UNCITED_ROWS:
            lines = b.text.rstrip("\n").split("\n")
            return dataclasses.replace(b, text="\n".join(lines[:PRINT_UNCITED_ROWS]),
                                       caption=f"{b.caption} (the first {PRINT_UNCITED_ROWS} of {len(lines)} "
                                               f"lines; {where})".strip())
        if isinstance(b, Chart) and b.id not in self.report.key_charts:
            return Paragraph(f"Chart “{b.title}”: in the HTML report.")
        if isinstance(b, FlameGraph):
            # the hottest stacks are printed as text beside it; the picture zooms in the HTML
            return Paragraph(f"Flame graph “{b.title}”: in the HTML report (it zooms and searches there).")
        return b

    def block(self, b) -> dict:
        if isinstance(b, Paragraph):
            return {"type": "paragraph", "html": md_block(b.text)}
        if isinstance(b, Table):
            return self.table(b)
        if isinstance(b, Preformatted):
            # Log lines wrap on screen (a kernel log line runs past any page);
            # command output keeps its columns and scrolls.
            log = any(x == KMSG or x.startswith(KMSG) for x in b.source)
            return {"type": "pre", "text": b.text.rstrip("\n"), "caption": b.caption, "source": b.source,
                    "collapsed": b.collapsed, "collapsed_note": b.collapsed_note,
                    "pre_class": "log" if log else "", "for_print": self.for_print}
        if isinstance(b, KeyValues):
            return {"type": "kv", "kv_items": b.items, "caption": b.caption}
        if isinstance(b, Chart) and b.id in self.report.key_charts:
            return {"type": "shown-above", "title": b.title}
        if isinstance(b, Chart) and self.for_print and not b.in_print:
            return {"type": "skip"}
        if isinstance(b, Chart):
            return self.picture(b, "chart", compact=self.for_print)
        if isinstance(b, FlameGraph):
            return self.picture(b, "flamegraph")
        raise TypeError(f"cannot render block {type(b).__name__}")

    def table(self, t: Table) -> dict:
        cols = t.columns
        rows, note = t.rows, t.note
        merged = F.condense_rows(cols, rows, PRINT_MAX_ROWS) if self.for_print else None
        if merged is not None:
            # A one-hour sar table is thousands of rows: hundreds of pages
            # nobody reads, and minutes of layout. Print it as sar would at
            # a longer interval, and say so.
            rows, k = merged
            note = (f"Printed as {len(rows):,} rows of {k} intervals ({len(t.rows):,} in all), as sar "
                    f"prints a {k}x longer interval: rates are means over the row, levels the value at "
                    f"its end. The HTML, Markdown and JSON reports have every interval. " + note).strip()
        cells = [[F.format_cell(r, c) for c in cols] for r in rows]
        foot = [[F.format_cell(r, c) for c in cols] for r in t.footer]
        common = {"anchor": self.anchor("table", t.id), "caption": t.caption, "note": note, "source": t.source,
                  "short": len(cells) + len(foot) <= SHORT_TABLE_ROWS}
        if self.for_print:
            text = self.text_table(cols, cells, foot)
            if text is not None:
                return {"type": "texttable", **common, **text}
        return {"type": "table", **common, **self.cell_table(cols, cells, foot)}

    @staticmethod
    def cell_table(cols, cells: list[list[str]], foot: list[list[str]]) -> dict:
        """An HTML table, one <td> per value (the screen page)."""
        classes = ["l" if c.align == "left" else "" for c in cols]
        opening = [f'<td class="{cls}">' if cls else "<td>" for cls in classes]

        def rows_html(rows: list[list[str]], tr: str) -> str:
            # Built here rather than in the template: a one-hour bundle has
            # tens of thousands of cells, and this is several times faster.
            return "\n".join(tr + "".join(o + escape(v) + "</td>" for o, v in zip(opening, r)) + "</tr>"
                             for r in rows)

        n = len(cols)
        body = rows_html(cells, "<tr>") if cells else f'<tr><td class="l" colspan="{n}">no rows</td></tr>'
        if foot:
            body += "\n" + rows_html(foot, '<tr class="foot">')
        width = "very-wide" if n >= VERY_WIDE_COLUMNS else "wide" if n >= WIDE_COLUMNS else "normal"
        return {"headers": [(c.title, cls, c.unit) for c, cls in zip(cols, classes)], "body": Markup(body),
                "width_class": width, "landscape": False}

    @staticmethod
    def text_table(cols, cells: list[list[str]], foot: list[list[str]]) -> dict | None:
        """A table for print as aligned monospace lines, one cell per row.

        weasyprint lays out each table cell as a box of its own; a sar
        table as one line per row prints the same text (the way sar
        itself prints it) in about half the time. The font size is chosen
        so that the widest line fits a portrait page; when that would need
        a font below ``TEXT_TABLE_MIN_PORTRAIT_PT`` (sar -r ALL), the
        columns are split into parts printed one under the other, each
        repeating the first column (the time), all at one size. A page of
        its own in landscape would cost a page or two of the report for
        each such table. None when even one column does not fit (very long
        text cells): then the cells wrap instead.
        """
        widths = [len(c.title) for c in cols]
        for r in cells + foot:
            for i, v in enumerate(r):
                if len(v) > widths[i]:
                    widths[i] = len(v)
        right = [c.align != "left" for c in cols]
        gap = len(TEXT_TABLE_GAP)

        def chars(idx: list[int]) -> int:
            return sum(widths[i] for i in idx) + gap * (len(idx) - 1)

        def size_for(n: int) -> float:
            return min(TEXT_TABLE_MAX_PT, PORTRAIT_WIDTH_PT / (max(n, 1) * MONO_EM))

        parts: list[list[int]] = [list(range(len(cols)))]
        size = size_for(chars(parts[0]))
        if size < TEXT_TABLE_MIN_PORTRAIT_PT and len(cols) > 2:
            # Greedy split at the smallest legible size: the first column
            # (time, or the row's label) starts every part.
            budget = PORTRAIT_WIDTH_PT / (TEXT_TABLE_MIN_PORTRAIT_PT * MONO_EM)
            parts, current = [], [0]
            for i in range(1, len(cols)):
                if len(current) > 1 and chars(current + [i]) > budget:
                    parts.append(current)
                    current = [0]
                current.append(i)
            parts.append(current)
            size = size_for(max(chars(p) for p in parts))
        if size < TEXT_TABLE_MIN_PT:
            return None

        def line(values: list[str], idx: list[int]) -> str:
            return escape(TEXT_TABLE_GAP.join(values[i].rjust(widths[i]) if right[i] else values[i].ljust(widths[i])
                                              for i in idx).rstrip())

        out = []
        for idx in parts:
            body = ("\n".join(f"<tr><td>{line(r, idx)}</td></tr>" for r in cells) if cells
                    else "<tr><td>no rows</td></tr>")
            if foot:
                body += "\n" + "\n".join(f'<tr class="foot"><td>{line(r, idx)}</td></tr>' for r in foot)
            out.append({"header_line": Markup(line([c.title for c in cols], idx)), "body": Markup(body)})
        return {"parts": out, "font_pt": f"{math.floor(size * 10) / 10:.1f}", "landscape": False,
                "split": len(out) > 1}

    def picture(self, b, kind: str, compact: bool = False) -> dict:
        anchor = self.anchor(kind, b.id)
        if isinstance(b, Chart):
            from snapcollect.report.charts import chart_svg, downsample_note

            svg = chart_svg(b, id_prefix=anchor + "-svg", compact=compact)
            note = " ".join(x for x in (downsample_note(b), b.note) if x)
        else:
            from snapcollect.report.flamegraph import render_flamegraph

            svg = render_flamegraph(b.folded, title=b.title, count_name=b.count_name, id_prefix=anchor + "-svg",
                                    width=FLAME_PRINT_WIDTH if self.for_print else FLAME_WIDTH,
                                    max_depth=FLAME_PRINT_DEPTH if self.for_print else FLAME_DEPTH)
            note = b.note
            self.flame_graphs += 1
        return {"type": "picture", "kind": kind, "anchor": anchor, "svg": Markup(svg), "title": b.title,
                "note": note, "source": b.source, "interactive": kind == "flamegraph" and not self.for_print}


def render_html(report: Report, *, for_print: bool = False) -> str:
    """The whole report as one HTML document (str).

    ``for_print`` is the page weasyprint turns into the PDF: the same,
    except that very long time-series tables are merged (see PRINT_MAX_ROWS).
    """
    report = printable_report(report)
    b = _Builder(report, for_print)
    m = report.meta
    host = m.get("host") or "unknown host"
    window = m.get("window")
    when = (f"{F.date_time(window[0])[:-4]}–{F.hms(window[1])} UTC" if window
            else str(m.get("started_at") or ""))
    advice = F.top_advice(report)
    ctx = {
        "title": f"Memory report: {host}",
        "header_line": F.header_line(report),
        "advice": {"key": advice[0], "html": md_inline(advice[1])} if advice else None,
        "key_charts": [b.picture(c, "chart", compact=for_print) for c in F.key_charts(report)],
        "hints": [md_inline(h) for h in report.hints],
        "for_print": for_print,
        "generator_version": __version__,
        "css": Markup(_css()),
        "running_header": " · ".join(x for x in ("snapcollect", host, m.get("kernel"), when) if x),
        "header": F.header_items(report),
        "complete": bool(m.get("complete", True)),
        "notes": list(m.get("notes") or []),
        "missing": F.missing_rows(report),
        "worst": F.worst_severity(report),
        "verdict_html": md_block(report.verdict) if report.verdict else "",
        "findings": b.findings(),
        "skipped": report.skipped_rules,
        "timeline": b.timeline(),
        "toc": b.toc(report.sections),
        "sections": b.sections(report.sections),
        "bundle_name": m.get("bundle") or "",
    }
    # The one script of the page, only when it has a flame graph to drive,
    # and never in the page weasyprint prints.
    ctx["script"] = Markup(FLAME_SCRIPT) if b.flame_graphs and not for_print else ""
    return _env().get_template("report.html.j2").render(**ctx)
