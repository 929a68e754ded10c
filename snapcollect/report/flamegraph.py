"""A compact flame graph renderer: folded stacks to one SVG.

Input is what ``stackcount -f``, ``perf script | stackcollapse`` and
flamegraph.pl use, one line per distinct stack, frames root first::

    main;run_workload;touch_pages;[unknown] 1520
    main;run_workload;alloc_buffer 310

here already split into ``[("main;run_workload;touch_pages;[unknown]", 1520), ...]``.
Layout follows flamegraph.pl: the root at the bottom, each frame as wide
as the samples under it, children sorted by name so the picture is the
same for the same input. Frames narrower than ``min_width_px`` are left
out (their samples still count in the parent's width) to bound the size
of the SVG. Each frame has a ``<title>`` tooltip with its count and share;
colour comes from a hash of the frame name (flamegraph.pl's "hot"
palette), so a function keeps its colour across graphs and runs.
No maintained Python library renders folded stacks, hence this module.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

WIDTH = 1200.0
FRAME_H = 16.0
FONT_SIZE = 11.0
# Average glyph width of a sans-serif font at FONT_SIZE, as flamegraph.pl
# estimates it (0.59 em); used to truncate names that do not fit.
CHAR_W = FONT_SIZE * 0.59
PAD_TOP = 28.0
PAD_BOTTOM = 8.0
PAD_SIDE = 10.0


@dataclass
class _Node:
    name: str
    count: int = 0
    children: dict[str, "_Node"] = field(default_factory=dict)


def build_tree(folded: list[tuple[str, int]]) -> _Node:
    """Merge folded stacks into a tree; counts add up along each path."""
    root = _Node("all")
    for stack, count in folded:
        if count <= 0:
            continue
        root.count += count
        node = root
        for frame in stack.split(";"):
            frame = frame.strip() or "[unknown]"
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = _Node(frame)
            child.count += count
            node = child
    return root


def frame_colour(name: str) -> str:
    """flamegraph.pl's "hot" palette, indexed by a stable hash of the name."""
    h = zlib.crc32(name.encode("utf-8", "surrogateescape"))
    v1 = (h & 0xFF) / 255.0
    v2 = ((h >> 8) & 0xFF) / 255.0
    v3 = ((h >> 16) & 0xFF) / 255.0
    r = 205 + int(50 * v3)
    g = int(230 * v1)
    b = int(55 * v2)
    return f"rgb({r},{g},{b})"


def fit_text(name: str, width_px: float) -> str:
    """The frame name, cut with ".." to fit; empty when not even 3 chars fit."""
    chars = int((width_px - 6) / CHAR_W)
    if chars < 3:
        return ""
    if len(name) <= chars:
        return name
    return name[: chars - 2] + ".."


def render_flamegraph(folded: list[tuple[str, int]], *, title: str = "", count_name: str = "samples",
                      id_prefix: str = "fg", width: float = WIDTH, min_width_px: float = 0.5,
                      max_depth: int = 128) -> str:
    """Folded stacks -> SVG text (no XML prolog, ready to inline in HTML)."""
    root = build_tree(folded)
    total = root.count
    plot_w = width - 2 * PAD_SIDE
    # Collect the frames to draw first: the depth sets the height.
    rects: list[tuple[float, int, float, _Node]] = []   # x, depth, w, node

    def walk(node: _Node, x: float, depth: int) -> None:
        w = plot_w * node.count / total
        if w < min_width_px or depth > max_depth:
            return
        rects.append((x, depth, w, node))
        cx = x
        for name in sorted(node.children):
            child = node.children[name]
            walk(child, cx, depth + 1)
            cx += plot_w * child.count / total

    if total > 0:
        walk(root, PAD_SIDE, 0)
    depth = max((d for _, d, _, _ in rects), default=0) + 1
    height = PAD_TOP + depth * FRAME_H + PAD_BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="flamegraph" id="{escape(id_prefix)}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
           f'font-family="DejaVu Sans, Verdana, sans-serif" font-size="{FONT_SIZE:g}" '
           f'role="img">']
    heading = title or "Flame graph"
    out.append(f'<text x="{width / 2:.1f}" y="17" text-anchor="middle" font-size="14">'
               f'{escape(heading)}</text>')
    if total == 0:
        out.append(f'<text x="{width / 2:.1f}" y="{PAD_TOP + 12:.0f}" text-anchor="middle" '
                   f'fill="#666">no stacks recorded</text></svg>')
        return "".join(out)
    for x, d, w, node in rects:
        y = height - PAD_BOTTOM - (d + 1) * FRAME_H
        share = 100.0 * node.count / total
        name = "all" if d == 0 else node.name
        tip = f"{name} ({node.count:,} {count_name}, {share:.2f}%)"
        fill = "rgb(230,230,230)" if d == 0 else frame_colour(node.name)
        label = fit_text(name, w)
        out.append(f'<g><title>{escape(tip)}</title>'
                   f'<rect x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" height="{FRAME_H - 1:.0f}" '
                   f'fill="{fill}" rx="2" ry="2"/>')
        if label:
            out.append(f'<text x="{x + 3:.2f}" y="{y + FRAME_H - 4.5:.1f}">{escape(label)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def standalone(svg: str) -> str:
    """The SVG as a file of its own (XML prolog), for Markdown reports."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n"
