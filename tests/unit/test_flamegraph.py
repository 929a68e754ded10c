"""Flame graph SVG from folded stacks."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from snapcollect.report.flamegraph import build_tree, fit_text, frame_colour, render_flamegraph

NS = "{http://www.w3.org/2000/svg}"
FOLDED = [("main;run;touch_pages", 600), ("main;run;alloc_buffer;memset", 300), ("main;init", 100)]


def _frames(svg: str) -> dict[str, tuple[float, float, float, str]]:
    """frame name -> (x, y, width, tooltip) from the SVG."""
    root = ET.fromstring(svg)
    out = {}
    for g in root.iter(NS + "g"):
        tip = g.find(NS + "title").text
        rect = g.find(NS + "rect")
        name = tip.split(" (")[0]
        out[name] = (float(rect.get("x")), float(rect.get("y")), float(rect.get("width")), tip)
    return out


def test_tree_counts_add_up():
    root = build_tree(FOLDED + [("main;run;touch_pages", 50), ("bad", 0)])
    assert root.count == 1050
    assert root.children["main"].children["run"].count == 950
    assert root.children["main"].children["run"].children["touch_pages"].count == 650


def test_widths_proportional_and_layout_flame():
    svg = render_flamegraph(FOLDED, title="faults", count_name="faults", width=1000)
    f = _frames(svg)
    assert set(f) == {"all", "main", "run", "touch_pages", "alloc_buffer", "memset", "init"}
    plot = f["all"][2]
    assert abs(f["touch_pages"][2] / plot - 0.6) < 1e-3
    assert abs(f["alloc_buffer"][2] / plot - 0.3) < 1e-3
    assert abs(f["init"][2] / plot - 0.1) < 1e-3
    assert f["all"][1] > f["main"][1] > f["run"][1] > f["memset"][1]      # root at the bottom
    # children sorted by name: alloc_buffer left of touch_pages, both inside run
    assert f["run"][0] <= f["alloc_buffer"][0] < f["touch_pages"][0]
    assert f["touch_pages"][3] == "touch_pages (600 faults, 60.00%)"


def test_deterministic_and_colour_by_name():
    a = render_flamegraph(FOLDED, id_prefix="x")
    b = render_flamegraph(list(reversed(FOLDED)), id_prefix="x")
    assert a == b
    assert frame_colour("memset") == frame_colour("memset") != frame_colour("main")
    fill = re.search(r'<title>memset[^<]*</title><rect [^>]*fill="([^"]+)"', a).group(1)
    assert fill == frame_colour("memset")


def test_text_truncated_to_fit():
    assert fit_text("short", 200) == "short"
    cut = fit_text("a_very_long_function_name_that_cannot_fit", 80)
    assert cut.endswith("..") and len(cut) < 20
    assert fit_text("anything", 10) == ""
    svg = render_flamegraph([("main;" + "x" * 300, 10)], width=400)
    label = [t for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg) if t.startswith("xxx")]
    assert label and label[0].endswith("..") and len(label[0]) < 80


def test_tiny_frames_left_out_but_counted():
    folded = [("main;big", 100000), ("main;tiny", 1)]
    f = _frames(render_flamegraph(folded, width=1000))
    assert "tiny" not in f
    assert "main (100,001 samples, 100.00%)" == f["main"][3]


def test_escaping_and_empty_input():
    svg = render_flamegraph([("main;operator<<(std::ostream&)", 5)], title="a & b")
    ET.fromstring(svg)                                  # well-formed
    assert "operator&lt;&lt;(std::ostream&amp;)" in svg
    empty = render_flamegraph([])
    ET.fromstring(empty)
    assert "no stacks recorded" in empty


def test_deep_stack_merged_in_the_middle():
    from snapcollect.report.flamegraph import MAX_DEPTH, ROOT_FRAMES, merge_deep

    frames = [f"f{i}" for i in range(128)]
    merged = merge_deep(frames)
    assert len(merged) == MAX_DEPTH
    assert merged[:ROOT_FRAMES] == frames[:ROOT_FRAMES] and merged[-1] == "f127"
    assert merged[ROOT_FRAMES] == f"[{128 - MAX_DEPTH + 1} frames]"
    assert merge_deep(frames[:10]) == frames[:10]
    # The picture of a 128-frame stack is as high as a 32-frame one, not 2,000 units.
    svg = render_flamegraph([(";".join(frames), 10), ("a;b", 5)])
    height = float(re.search(r'viewBox="0 0 \d+ (\d+)"', svg).group(1))
    assert height <= 28 + (MAX_DEPTH + 1) * 16 + 8
    assert "[97 frames]" in svg


def test_frames_carry_what_the_script_needs():
    from snapcollect.report.flamegraph import FLAME_SCRIPT

    svg = render_flamegraph([('a"&<x>;b', 3), ('a"&<x>;c', 1)])
    root = ET.fromstring(svg)
    assert root.get("data-total") == "4"
    frames = {g.get("data-name"): g for g in root.iter(NS + "g")}
    assert set(frames) == {"all", 'a"&<x>', "b", "c"}          # attribute-escaped, read back intact
    g = frames["b"]
    assert (g.get("data-count"), g.get("data-depth")) == ("3", "2")
    assert float(g.get("data-w")) == float(g.find(NS + "rect").get("width"))
    # The script only changes geometry, colours and textContent: it never writes markup.
    assert "innerHTML" not in FLAME_SCRIPT and "fetch" not in FLAME_SCRIPT and "XMLHttpRequest" not in FLAME_SCRIPT
