"""The format-neutral report document that every renderer consumes.

``report.build`` lays the analysed incident out as a ``Report``; renderers
(Markdown, HTML, PDF, JSON) only read it. The findings, skipped rules and
timeline it carries are analysis's results (``analysis.results``), kept
as they are. Nothing here touches a bundle or raw text. Numbers are kept as
numbers in ``Table`` rows; each renderer formats them, using the column's
``fmt`` (a Python format spec such as ``".2f"``) so that Markdown, HTML
and PDF print the same digits as the classic tool.

Besides Python format specs, ``Column.fmt`` takes these names
(``snapcollect.report.formatting``):

- ``"time"``      epoch seconds -> ``HH:MM:SS`` UTC (sar's time column)
- ``"datetime"``  epoch seconds -> ``YYYY-mm-dd HH:MM:SS`` UTC
- ``"iec_kb"``    kB -> ``free -h`` style (``1.5Gi``, ``512Mi``)
- ``"+iec_kb"``   a change in kB, the same with its sign (``+95Mi``)
- ``"kb"``        kB -> integer with thousands separators (``1,234,567``)

One table, one unit convention: either every quantity cell carries its
unit (``iec_kb``) or the column title does (``RSS kB``); a table never
mixes the two (tests/unit/test_units.py).

A cell holding a string (sar's ``"Average:"`` label) or ``None`` (not
available, shown as ``-``) is printed as is, whatever ``fmt`` says.
JSON keeps the raw numbers; time columns become ISO 8601 UTC strings.

``Report.meta`` keys the renderers print in the header (all optional;
others are kept in JSON only):

- ``host``, ``kernel``: as in the manifest
- ``started_at``, ``ended_at``: ISO 8601 UTC of the window (``ended_at``
  None when the collector never finished)
- ``window``: ``(first_sample_t, last_sample_t)`` in epoch seconds
- ``interval_s``, ``duration_requested_s``, ``samples`` (ticks read)
- ``tool_version`` (collector that wrote the bundle), ``format_version``
- ``cpu_s``, ``peak_rss_kb``: the collector's own cost
- ``complete`` (bool), ``stopped_by``, ``incomplete_reason``
- ``bundle``: file name of the bundle
- ``notes``: list of one-line strings shown under the header (e.g. which
  sysstat definitions the sar tables follow)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

from snapcollect.analysis.results import Finding, Severity, SkippedRule, TimelineEvent

@dataclass
class Column:
    key: str              # key into each row dict
    title: str            # header as the classic tool prints it ("pgscank/s")
    fmt: str = ""         # format spec for numbers; "" = str()
    align: Literal["left", "right"] = "right"
    unit: str = ""        # "kB", "pages/s", "%", ... (for JSON consumers)
    # How the PDF may merge consecutive rows of a very long table (a one-hour
    # sar table): "mean" for rates (the mean of equal intervals is the rate
    # over their span), "last" for levels (what sar prints at a longer
    # interval), "max", "min", "sum", "none" (print "-": a ratio such as
    # %vmeff cannot be merged from its rows). "" = unknown: a table is merged
    # only when every column says how (time columns and "/s" units need not).
    agg: str = ""


@dataclass
class Table:
    id: str                               # stable, e.g. "sar-B"
    columns: list[Column]
    rows: list[dict[str, Any]]
    caption: str = ""
    footer: list[dict[str, Any]] = field(default_factory=list)  # e.g. sar's "Average:" row
    source: list[str] = field(default_factory=list)              # artifact names the numbers come from
    note: str = ""
    # One row per sampling interval, keyed by a time column "t": what
    # ``snapcollect export`` writes as CSV (the sar tables; cgroup series).
    time_series: bool = False
    # Rows sorted most important first (worst stalls, largest processes):
    # the PDF may print the first ones only, and says so.
    ranked: bool = False


@dataclass
class Paragraph:
    text: str   # Markdown inline syntax allowed (emphasis, code, links to #anchors)


@dataclass
class Preformatted:
    text: str             # verbatim text (classic command output, kernel log)
    caption: str = ""
    source: list[str] = field(default_factory=list)
    # Folded by default (HTML/Markdown <details>); left out of the PDF, whose
    # reader gets ``collapsed_note`` instead (where the full text is).
    collapsed: bool = False
    collapsed_note: str = ""


@dataclass
class KeyValues:
    items: list[tuple[str, str]]
    caption: str = ""


@dataclass
class Marker:
    """An event drawn on every time chart: a line at ``t`` (an OOM kill), or a
    shaded span from ``t`` to ``end`` (a burst of reclaim stalls)."""

    t: float                     # epoch seconds
    kind: str                    # "oom" or "stall"
    label: str                   # one line: "OOM kill: java (4711)"
    end: float | None = None     # end of a span; None for a point in time


@dataclass
class Chart:
    """A time-series or bar chart; renderers draw it to SVG."""

    id: str
    title: str
    x: list[float]                       # epoch seconds (time series) or category index
    series: dict[str, list[float | None]]
    y_label: str = ""
    kind: Literal["line", "stacked", "bar"] = "line"
    categories: list[str] = field(default_factory=list)   # for kind == "bar"
    source: list[str] = field(default_factory=list)
    note: str = ""                       # one line shown under the chart
    markers: list[Marker] = field(default_factory=list)   # events on the time axis (report.build adds them)
    dashed: list[str] = field(default_factory=list)       # series drawn dashed (a 10 s average beside its share)
    # False: left out of the PDF, where a table beside it says the same
    # (a latency histogram drawn as bars next to bcc's star histogram).
    in_print: bool = True


@dataclass
class FlameGraph:
    id: str
    title: str
    folded: list[tuple[str, int]]   # ("a;b;c", count), as flamegraph.pl reads
    count_name: str = "samples"
    note: str = ""
    source: list[str] = field(default_factory=list)


Block = Union[Paragraph, Table, Preformatted, KeyValues, Chart, FlameGraph]


@dataclass
class Section:
    id: str           # anchor, stable: "free", "sar-B", "oom"
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2
    subsections: list["Section"] = field(default_factory=list)


@dataclass
class Report:
    meta: dict[str, Any]                     # host, kernel, window, interval, tool_version, cost, ...
    missing: list[dict[str, Any]]            # artifacts not collected: name, status, reason
    sections: list[Section]
    findings: list[Finding] = field(default_factory=list)
    skipped_rules: list[SkippedRule] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)
    verdict: str = ""
    worst_severity: Severity | None = None
    # Machine-readable tables (sar tables etc.) for JSON: id -> Table
    data_tables: dict[str, Table] = field(default_factory=dict)
    # Ids of the one to three charts that prove the verdict, shown under it
    # (each stays a block of its section; the renderers draw it once, on top).
    key_charts: list[str] = field(default_factory=list)
    # What the findings cite, in words: how to get more out of the bundle.
    hints: list[str] = field(default_factory=list)

    def all_tables(self) -> list[Table]:
        out: list[Table] = []

        def walk(sections: list[Section]) -> None:
            for s in sections:
                out.extend(b for b in s.blocks if isinstance(b, Table))
                walk(s.subsections)

        walk(self.sections)
        return out
