"""Tests that need the ``report`` extra are skipped, saying so, where it is
not installed: ``make test-pythons`` runs the suite on the core install
(standard library + zstandard) of each Python. ``make deps`` installs the
extra, so the full suite runs everything.
"""

from __future__ import annotations

import importlib.util

import pytest

REPORT_EXTRA = ("matplotlib", "jinja2", "markupsafe", "markdown_it", "weasyprint")
MISSING = [m for m in REPORT_EXTRA if importlib.util.find_spec(m) is None]

# These import the HTML renderer (jinja2, markupsafe) when collected.
collect_ignore = (["unit/test_render_html.py", "unit/test_render_pdf.py", "unit/test_render_bundle.py"]
                  if MISSING else [])


def pytest_collection_modifyitems(config, items):
    if not MISSING:
        return
    skip = pytest.mark.skip(reason=f"needs the report extra: {', '.join(MISSING)} not installed")
    for item in items:
        if item.get_closest_marker("report_extra"):
            item.add_marker(skip)


def pytest_report_header(config):
    if MISSING:
        return (f"report extra not installed ({', '.join(MISSING)}): its tests and "
                f"{', '.join(collect_ignore)} are left out")
    return None
