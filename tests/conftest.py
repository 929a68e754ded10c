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

# These import the HTML renderer (jinja2, markupsafe) or markdown-it-py
# when collected.
collect_ignore = (["unit/test_render_html.py", "unit/test_render_pdf.py", "unit/test_render_bundle.py",
                   "unit/test_markdown_escape.py", "unit/test_render_hostile_markup.py",
                   "unit/test_render_undecodable.py"]
                  if MISSING else [])


# Tests that render HTML or PDF, or need matplotlib to have a charts
# folder at all, by node id (a module: all of its tests).
NEEDS_REPORT_EXTRA = (
    "unit/test_render_pdf_isolation.py::",
    "unit/test_report_output_files.py::test_default_mode_is_the_bundles_whatever_the_umask[html]",
    "unit/test_report_output_files.py::test_symlink_at_the_report_name",
    "unit/test_report_output_files.py::test_cli_charts_symlink",
)


def pytest_collection_modifyitems(config, items):
    if not MISSING:
        return
    skip = pytest.mark.skip(reason=f"needs the report extra: {', '.join(MISSING)} not installed")
    for item in items:
        node = item.nodeid.split("tests/", 1)[-1]
        if item.get_closest_marker("report_extra") or node.startswith(NEEDS_REPORT_EXTRA):
            item.add_marker(skip)


def pytest_report_header(config):
    if MISSING:
        return (f"report extra not installed ({', '.join(MISSING)}): its tests and "
                f"{', '.join(collect_ignore)} are left out")
    return None
