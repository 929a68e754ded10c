"""The sample HTML report as a person sees it: headless Chromium at a desktop
(1280 x 800) and a phone (390 x 844) size.

The verdict must be within the first 800 px on the desktop and on the
phone's first screen, and nothing may make the page wider than the
viewport (a wide table scrolls in its own box; kernel log lines wrap).
The page is loaded in an iframe of the exact size (headless Chromium will
not make a window narrower than 500 px), with a probe script that posts
what it measured to the host page, whose DOM Chromium prints.
Needs Debian's ``chromium`` (scripts/setup-host.sh installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from snapcollect.bundle import open_bundle
from snapcollect.report.build import build_report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = [os.path.join(REPO, "samples", n) for n in ("sample-memcg-oom.tar.zst", "sample-idle.tar.zst")]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.report_extra,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)")]

PROBE = r"""
(function () {
  var v = document.getElementById("verdict");
  var text = document.querySelector("#verdict .verdict-text") || v.querySelector("p") || v;
  var W = document.documentElement.clientWidth, wide = [];
  Array.prototype.forEach.call(document.querySelectorAll("body *"), function (e) {
    var r = e.getBoundingClientRect();
    // inside a scrolling box (a wide data table) is fine: the page itself does not scroll sideways
    var box = e.closest(".scroll");
    if (r.width > 0 && r.right > W + 1 && !(box && box !== e)) wide.push(e.tagName + "." + e.className);
  });
  var out = {heading_top: v.getBoundingClientRect().top + window.scrollY,
             text_bottom: text.getBoundingClientRect().bottom + window.scrollY,
             findings_top: (document.querySelector("#verdict table.findings") || v).getBoundingClientRect().top
                           + window.scrollY,
             scroll_width: document.documentElement.scrollWidth, width: W, height: window.innerHeight,
             wide: wide.slice(0, 10)};
  window.parent.postMessage(JSON.stringify(out), "*");
})();
"""

HOST = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="report.html" style="border:0;width:{w}px;height:{h}px"></iframe>
<script>window.addEventListener("message", function (e) {{
  var p = document.createElement("pre"); p.id = "probe"; p.textContent = e.data; document.body.appendChild(p); }});
</script></body></html>"""


def _measure(tmp_path, html: str, w: int, h: int, probe: str | None = None) -> dict:
    (tmp_path / "report.html").write_text(html.replace("</body>", f"<script>{probe or PROBE}</script></body>"),
                                          encoding="utf-8")
    host = tmp_path / f"host-{w}.html"
    host.write_text(HOST.format(w=w, h=h), encoding="utf-8")
    run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                          f"--window-size={w + 100},{h + 100}", "--virtual-time-budget=10000", "--dump-dom",
                          host.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert m, f"chromium printed no measurement (exit {run.returncode}): {run.stderr[-1500:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module", params=SAMPLES, ids=os.path.basename)
def html(request):
    from snapcollect.report.html import render_html

    return render_html(build_report(open_bundle(request.param)))


def test_desktop_verdict_on_the_first_screen(tmp_path, html):
    m = _measure(tmp_path, html, 1280, 800)
    assert m["width"] == 1280
    assert m["heading_top"] < 300 and m["text_bottom"] <= 800, m
    assert m["findings_top"] < 800, m
    assert m["scroll_width"] <= m["width"] and m["wide"] == [], m


def test_phone_verdict_on_the_first_screen(tmp_path, html):
    m = _measure(tmp_path, html, 390, 844)
    assert m["width"] == 390
    assert m["text_bottom"] <= m["height"], m
    assert m["scroll_width"] <= m["width"] and m["wide"] == [], m


FLAME_PROBE = r"""
(function () {
  var fig = document.querySelector("figure.flamegraph"), out = {};
  var svg = fig.querySelector("svg"), pw = parseFloat(svg.getAttribute("data-plot-w"));
  var controls = fig.querySelector(".fg-controls");
  out.controls_shown = !controls.hidden;
  var frames = Array.prototype.slice.call(svg.querySelectorAll("g.fg-frame"));
  var target = frames.filter(function (g) { return g.getAttribute("data-depth") === "2"; })
                     .sort(function (a, b) { return parseFloat(a.getAttribute("data-w")) - parseFloat(b.getAttribute("data-w")); })[0];
  var before = parseFloat(target.querySelector("rect").getAttribute("width"));
  target.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  out.zoomed = Math.abs(parseFloat(target.querySelector("rect").getAttribute("width")) - pw) < 0.5 && before < pw;
  out.hidden_after_zoom = frames.filter(function (g) { return g.style.display === "none"; }).length;
  var input = fig.querySelector("input.fg-search");
  input.value = target.getAttribute("data-name").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  input.dispatchEvent(new Event("input"));
  out.status = fig.querySelector(".fg-status").textContent;
  out.highlighted = frames.filter(function (g) { return g.querySelector("rect").getAttribute("fill") === "rgb(230,0,230)"; }).length;
  fig.querySelector("button.fg-reset").click();
  out.reset = Math.abs(parseFloat(target.querySelector("rect").getAttribute("width")) - before) < 0.01 &&
              frames.every(function (g) { return g.style.display !== "none"; });
  out.status_after_reset = fig.querySelector(".fg-status").textContent;
  window.parent.postMessage(JSON.stringify(out), "*");
})();
"""


def test_flame_graph_zooms_searches_and_resets(tmp_path):
    from snapcollect.report.html import render_html

    html = render_html(build_report(open_bundle(SAMPLES[0])))
    m = _measure(tmp_path, html, 1280, 800, FLAME_PROBE)
    assert m["controls_shown"] and m["zoomed"] and m["hidden_after_zoom"] > 0, m
    assert m["status"].startswith("matched ") and m["highlighted"] >= 1, m
    assert m["reset"] and m["status_after_reset"] == "", m
