"""free -w and vmstat -s recomputed from /proc text of the same moment.

The fixtures were taken between two identical reads of /proc/meminfo and
/proc/vmstat (tests/fixtures/capture.py), so the command saw the same
counters. The only allowed difference: vmstat's own pages, which sit on
the inactive LRU while it runs (a few hundred kB in "inactive memory").
"""

from __future__ import annotations

import pytest

from fixture_files import text
from snapcollect.analysis.classic import free_w, vmstat_s
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.free_cmd import parse_free
from snapcollect.parsers.meminfo import parse_meminfo
from snapcollect.parsers.vmstat import parse_vmstat
from snapcollect.parsers.vmstat_s_cmd import parse_vmstat_s

OWN_PAGES_KB = 1024


def test_free_w_equals_meminfo_of_the_same_moment():
    assert free_w(parse_meminfo(text("meminfo-with-free-w"))) == parse_free(text("free-w"))


def test_vmstat_s_equals_meminfo_and_vmstat_of_the_same_moment():
    ours = vmstat_s(parse_meminfo(text("meminfo-with-vmstat-s")), parse_vmstat(text("vmstat-with-vmstat-s")))
    theirs = {label: (v, unit) for label, v, unit in parse_vmstat_s(text("vmstat-s"))}
    for label, value, unit in ours:
        assert theirs[label][1] == unit, label
        if label in ("active memory", "inactive memory"):
            assert abs(theirs[label][0] - value) <= OWN_PAGES_KB, label
        else:
            assert theirs[label][0] == value, label


def test_free_without_memavailable_uses_memfree():
    f = free_w({"MemTotal": 1000, "MemFree": 300, "Buffers": 10, "Cached": 200, "Shmem": 5})
    assert f["Mem"]["available"] == 300 and f["Mem"]["used"] == 700 and f["Mem"]["cache"] == 200


def test_parse_errors():
    with pytest.raises(ParseError):
        parse_free("Mem: 1 2 3\n")
    with pytest.raises(ParseError):
        parse_vmstat_s("lots of memory\n")
