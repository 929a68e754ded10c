"""/proc/pressure/memory parser (4.20+)."""

from __future__ import annotations

import pytest

from fixture_files import text
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.psi import parse_psi


def test_idle_and_swapping():
    idle = parse_psi(text("pressure-memory"))
    assert idle.some.total_us == 0 or idle.some.avg10 >= 0
    busy = parse_psi(text("pressure-memory-swapping"))
    assert busy.some.avg10 > 1 and busy.full is not None
    assert busy.some.total_us >= busy.full.total_us   # full stalls are a subset of some


def test_some_only():
    p = parse_psi("some avg10=1.50 avg60=0.20 avg300=0.00 total=12345\n")
    assert p.full is None and p.some.avg10 == 1.5 and p.some.total_us == 12345


@pytest.mark.parametrize("bad", ["", "full avg10=0 avg60=0 avg300=0 total=0\n", "some avg10=x\n",
                                 "some avg10=1 avg60=1 total=3\n"])
def test_bad(bad):
    with pytest.raises(ParseError):
        parse_psi(bad)
