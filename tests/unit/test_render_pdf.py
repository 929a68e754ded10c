"""PDF renderer: opens, has pages, and its text layer holds what matters."""

from __future__ import annotations

import io
import re

import pytest
from render_sample import sample_report

from snapcollect.report.pdf import render_pdf

pypdf = pytest.importorskip("pypdf", reason="pypdf is a test dependency (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def pdf_pages():
    data = render_pdf(sample_report())
    assert data.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return reader, [p.extract_text() or "" for p in reader.pages]


def test_opens_with_pages(pdf_pages):
    reader, texts = pdf_pages
    assert len(reader.pages) >= 3
    assert reader.metadata.title == "Memory report: web1"


def test_page_numbers_and_running_header(pdf_pages):
    _, texts = pdf_pages
    n = len(texts)
    for i, text in enumerate(texts, start=1):
        assert f"page {i} of {n}" in text
        assert "web1" in text and "2025-11-22 14:02:10" in text


def test_text_layer_has_titles_findings_and_figures(pdf_pages):
    _, texts = pdf_pages
    text = re.sub(r"\s+", " ", " ".join(texts))
    for s in ("Memory report: web1", "Verdict", "Timeline", "Findings in detail", "Paging and reclaim",
              "sar -B: paging", "sar -r ALL", "OOM kills", "OOM_KILL", "RECLAIM_INEFFICIENT",
              "455.62", "Average:", "24406036", "NO: stopped by SIGINT after 60 s"):
        assert s in text, s


def test_very_wide_table_is_split_on_portrait_pages(pdf_pages):
    reader, texts = pdf_pages
    # sar -r ALL prints in parts (each with the time) on portrait pages: no
    # landscape page of its own, and every column is there.
    for page in reader.pages:
        assert float(page.mediabox.width) < float(page.mediabox.height)
    text = " ".join(texts)
    assert "kbmemfree" in text and "kbvmused" in text
