"""Render a ``Report`` to PDF: the HTML page through weasyprint.

The print rules live in ``report_templates/report.css`` (A4, "page N of M",
host and window in the running header, landscape pages for very wide
tables). weasyprint is given a URL fetcher that refuses everything: the
page is self-contained, and a report renderer has no business reaching
the network or the local file system on behalf of text from a bundle.

Rendering starts no program and writes nothing outside the output
directory: weasyprint is imported under ``no_programs`` (its library
lookup would run ldconfig, gcc and ld), and whatever a library puts
through Python's ``tempfile`` during the render goes to a private
directory that is removed afterwards.

weasyprint needs pango, pangoft2 and harfbuzz (and through them glib
and fontconfig), which minimal and cloud images often lack: then the PDF
is refused in one line naming the Debian packages, and the other
formats still work.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import warnings
from typing import Iterator

from snapcollect.errors import SnapcollectError
from snapcollect.report.html import render_html
from snapcollect.report.model import Report
from snapcollect.report.no_programs import no_programs

# Debian/Ubuntu packages of the libraries weasyprint dlopen()s; glib
# (libglib2.0-0) and fontconfig (libfontconfig1) come with them.
DEBIAN_PACKAGES = ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz0b")


class PdfUnavailable(SnapcollectError):
    """weasyprint or the libraries it needs cannot be loaded."""

    exit_code = 1


_weasyprint = None


def _no_fetch(url: str, *args, **kwargs):
    raise ValueError(f"external resource refused: {url}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_weasyprint():
    """The weasyprint module, imported without starting programs; PdfUnavailable if it cannot be."""
    global _weasyprint
    if _weasyprint is not None:
        return _weasyprint
    # weasyprint logs each CSS property it ignores at WARNING; those are
    # not the user's concern.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    # Debian 12's HarfBuzz lacks the subset library; weasyprint 70 still
    # works without it and says so on every run.
    warnings.filterwarnings("ignore", message=".*HarfBuzz-Subset.*", category=DeprecationWarning)
    packages = " ".join(DEBIAN_PACKAGES)
    # When a library is missing, weasyprint prints a banner to stdout,
    # which may be where the PDF is going.
    banner = io.StringIO()
    try:
        with no_programs(), contextlib.redirect_stdout(banner):
            import weasyprint
    except ImportError as exc:
        raise PdfUnavailable(f"PDF needs the Python package weasyprint ({_first_line(exc)}): pip install "
                             f"weasyprint, and apt install {packages}; .md, .html and .json reports work "
                             "without it") from None
    except OSError as exc:
        raise PdfUnavailable(f"PDF needs the pango and harfbuzz libraries ({_first_line(exc)}): apt install "
                             f"{packages}; .md, .html and .json reports work without them") from None
    _weasyprint = weasyprint
    return weasyprint


@contextlib.contextmanager
def private_tempdir() -> Iterator[str]:
    """Python's tempfile points into a fresh 0700 directory for the block, removed after."""
    path = tempfile.mkdtemp(prefix="snapcollect-pdf-")
    saved = tempfile.tempdir
    tempfile.tempdir = path
    try:
        yield path
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(path, ignore_errors=True)


def render_pdf(report: Report, html: str | None = None) -> bytes:
    """The report as PDF bytes (renders the HTML first unless given)."""
    weasyprint = load_weasyprint()
    with private_tempdir():
        if html is None:
            html = render_html(report, for_print=True)
        # The document title comes from the page's <title>.
        return weasyprint.HTML(string=html, url_fetcher=_no_fetch, base_url=None).write_pdf()
