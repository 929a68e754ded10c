"""/proc/meminfo and per-node meminfo parsers, on kernel 6.18 fixtures and old kernels."""

from __future__ import annotations

import pytest

from fixture_files import text
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.meminfo import parse_meminfo
from snapcollect.parsers.numastat import parse_node_meminfo


def test_kernel_618_meminfo():
    m = parse_meminfo(text("meminfo"))
    assert m["MemTotal"] == 24684084
    assert m["HugePages_Total"] == 0          # a page count, no unit
    assert m["Hugepagesize"] == 2048
    assert "MemAvailable" in m and "SecPageTables" in m
    assert len(m) == len(text("meminfo").splitlines())


def test_swapping_meminfo_has_swap():
    m = parse_meminfo(text("meminfo-swapping"))
    assert m["SwapTotal"] == 262140
    assert 0 < m["SwapFree"] < m["SwapTotal"]


OLD_KERNEL_3_10 = """\
MemTotal:        8010440 kB
MemFree:         2011620 kB
Buffers:          209864 kB
Cached:          4622380 kB
SwapCached:            0 kB
Active:          3613748 kB
Inactive:        1779212 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""


def test_pre_314_kernel_without_memavailable():
    m = parse_meminfo(OLD_KERNEL_3_10)
    assert "MemAvailable" not in m
    assert m["Buffers"] == 209864


@pytest.mark.parametrize("bad", ["", "MemTotal 123 kB\n", "MemTotal:   lots kB\n", "MemTotal: 1 MB\n"])
def test_bad_meminfo_is_a_parse_error(bad):
    with pytest.raises(ParseError) as e:
        parse_meminfo(bad)
    assert "meminfo" in str(e.value) and "\n" not in str(e.value)


def test_node_meminfo():
    m = parse_node_meminfo(text("node0-meminfo"))
    assert m["MemTotal"] == 4286668
    assert m["MemUsed"] == m["MemTotal"] - m["MemFree"]
    assert "HugePages_Total" in m
    with pytest.raises(ParseError):
        parse_node_meminfo("MemTotal: 1 kB\n")
