"""One unit convention per table: the unit in every quantity cell or in the
column titles, never both in one table ("579Mi" beside "+97276")."""

from __future__ import annotations

import glob
import os

import pytest

from snapcollect.bundle import open_bundle
from snapcollect.report.build import build_report
from snapcollect.report.formatting import format_cell

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLES = sorted(glob.glob(os.path.join(REPO, "samples", "*.tar.zst"))
                 + glob.glob(os.path.join(REPO, "tests", "fixtures", "bundles", "*.tar.zst")))
# Formats that print the unit in the cell.
UNIT_IN_CELL = ("iec_kb", "+iec_kb")


@pytest.fixture(scope="module", params=BUNDLES, ids=os.path.basename)
def report(request):
    return build_report(open_bundle(request.param))


def test_no_table_mixes_units_in_cells_with_bare_numbers(report):
    for t in report.all_tables():
        quantities = [c for c in t.columns if c.unit in ("B", "kB", "KiB", "MiB", "GiB")]
        in_cell = [c.key for c in quantities if c.fmt in UNIT_IN_CELL]
        bare = [c.key for c in quantities if c.fmt not in UNIT_IN_CELL]
        assert not (in_cell and bare), (t.id, in_cell, bare)


def test_oom_and_cgroup_tables_say_their_units(report):
    for t in report.all_tables():
        if t.id in ("oom-kills", "oom-kills-earlier", "pmap-summary"):
            for c in t.columns:
                if c.unit == "kB":
                    assert c.title.endswith("kB"), (t.id, c.title)
        if t.id == "cgroups":
            for row in t.rows:
                change = format_cell(row, next(c for c in t.columns if c.key == "change_kb"))
                assert change == "-" or change[-2:] in ("Ki", "Mi", "Gi", "Ti") or change.endswith("B"), change
