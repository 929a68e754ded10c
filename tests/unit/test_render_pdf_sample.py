"""The incident sample's PDF as pages: at most 12, the answer on page 1, and
everything the findings cite still in it."""

from __future__ import annotations

import io
import os
import re
import time

import pytest

from snapcollect.bundle import open_bundle
from snapcollect.report.build import build_report
from snapcollect.report.formatting import section_titles

pypdf = pytest.importorskip("pypdf")
pytestmark = [pytest.mark.report_extra, pytest.mark.slow]

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "samples",
                      "sample-memcg-oom.tar.zst")
MAX_PAGES = 12


@pytest.fixture(scope="module")
def pdf():
    from snapcollect.report.pdf import render_pdf

    report = build_report(open_bundle(SAMPLE))
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(report)))
    texts = [re.sub(r"\s+", " ", p.extract_text() or "") for p in reader.pages]
    return report, reader, texts


def test_fits_in_twelve_pages(pdf):
    _, reader, _ = pdf
    assert len(reader.pages) <= MAX_PAGES


def test_first_page_answers(pdf):
    report, _, texts = pdf
    first = texts[0]
    assert "Verdict: CRIT" in first and "What to do" in first
    for f in report.findings:
        assert f.key in first, f.key
    assert "Swap in/out" in first and "Memory pressure" in first       # the charts that prove it


def test_everything_the_findings_cite_is_printed(pdf):
    report, _, texts = pdf
    text = " ".join(texts)
    titles = section_titles(report.sections)
    for f in report.findings:
        assert f"{f.key}:" in text.replace(" :", ":"), f.key            # its detail
        if f.evidence.section:
            assert titles[f.evidence.section] in text, f.evidence.section
    # the victim, its kernel log lines, and the earlier kills OOM_BEFORE_WINDOW names
    oom = next(f for f in report.findings if f.key == "MEMCG_OOM").evidence.values
    victim = oom["kills"][0]
    assert f"Killed process {victim['pid']} ({victim['comm']})" in text
    earlier = next(f for f in report.findings if f.key == "OOM_BEFORE_WINDOW")
    for pid in re.findall(r"pid (\d+)", earlier.title):
        assert pid in text, pid
    # the cited time series, every interval (sar -W: swapping)
    sar_w = next(t for t in report.all_tables() if t.id == "sar-W")
    assert len(sar_w.rows) == 20
    stamps = [time.strftime("%H:%M:%S", time.gmtime(r["t"])) for r in sar_w.rows]
    assert all(stamp in text for stamp in stamps), [s for s in stamps if s not in text]
