"""Render a ``Report`` to PDF: the HTML page through weasyprint.

The print rules live in ``report_templates/report.css`` (A4, "page N of M",
host and window in the running header, landscape pages for very wide
tables). weasyprint is given a URL fetcher that refuses everything: the
page is self-contained, and a report renderer has no business reaching
the network or the local file system on behalf of text from a bundle.
"""

from __future__ import annotations

import logging
import warnings

from snapcollect.report.html import render_html
from snapcollect.report.model import Report


def _no_fetch(url: str, *args, **kwargs):
    raise ValueError(f"external resource refused: {url}")


def render_pdf(report: Report, html: str | None = None) -> bytes:
    """The report as PDF bytes (renders the HTML first unless given)."""
    # weasyprint logs each CSS property it ignores at WARNING; those are
    # not the user's concern.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    # Debian 12's HarfBuzz lacks the subset library; weasyprint 70 still
    # works without it and says so on every run.
    warnings.filterwarnings("ignore", message=".*HarfBuzz-Subset.*", category=DeprecationWarning)
    from weasyprint import HTML

    if html is None:
        html = render_html(report, for_print=True)
    # The document title comes from the page's <title>.
    return HTML(string=html, url_fetcher=_no_fetch, base_url=None).write_pdf()
