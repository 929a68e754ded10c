"""HTML renderer: one self-contained page that fetches nothing."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from render_sample import sample_report

from snapcollect.report.flamegraph import FLAME_SCRIPT
from snapcollect.report.html import render_html
from snapcollect.report.model import Paragraph


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def _parse(html: str) -> list[tuple[str, dict]]:
    p = _Collect()
    p.feed(html)
    return p.tags


def external_references(html: str) -> list[str]:
    """Every src/href/xlink:href/url()/@import that points off the page."""
    refs = []
    for tag, attrs in _parse(html):
        for name, value in attrs.items():
            if value is None:
                continue
            if name in ("src", "href", "xlink:href", "srcset", "data", "action", "poster", "background"):
                refs.append(value)
            refs += re.findall(r"url\(\s*['\"]?([^'\")]+)", value)
    refs += re.findall(r"url\(\s*['\"]?([^'\")]+)", html)
    refs += re.findall(r"@import\s+['\"]?([^'\";]+)", html)
    return [r for r in refs if not r.startswith("#")]


def test_no_external_references():
    html = render_html(sample_report())
    assert external_references(html) == []
    assert "<link" not in html and "@font-face" not in html
    assert "<img" not in html and "<iframe" not in html
    # One script, inline, the flame graph's; none in the page for print.
    assert re.findall(r"<script[^>]*>", html) == ["<script>"]
    assert FLAME_SCRIPT in html
    printed = render_html(sample_report(), for_print=True)
    assert "<script" not in printed and 'class="fg-controls"' not in printed


def test_external_link_in_text_is_shown_not_linked():
    html = render_html(sample_report())
    assert "https://github.com/sysstat/sysstat" in html              # the address stays readable
    assert 'href="https://' not in html
    assert '<a href="#oom">OOM kills</a>' in html                   # in-page links stay links


def test_markdown_images_are_not_fetched():
    r = sample_report()
    r.sections[0].blocks.append(Paragraph("![x](http://example.com/x.png) and <img src='http://e/x'>"))
    html = render_html(r)
    assert external_references(html) == []
    assert "<img" not in html


def test_every_in_page_link_resolves_and_ids_are_unique():
    html = render_html(sample_report())
    tags = _parse(html)
    ids = [a["id"] for _, a in tags if "id" in a]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    targets = {a["href"][1:] for t, a in tags if t == "a" and a.get("href", "").startswith("#")}
    targets |= {a.get("xlink:href", a.get("href", ""))[1:] for t, a in tags if t == "use"}
    assert targets <= set(ids), targets - set(ids)
    for ref in re.findall(r"url\(#([^)]+)\)", html):
        assert ref in ids


def test_contents_findings_and_inline_svgs():
    html = render_html(sample_report())
    assert html.count("<svg") == 4                   # three charts and one flame graph
    assert '<nav class="toc" id="contents">' in html
    for sid in ("verdict", "timeline", "finding-details", "free", "paging", "sar-r", "processes", "oom"):
        assert f'href="#{sid}"' in html and f'id="{sid}"' in html
    order = [html.index(f'id="finding-{k}"') for k in ("oom_kill", "psi_pressure", "reclaim_inefficient",
                                                        "psi_stalls")]
    assert order == sorted(order)
    assert "<strong>sar -B</strong>" in html          # Markdown in paragraphs rendered
    assert "<td>455.62</td>" in html and "<td>Average:</td>" not in html
    # the footer row keeps its label, inside tbody: a <tfoot> would be
    # repeated on every printed page
    assert '<tr class="foot"><td class="l">Average:</td>' in html
    assert "<tfoot>" not in html


def test_screen_tables_are_cell_tables():
    html = render_html(sample_report())
    assert 'class="data very-wide"' in html           # sar -r ALL: 17 columns
    assert 'class="data normal"' in html
    assert " wide-page\"" not in html and '<table class="text"' not in html


def test_print_tables_are_aligned_lines_sized_to_fit():
    html = render_html(sample_report(), for_print=True)
    # sar -r ALL does not fit portrait at a legible size: its columns are split
    # into parts printed one under the other, each starting with the time.
    m = re.search(r'<figure class="table text short" id="table-sar-r">(.*?)</figure>', html, re.S)
    assert m, "sar -r ALL is not a portrait text table"
    parts = re.findall(r'<table class="text part" style="font-size: ([0-9.]+)pt">\s*<thead><tr><td>(.*?)</td>',
                       m.group(1))
    assert len(parts) >= 2 and all(h.startswith("time") for _, h in parts)
    assert all(float(size) >= 5.8 for size, _ in parts)
    assert "kbvmused" in parts[-1][1] and "kbmemfree" in parts[0][1]
    assert "text short landscape" not in html and "wide-page\"" not in html
    m = re.search(r'<figure class="table text short" id="table-sar-B">.*?font-size: ([0-9.]+)pt.*?'
                  r'<thead><tr><td>(.*?)</td></tr></thead>\s*<tbody>\s*<tr><td>(.*?)</td>', html, re.S)
    assert m, "sar -B is not a portrait text table"
    assert 5.8 <= float(m.group(1)) <= 7.5
    header, first = m.group(2), m.group(3)
    assert header.startswith("time      pgpgin/s  pgpgout/s")
    assert first.startswith("14:02:11     10.12      20.25")
    assert len(header) == len(first)                  # right-aligned under their titles
    assert '<tr class="foot"><td>Average:     30.38' in html
    # long text cells: no line fits even landscape, so the cells wrap instead
    from render_sample import sar_b_table

    r = sample_report()
    t = sar_b_table(3)
    t.rows[0]["t"] = "x" * 400
    r.sections[1].blocks[1] = t
    assert 'id="table-sar-B"' in render_html(r, for_print=True)
    assert re.search(r'<figure class="table wide short" id="table-sar-B">', render_html(r, for_print=True))


def test_text_is_escaped():
    r = sample_report()
    r.sections[0].title = "free <b>&</b>"
    r.findings[0].title = "<script>alert(1)</script>"
    html = render_html(r).replace(f"<script>{FLAME_SCRIPT}</script>", "")
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "free &lt;b&gt;&amp;&lt;/b&gt;" in html


def test_the_reference_check_itself_catches_fetches():
    bad = ('<img src="http://x/a.png"><link href="https://cdn/x.css"><svg><use xlink:href="http://e#a"/>'
           '<rect style="fill:url(https://e/p)"/></svg><style>@import "https://f/x.css";'
           'a{background:url(data:image/png;base64,xx)}</style><a href="#ok">ok</a>')
    found = external_references(bad)
    assert {"http://x/a.png", "https://cdn/x.css", "http://e#a", "https://e/p", "https://f/x.css"} <= set(found)
    assert "#ok" not in found


def test_print_merges_long_time_series_tables_only_when_columns_say_how():
    from render_sample import sar_b_table

    from snapcollect.report.formatting import condense_rows
    from snapcollect.report.html import PRINT_MAX_ROWS

    t = sar_b_table(PRINT_MAX_ROWS * 3 + 1)
    assert condense_rows(t.columns, t.rows, PRINT_MAX_ROWS) is None       # %vmeff: unit "%", no agg
    for c in t.columns:
        if c.key == "%vmeff":
            c.agg = "none"
    rows, k = condense_rows(t.columns, t.rows, PRINT_MAX_ROWS)
    assert k == 4 and len(rows) <= PRINT_MAX_ROWS
    first = t.rows[:4]
    assert rows[0]["t"] == first[-1]["t"]                          # labelled by its end
    assert rows[0]["fault/s"] == sum(r["fault/s"] for r in first) / 4
    assert rows[0]["majflt/s"] == (first[0]["majflt/s"] + first[1]["majflt/s"] + first[3]["majflt/s"]) / 3
    assert rows[0]["%vmeff"] is None
    r = sample_report()
    r.sections[1].blocks[1] = t
    screen, paper = render_html(r), render_html(r, for_print=True)

    def sar_b(html: str) -> str:
        return re.search(r'id="table-sar-B">(.*?)</figure>', html, re.S).group(1)

    assert sar_b(screen).count("<tr>") - sar_b(paper).count("<tr>") == len(t.rows) - len(rows)
    assert "Printed as" in paper and "Printed as" not in screen
