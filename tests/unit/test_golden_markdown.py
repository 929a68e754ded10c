"""Golden Markdown: the fixture bundle rendered and compared exactly.

The expected text is tests/golden/<bundle stem>.md. It changes only on
purpose: after a deliberate change to the report, regenerate it with

    SNAPCOLLECT_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden_markdown.py

and review the diff before committing it. The fixture bundle is real
text captured on this machine (see tests/fixtures/README.md).
"""

from __future__ import annotations

import difflib
import os

import pytest

from snapcollect.bundle import open_bundle
from snapcollect.bundle.names import READABLE_VERSIONS
from snapcollect.report.markdown import render_markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLE = os.path.join(ROOT, "fixtures", "bundles", "memcg-swap-6.18.tar.zst")
GOLDEN = os.path.join(ROOT, "golden", "memcg-swap-6.18.md")
REGEN = os.environ.get("SNAPCOLLECT_REGEN_GOLDEN") == "1"


def _build_report(bundle):
    try:
        from snapcollect.report.build import build_report
    except ImportError as exc:   # not a skip: the report cannot be built at all
        pytest.fail(f"snapcollect.report.build.build_report is missing ({exc}); the report cannot be built")
    return build_report(bundle)


def _render(path: str = BUNDLE) -> str:
    report = _build_report(open_bundle(path))
    text, _ = render_markdown(report, "memcg-swap-6.18-charts")
    return text


def test_golden_markdown():
    got = _render()
    if REGEN:
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w", encoding="utf-8") as fh:
            fh.write(got)
    assert os.path.exists(GOLDEN), f"{GOLDEN} is missing; create it with SNAPCOLLECT_REGEN_GOLDEN=1"
    with open(GOLDEN, encoding="utf-8") as fh:
        want = fh.read()
    if got != want:
        diff = "".join(list(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "now"))[:80])
        pytest.fail("Markdown differs from the golden file; if the change is intended, regenerate with "
                    "SNAPCOLLECT_REGEN_GOLDEN=1 and review the diff:\n" + diff)


def test_render_is_deterministic():
    assert _render() == _render()


def test_fixture_is_a_readable_format_version():
    bundle = open_bundle(BUNDLE)
    assert bundle.manifest["format_version"] in READABLE_VERSIONS
    assert bundle.manifest["format_version"] == 1     # the oldest format renders


def test_golden_has_the_report_skeleton():
    if not os.path.exists(GOLDEN):
        pytest.fail(f"{GOLDEN} is missing; create it with SNAPCOLLECT_REGEN_GOLDEN=1")
    with open(GOLDEN, encoding="utf-8") as fh:
        text = fh.read()
    for part in ("# Memory report: ", "- **Host:** ", "- **Kernel:** 6.18", '<a id="verdict"></a>',
                 '<a id="timeline"></a>'):
        assert part in text, part


def test_incomplete_bundle_renders(tmp_path):
    """A bundle cut short (collector killed) renders and says it is incomplete."""
    with open(BUNDLE, "rb") as fh:
        data = fh.read()
    cut = tmp_path / "cut.tar.zst.partial"
    cut.write_bytes(data[: len(data) * 2 // 3])
    bundle = open_bundle(str(cut))
    assert not bundle.complete
    report = _build_report(bundle)
    text, _ = render_markdown(report, None)
    assert "**Complete:** NO" in text
