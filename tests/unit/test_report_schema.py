"""The report JSON of every real bundle (samples/, tests/fixtures/bundles/) and of the
synthetic report validates against docs/report-schema.json, and the schema
catches what it is there to catch."""

from __future__ import annotations

import copy
import glob
import json
import os
import sys

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (the test extra) is not installed")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from report_schema import assert_valid_report, schema_errors  # noqa: E402

from render_sample import sample_report  # noqa: E402
from snapcollect.bundle import open_bundle  # noqa: E402
from snapcollect.report.build import build_report  # noqa: E402
from snapcollect.report.json_out import report_dict, render_json  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLES = sorted(glob.glob(os.path.join(REPO, "samples", "*.tar.zst"))
                 + glob.glob(os.path.join(REPO, "tests", "fixtures", "bundles", "*.tar.zst")))


@pytest.fixture(scope="module", params=BUNDLES, ids=os.path.basename)
def doc(request):
    return json.loads(render_json(build_report(open_bundle(request.param))))


def test_real_reports_validate(doc):
    assert_valid_report(doc)


def test_real_reports_use_t_and_iso_times(doc):
    for t in doc["tables"]:
        for c in t["columns"]:
            if c.get("type") == "time":
                assert c["key"] == "t" or c["key"].endswith("_t") or c["key"].startswith("t_"), (t["id"], c)
        if t["id"].startswith("sar-"):
            assert t["columns"][0]["key"] == "t" and all(isinstance(r["t"], str) for r in t["rows"])
    for f in doc["findings"]:
        text = json.dumps(f["evidence"]["values"])
        # no epoch float left where a time is meant
        for key in ('"t": 1', '_t": 1', '_at": 1'):
            assert key not in text, (f["key"], text[:200])


def test_synthetic_report_validates():
    assert_valid_report(report_dict(sample_report()))


def test_a_time_key_with_an_iso_time_validates():
    """An ISO time under a *_t key is a time and not a number: both of the
    pattern's alternatives hold, which must not be a failure (it was with oneOf)."""
    d = copy.deepcopy(report_dict(sample_report()))
    d["findings"][0]["evidence"]["values"]["stopped_t"] = "2026-12-02T14:40:00.000Z"
    assert not schema_errors(d)


@pytest.mark.parametrize("breakage", [
    lambda d: d.pop("findings"),
    lambda d: d["findings"][0].__setitem__("severity", "FATAL"),
    lambda d: d["timeline"][0].__setitem__("t", 1763820161.0),
    lambda d: d["tables"][0]["columns"][0].__setitem__("key", "time"),
    lambda d: d["findings"][0]["evidence"]["values"].__setitem__("first_t", 1763820161.0),
    lambda d: d.__setitem__("report_json_version", 2),
])
def test_schema_catches(breakage):
    d = copy.deepcopy(report_dict(sample_report()))
    breakage(d)
    assert schema_errors(d)


def test_documented_example_validates():
    import re

    with open(os.path.join(REPO, "docs", "report-json.md"), encoding="utf-8") as fh:
        doc = fh.read()
    example = re.search(r"## Example \(abridged\)\s*```json\n(.*?)```", doc, re.S).group(1)
    assert_valid_report(json.loads(example))
