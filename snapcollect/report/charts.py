"""Charts of the report drawn to SVG with matplotlib (Agg, no display).

``chart_svg(chart)`` turns one ``model.Chart`` into SVG text, the same for
Markdown (written beside the .md file), HTML (inline) and PDF (inline,
through weasyprint). matplotlib is imported on first use only, so that
Markdown on stdout and JSON do not pay for it.

Style: one figure size, one palette, time axis in ``HH:MM:SS`` UTC
(the bundle's clock), gaps where a sample is ``None`` (a failed read is
not zero). Long series are reduced to at most ``MAX_POINTS`` points per
chart (the mean of each run of samples, with the min-max range shaded
for line charts), and the chart's note says so. The SVG is
deterministic: no date in its metadata, ids prefixed with the chart id
and hashed with a fixed salt, so that several charts inline in one HTML
page never share an id.
"""

from __future__ import annotations

import io
import math
import re
from typing import Sequence

from snapcollect.report.model import Chart

MAX_POINTS = 1000
FIG_W_IN = 9.0
FIG_H_IN = 3.2
COMPACT_IN = (5.0, 2.5)
# Colour-blind safe (Okabe-Ito), in a fixed order per series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

_ready = False


def _setup() -> None:
    """Import matplotlib lazily, once: Agg backend, the report's style.

    Figures are made with ``matplotlib.figure.Figure`` rather than pyplot:
    no global figure registry to leak into, and a shorter import.
    """
    global _ready
    if _ready:
        return
    from snapcollect.report.no_programs import no_programs

    # The font list, built on first use, would run fc-list (no_programs).
    with no_programs():
        import matplotlib
        import matplotlib.font_manager  # noqa: F401

    matplotlib.use("Agg", force=True)
    matplotlib.rcParams.update({
        "svg.fonttype": "none",          # text stays text: small, searchable
        "svg.hashsalt": "snapcollect",   # stable ids, so the SVG is reproducible
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#dddddd",
        "grid.linewidth": 0.6,
        "legend.fontsize": 8,
        "legend.frameon": False,
        "lines.linewidth": 1.3,
        "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    })
    _ready = True


def downsample(x: Sequence[float], series: dict[str, Sequence[float | None]], max_points: int = MAX_POINTS):
    """Reduce to at most max_points buckets: (x, mean, low, high, bucket size).

    Each bucket is a run of ``n`` consecutive samples; its mean skips
    ``None``; a bucket with no value at all stays a gap (NaN).
    """
    count = len(x)
    n = max(1, math.ceil(count / max_points))
    if n == 1:
        def nan(seq):
            return [math.nan if v is None else float(v) for v in seq]
        conv = {k: nan(v) for k, v in series.items()}
        return list(map(float, x)), conv, conv, conv, 1
    xs, means, lows, highs = [], {k: [] for k in series}, {k: [] for k in series}, {k: [] for k in series}
    for i in range(0, count, n):
        chunk_x = x[i:i + n]
        xs.append(sum(chunk_x) / len(chunk_x))
        for k, values in series.items():
            vals = [float(v) for v in values[i:i + n] if v is not None and not math.isnan(v)]
            if vals:
                means[k].append(sum(vals) / len(vals))
                lows[k].append(min(vals))
                highs[k].append(max(vals))
            else:
                means[k].append(math.nan)
                lows[k].append(math.nan)
                highs[k].append(math.nan)
    return xs, means, lows, highs, n


def downsample_note(chart: Chart, max_points: int = MAX_POINTS) -> str:
    """The sentence the caption carries when the chart was reduced."""
    if chart.kind == "bar":
        return ""
    n = max(1, math.ceil(len(chart.x) / max_points))
    if n == 1:
        return ""
    band = "; the shaded band is the min-max range" if chart.kind == "line" else ""
    return f"{len(chart.x):,} samples drawn as {math.ceil(len(chart.x) / n):,} points (mean of every {n}){band}."


_ID = re.compile(r'\bid="([^"]+)"')


def prefix_ids(svg: str, prefix: str) -> str:
    """Give every id in the SVG a prefix and follow the references to them.

    matplotlib names elements ``figure_1``, ``axes_1``, ``patch_2`` in every
    figure; inlined side by side in one page they would clash, and a
    ``url(#...)`` clip path could resolve into the wrong chart.
    """
    ids = set(_ID.findall(svg))
    if not ids:
        return svg

    def fix_ref(m: re.Match) -> str:
        ref = m.group(2)
        return f"{m.group(1)}{prefix}-{ref}" if ref in ids else m.group(0)

    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r'(href="#)([^"]+)(?=")', fix_ref, svg)
    svg = re.sub(r'(url\(#)([^)]+)(?=\))', fix_ref, svg)
    return svg


def _clean(svg: str) -> str:
    """Strip the XML prolog, doctype and RDF metadata (it carries URLs)."""
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    return svg.strip()


def _time_axis(ax, x0: float, x1: float) -> None:
    import matplotlib.dates as mdates
    from datetime import timezone

    span = max(x1 - x0, 1.0)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=timezone.utc))
    # A tick every "round" number of seconds, about 6-8 ticks per chart.
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200):
        if span / step <= 8:
            break
    if step < 60:
        ax.xaxis.set_major_locator(mdates.SecondLocator(bysecond=range(0, 60, step), tz=timezone.utc))
    elif step < 3600:
        ax.xaxis.set_major_locator(mdates.MinuteLocator(byminute=range(0, 60, step // 60), tz=timezone.utc))
    else:
        ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, step // 3600), tz=timezone.utc))
    ax.set_xlabel("time (UTC)")
    pad = span * 0.01
    ax.set_xlim((x0 - pad) / 86400.0, (x1 + pad) / 86400.0)


def _value_axis(axis, ax, columns, horizontal: bool = False) -> None:
    """Plain numbers up to 9999, then k/M/G; a flat zero line gets a 0..1 axis.

    (matplotlib's default for an all-zero series is -0.05..0.05, printed
    by an engineering formatter as "50m": meaningless for pages/s.)
    """
    from matplotlib.ticker import EngFormatter, FuncFormatter

    values = [float(v) for col in columns for v in col if v is not None and not math.isnan(float(v))]
    top = max((abs(v) for v in values), default=0.0)
    if top == 0.0:
        (ax.set_xlim if horizontal else ax.set_ylim)(0, 1)
    if top >= 10000:
        axis.set_major_formatter(EngFormatter(sep=""))
    else:
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def chart_svg(chart: Chart, *, id_prefix: str | None = None, compact: bool = False) -> str:
    """One chart as SVG text without XML prolog, ready to inline or save.

    ``compact``: a smaller figure (``COMPACT_IN``) with the same font sizes,
    for the verdict's charts printed two across an A4 page, where the
    full-size figure scaled down would print its labels at 3 pt.
    """
    _setup()
    from matplotlib.figure import Figure

    size = COMPACT_IN if compact and chart.kind != "bar" else (FIG_W_IN, FIG_H_IN)
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    if chart.kind == "bar":
        _draw_bar(ax, chart)
    else:
        _draw_time(ax, chart, size)
    ax.set_title(chart.title, loc="left")
    if chart.y_label and chart.kind != "bar":
        ax.set_ylabel(chart.y_label)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return prefix_ids(_clean(buf.getvalue()), id_prefix or f"chart-{chart.id}")


def _draw_time(ax, chart: Chart, size: tuple[float, float] = (FIG_W_IN, FIG_H_IN)) -> None:
    import numpy as np

    if not chart.x or not chart.series:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes, color="#666")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    xs, means, lows, highs, n = downsample(chart.x, chart.series)
    dates = np.asarray(xs) / 86400.0     # matplotlib dates: days since 1970-01-01
    names = list(chart.series)
    if chart.kind == "stacked":
        ys = np.array([means[k] for k in names], dtype=float)
        # A gap in one layer is a gap in the whole stack above it.
        bottom = np.zeros(len(xs))
        for i, k in enumerate(names):
            top = bottom + ys[i]
            ax.fill_between(dates, bottom, top, label=k, color=PALETTE[i % len(PALETTE)],
                            alpha=0.85, linewidth=0)
            bottom = top
        ax.set_ylim(bottom=0)
    else:
        for i, k in enumerate(names):
            colour = PALETTE[i % len(PALETTE)]
            y = np.asarray(means[k], dtype=float)
            marker = "o" if len(xs) <= 3 else None
            # Earlier series are drawn wider and solid, later ones on top of
            # them (dashed where the chart says): two series with the same
            # values (some and full stalls in one cgroup) still read as two.
            width = max(1.0, 2.6 - 0.5 * i) if len(names) > 1 else 1.5
            style = (0, (4, 2)) if k in chart.dashed else "-"
            ax.plot(dates, y, label=k, color=colour, marker=marker, markersize=3, linewidth=width,
                    linestyle=style, zorder=2 + i)
            if n > 1:
                ax.fill_between(dates, lows[k], highs[k], color=colour, alpha=0.18, linewidth=0)
        lo = np.nanmin([np.nanmin(lows[k]) if not np.all(np.isnan(lows[k])) else 0 for k in names])
        if lo >= 0:
            ax.set_ylim(bottom=0)
    _value_axis(ax.yaxis, ax, [highs[k] for k in names] if chart.kind != "stacked" else [bottom])
    _time_axis(ax, float(chart.x[0]), float(chart.x[-1]))
    _markers(ax, chart)
    legend = len(names) > 1 or chart.kind == "stacked" or bool(chart.markers)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.2)
    # Fixed margins rather than tight_layout, which measures every text
    # twice; the legend sits right of the plot, sized by its longest name.
    longest = max([len(n) for n in names] + [len("reclaim stalls") if chart.markers else 0])
    w, h = size
    right = 1.0 - (0.7 + 0.072 * longest) / w if legend else 0.97
    ax.figure.subplots_adjust(left=0.765 / w, right=max(0.5, right), bottom=0.544 / h, top=1 - 0.32 / h)


MARKER_COLOUR = {"oom": "#B00020", "stall": "#7B3294"}


def _markers(ax, chart: Chart) -> None:
    """OOM kills as red vertical lines, reclaim stall bursts as shaded spans.

    Only the events inside the chart's time range are drawn; each kind gets
    one legend entry, so the legend stays short on a run with many kills.
    """
    if not chart.markers or not chart.x:
        return
    lo, hi = float(chart.x[0]) - 1.0, float(chart.x[-1]) + 1.0
    labelled: set[str] = set()
    for m in chart.markers:
        end = m.end if m.end is not None else m.t
        if end < lo or m.t > hi:
            continue
        colour = MARKER_COLOUR.get(m.kind, "#444444")
        name = {"oom": "OOM kill", "stall": "reclaim stalls"}.get(m.kind, m.kind)
        label = None if name in labelled else name
        labelled.add(name)
        if m.end is not None and m.end > m.t:
            ax.axvspan(m.t / 86400.0, m.end / 86400.0, color=colour, alpha=0.12, linewidth=0, label=label,
                       zorder=1)
        else:
            ax.axvline(m.t / 86400.0, color=colour, linewidth=1.4, linestyle=(0, (3, 1.5)), label=label,
                       zorder=10)


def _draw_bar(ax, chart: Chart) -> None:
    import numpy as np

    cats = list(chart.categories) or [str(v) for v in chart.x]
    names = list(chart.series)
    if not cats or not names:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#666")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    # Horizontal bars: category names (process names, caches) stay readable.
    pos = np.arange(len(cats))
    height = 0.8 / len(names)
    for i, k in enumerate(names):
        vals = [math.nan if v is None else float(v) for v in chart.series[k]]
        ax.barh(pos + (i - (len(names) - 1) / 2) * height, vals, height=height, label=k,
                color=PALETTE[i % len(PALETTE)])
    ax.set_yticks(pos)
    ax.set_yticklabels([c if len(c) <= 28 else c[:26] + ".." for c in cats])
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    _value_axis(ax.xaxis, ax, [chart.series[k] for k in names], horizontal=True)
    if chart.y_label:
        ax.set_xlabel(chart.y_label)
    if len(names) > 1:
        ax.legend(loc="lower right")
    fig = ax.figure
    height = max(2.0, 0.8 + 0.28 * len(cats) * max(1, len(names) * 0.6))
    fig.set_size_inches(FIG_W_IN, height)
    longest = max(min(len(c), 28) for c in cats)
    fig.subplots_adjust(left=min(0.4, (0.25 + 0.066 * longest) / FIG_W_IN), right=0.97,
                        bottom=0.55 / height, top=1 - 0.35 / height)


def standalone(svg: str) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n"
