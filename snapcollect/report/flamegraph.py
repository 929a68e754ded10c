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

Deep stacks are merged for drawing (``merge_deep``): a stack of more than
``MAX_DEPTH`` frames keeps its ``ROOT_FRAMES`` outermost and its innermost
frames, the middle ones become one ``[N frames]`` frame. A 128-frame
recursion would otherwise make a picture some 2,000 px high and nearly
empty; the folded stacks themselves (JSON, the bundle) are not changed.

Each frame's ``<g>`` carries its name, count, position and depth as data
attributes, for ``FLAME_SCRIPT``: the HTML report's small inline script
that zooms into a frame on click, highlights the frames a search matches
(with their share of the samples) and resets. The PDF is the same SVG
without the script.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

WIDTH = 1200.0
FRAME_H = 16.0
FONT_SIZE = 11.0
# Average glyph width of a sans-serif font at FONT_SIZE, as flamegraph.pl
# estimates it (0.59 em); used to truncate names that do not fit.
CHAR_W = FONT_SIZE * 0.59
PAD_TOP = 28.0
PAD_BOTTOM = 8.0
PAD_SIDE = 10.0
MAX_DEPTH = 32
ROOT_FRAMES = 4


@dataclass
class _Node:
    name: str
    count: int = 0
    children: dict[str, "_Node"] = field(default_factory=dict)


def merge_deep(frames: list[str], max_depth: int = MAX_DEPTH, keep_root: int = ROOT_FRAMES) -> list[str]:
    """The frames of one stack (root first), its middle merged when deeper than ``max_depth``."""
    if len(frames) <= max_depth:
        return frames
    keep_leaf = max_depth - keep_root - 1
    merged = len(frames) - keep_root - keep_leaf
    return frames[:keep_root] + [f"[{merged} frames]"] + frames[len(frames) - keep_leaf:]


def build_tree(folded: list[tuple[str, int]], max_depth: int | None = None) -> _Node:
    """Merge folded stacks into a tree; counts add up along each path."""
    root = _Node("all")
    for stack, count in folded:
        if count <= 0:
            continue
        root.count += count
        node = root
        frames = [f.strip() or "[unknown]" for f in stack.split(";")]
        if max_depth is not None:
            frames = merge_deep(frames, max_depth)
        for frame in frames:
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
                      max_depth: int = MAX_DEPTH) -> str:
    """Folded stacks -> SVG text (no XML prolog, ready to inline in HTML)."""
    root = build_tree(folded, max_depth)
    total = root.count
    plot_w = width - 2 * PAD_SIDE
    # Collect the frames to draw first: the depth sets the height.
    rects: list[tuple[float, int, float, _Node]] = []   # x, depth, w, node

    def walk(node: _Node, x: float, depth: int) -> None:
        w = plot_w * node.count / total
        if w < min_width_px:
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
           f'data-total="{total}" data-plot-x="{PAD_SIDE:g}" data-plot-w="{plot_w:.2f}" '
           f'data-char-w="{CHAR_W:.3f}" role="img">']
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
        out.append(f'<g class="fg-frame" data-name={quoteattr(name)} data-count="{node.count}" '
                   f'data-x="{x:.2f}" data-w="{w:.2f}" data-depth="{d}"><title>{escape(tip)}</title>'
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


# The HTML report's only script: zoom, search and reset for every flame
# graph of the page. It reads the data attributes render_flamegraph writes,
# changes only geometry, colours and textContent (never markup), fetches
# nothing, and is left out of the PDF (weasyprint runs no script anyway).
FLAME_SCRIPT = r"""
(function () {
  function fit(name, w, cw) {
    var n = Math.floor((w - 6) / cw);
    if (n < 3) return "";
    return name.length <= n ? name : name.slice(0, n - 2) + "..";
  }
  function setup(box) {
    var svg = box.querySelector("svg.flamegraph");
    if (!svg) return;
    var frames = Array.prototype.slice.call(svg.querySelectorAll("g.fg-frame"));
    var px = parseFloat(svg.getAttribute("data-plot-x")), pw = parseFloat(svg.getAttribute("data-plot-w"));
    var cw = parseFloat(svg.getAttribute("data-char-w")), total = parseFloat(svg.getAttribute("data-total"));
    var input = box.querySelector("input.fg-search"), reset = box.querySelector("button.fg-reset");
    var status = box.querySelector(".fg-status");
    frames.forEach(function (g) {
      var r = g.querySelector("rect");
      g.fg = {name: g.getAttribute("data-name"), x: parseFloat(g.getAttribute("data-x")),
              w: parseFloat(g.getAttribute("data-w")), d: parseInt(g.getAttribute("data-depth"), 10),
              count: parseFloat(g.getAttribute("data-count")), rect: r, text: g.querySelector("text"),
              fill: r.getAttribute("fill")};
      g.style.cursor = "pointer";
      g.addEventListener("click", function () { zoom(g.fg); });
    });
    function place(f, x, w) {
      f.rect.setAttribute("x", x.toFixed(2));
      f.rect.setAttribute("width", Math.max(w, 0).toFixed(2));
      if (f.text) {
        f.text.setAttribute("x", (x + 3).toFixed(2));
        f.text.textContent = fit(f.d === 0 ? "all" : f.name, w, cw);
      }
    }
    function zoom(t) {
      var scale = pw / t.w, eps = 1e-6;
      frames.forEach(function (g) {
        var f = g.fg, inside = f.d >= t.d && f.x >= t.x - eps && f.x + f.w <= t.x + t.w + eps;
        var below = f.d < t.d && f.x <= t.x + eps && f.x + f.w >= t.x + t.w - eps;
        g.style.display = inside || below ? "" : "none";
        if (inside) place(f, px + (f.x - t.x) * scale, f.w * scale);
        else if (below) place(f, px, pw);
      });
      reset.disabled = t.d === 0;
    }
    function search() {
      var text = input.value, re = null;
      if (text) { try { re = new RegExp(text); } catch (e) { re = null; } }
      var matched = 0, seen = [];
      frames.forEach(function (g) {
        var f = g.fg, hit = re !== null && f.d > 0 && re.test(f.name);
        f.rect.setAttribute("fill", hit ? "rgb(230,0,230)" : f.fill);
        // a match inside another match is not counted twice
        if (hit && !seen.some(function (s) { return f.x >= s.x - 1e-6 && f.x + f.w <= s.x + s.w + 1e-6 && f.d > s.d; })) {
          matched += f.count; seen.push(f);
        }
      });
      status.textContent = !text ? "" : re === null ? "not a regular expression" :
        "matched " + (100 * matched / total).toFixed(1) + "% of the samples";
    }
    input.addEventListener("input", search);
    reset.addEventListener("click", function () {
      zoom(frames[0].fg); input.value = ""; search();
    });
    reset.disabled = true;
    box.querySelector(".fg-controls").hidden = false;
  }
  Array.prototype.forEach.call(document.querySelectorAll("figure.flamegraph"), setup);
})();
"""
