"""Charts: SVG from matplotlib, gaps, downsampling, ids, lazy import."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from render_sample import T0, sample_report

from snapcollect.report.charts import MAX_POINTS, chart_svg, downsample, downsample_note, prefix_ids
from snapcollect.report.model import Chart

pytestmark = pytest.mark.report_extra


def test_downsample_keeps_gaps_and_bounds_points():
    x = [T0 + i for i in range(3600)]
    y = [None if 100 <= i < 120 else float(i % 10) for i in range(3600)]
    xs, mean, low, high, n = downsample(x, {"a": y})
    assert len(xs) <= MAX_POINTS and n == 4
    assert mean["a"][0] == (0 + 1 + 2 + 3) / 4 and low["a"][0] == 0 and high["a"][0] == 3
    assert all(math.isnan(v) for v in mean["a"][25:30])     # samples 100..119: a gap, not zero
    assert xs[0] == T0 + 1.5


def test_short_series_unchanged_none_to_nan():
    xs, mean, _, _, n = downsample([1.0, 2.0, 3.0], {"a": [1, None, 3]})
    assert n == 1 and xs == [1.0, 2.0, 3.0]
    assert mean["a"][0] == 1 and math.isnan(mean["a"][1])


def test_caption_says_when_downsampled():
    long = Chart("c", "c", [T0 + i for i in range(3600)], {"a": [1.0] * 3600})
    assert downsample_note(long) == ("3,600 samples drawn as 900 points (mean of every 4); "
                                     "the shaded band is the min-max range.")
    assert downsample_note(Chart("c", "c", [T0, T0 + 1], {"a": [1, 2]})) == ""


def test_svg_valid_deterministic_and_clean():
    chart = sample_report().sections[1].blocks[2]           # PSI with a gap
    a = chart_svg(chart)
    assert a == chart_svg(chart)
    root = ET.fromstring(a)
    assert root.tag.endswith("svg")
    assert "<metadata" not in a and "<!DOCTYPE" not in a and "<?xml" not in a
    assert "PSI memory" in a and "time (UTC)" in a and "14:02:10" in a
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert ids and all(i.startswith("chart-psi-") for i in ids)


def test_id_prefix_follows_references():
    svg = ('<svg><defs><path id="m1"/><clipPath id="p2"/></defs><use xlink:href="#m1"/>'
           '<g clip-path="url(#p2)"/><a href="#elsewhere"/></svg>')
    out = prefix_ids(svg, "c1")
    assert 'id="c1-m1"' in out and 'xlink:href="#c1-m1"' in out and "url(#c1-p2)" in out
    assert 'href="#elsewhere"' in out                       # not ours: untouched


def test_every_kind_renders_including_empty():
    r = sample_report()
    for chart in (r.sections[1].subsections[0].blocks[1], r.sections[2].blocks[1],
                  Chart("e", "empty", [], {}), Chart("b", "no bars", [], {}, kind="bar")):
        ET.fromstring(chart_svg(chart))


def test_markdown_to_stdout_and_json_do_not_import_matplotlib():
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r});"
            "from render_sample import sample_report;"
            "from snapcollect.report.markdown import render_markdown;"
            "from snapcollect.report.json_out import render_json;"
            "r = sample_report(); render_markdown(r, None); render_json(r);"
            "print('matplotlib' in sys.modules, 'weasyprint' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_all_zero_series_gets_a_plain_axis():
    svg = chart_svg(Chart("z", "scan", [T0 + i for i in range(5)], {"pgscank/s": [0.0] * 5}))
    labels = set(re.findall(r">\s*([-0-9.]+[a-zA-Z]?)\s*<", svg))
    assert "1" in labels and "0" in labels
    assert not any(label.endswith("m") for label in labels)     # not "50m" (milli) for 0.05
