"""Every format from the real fixture bundle (format_version 1), end to end.

The fixture is text captured on this machine (tests/fixtures/README.md).
These checks are structural: the exact Markdown is the golden test's job.
"""

from __future__ import annotations

import io
import json
import os
import re

import pytest
from test_render_html import external_references

from snapcollect.bundle import open_bundle
from snapcollect.report import formatting as F
from snapcollect.report.html import render_html
from snapcollect.report.json_out import render_json
from snapcollect.report.model import Table
from snapcollect.report.render import render_to

BUNDLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "bundles",
                      "memcg-swap-6.18.tar.zst")


@pytest.fixture(scope="module")
def report():
    try:
        from snapcollect.report.build import build_report
    except ImportError as exc:
        pytest.fail(f"snapcollect.report.build is missing ({exc})")
    return build_report(open_bundle(BUNDLE))


def _titles(sections):
    for s in sections:
        yield s
        yield from _titles(s.subsections)


def _key_figures(report) -> list[str]:
    """The Average: cells of the sar tables, as the report prints them."""
    out = []
    for t in report.all_tables():
        if t.id.startswith("sar-") and t.footer:
            out += [F.format_cell(t.footer[0], c) for c in t.columns[1:]]
    return [x for x in out if x not in ("-", "0", "0.00")]


def test_html_self_contained_and_linked(report):
    html = render_html(report)
    assert external_references(html) == []
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    for target in re.findall(r'href="#([^"]+)"', html):
        assert target in ids, target
    for s in _titles(report.sections):
        assert f'id="{s.id}"' in html


def test_pdf_pages_titles_and_figures(report, tmp_path):
    pypdf = pytest.importorskip("pypdf", reason="pypdf is a test dependency (pip install -e '.[test]')")
    out = tmp_path / "r.pdf"
    render_to(report, "pdf", str(out))
    reader = pypdf.PdfReader(io.BytesIO(out.read_bytes()))
    n = len(reader.pages)
    assert n >= 2
    text = re.sub(r"[ \t]+", " ", "\n".join(p.extract_text() or "" for p in reader.pages))
    assert f"page 1 of {n}" in text and f"page {n} of {n}" in text
    flat = re.sub(r"\s+", " ", text)
    for s in _titles(report.sections):
        assert re.sub(r"\s+", " ", s.title) in flat, s.title
    figures = _key_figures(report)
    assert figures, "no sar averages to look for"
    for fig in figures:
        assert fig in flat, fig
    for f in report.findings:
        assert f.key in flat


def test_json_tables_match_report(report):
    doc = json.loads(render_json(report))
    tables = {t["id"]: t for t in doc["tables"]}
    for t in report.all_tables():
        assert t.id in tables
    sar = [t for t in report.all_tables() if t.id.startswith("sar-")]
    assert sar, "the fixture has sar tables"
    for t in sar:
        j = tables[t.id]
        assert len(j["rows"]) == len(t.rows)
        assert [c["key"] for c in j["columns"]] == [c.key for c in t.columns]
        if t.footer:
            assert j["average"] is not None
    assert doc["meta"]["format_version"] == 1
    assert [f["key"] for f in doc["findings"]] == [f.key for f in F.sorted_findings(report.findings)]


def test_markdown_file_with_charts(report, tmp_path):
    out = tmp_path / "incident.md"
    render_to(report, "md", str(out))
    text = out.read_text()
    charts = re.findall(r"!\[[^\]]*\]\((incident-charts/[^)]+\.svg)\)", text)
    assert charts, "the fixture report has charts"
    for rel in charts:
        assert (tmp_path / rel).read_text().lstrip().startswith("<?xml")
    assert len(charts) == len(list(tmp_path.joinpath("incident-charts").iterdir()))


def test_every_table_renders_in_every_format(report):
    assert all(isinstance(t, Table) for t in report.all_tables())
    html = render_html(report, for_print=True)
    for t in report.all_tables():
        assert f'id="table-{F.slug_file(t.id)}' in html
