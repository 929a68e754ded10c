"""/proc/swaps, /proc/slabinfo and /proc/buddyinfo parsers."""

from __future__ import annotations

import pytest

from fixture_files import text
from snapcollect.analysis import slab
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.buddyinfo import parse_buddyinfo
from snapcollect.parsers.slabinfo import parse_slabinfo
from snapcollect.parsers.swaps import parse_swaps


def test_no_swap():
    assert parse_swaps(text("swaps")) == []


def test_swap_file_in_use():
    (dev,) = parse_swaps(text("swaps-swapping"))
    assert dev.filename == "/var/tmp/snapfix.swap" and dev.type == "file"
    assert dev.size_kb == 262140 and dev.used_kb == 153472 and dev.priority == -2


def test_swap_name_with_blanks_is_unescaped():
    t = "Filename\tType\tSize\tUsed\tPriority\n/mnt/my\\040swap file\t\t1024\t0\t-3\n"
    (dev,) = parse_swaps(t)
    assert dev.filename == "/mnt/my swap" and dev.priority == -3


def test_swaps_without_header():
    with pytest.raises(ParseError):
        parse_swaps("/dev/sda2 partition 1 0 -2\n")


def test_slabinfo_618():
    caches = parse_slabinfo(text("slabinfo"))
    by = {c.name: c for c in caches}
    assert len(caches) == len(text("slabinfo").splitlines()) - 2
    d = by["dentry"]
    assert d.objsize == 192 and d.objperslab == 21 and d.pagesperslab == 1
    assert d.num_objs >= d.active_objs and d.num_slabs >= d.active_slabs
    # CACHE SIZE as slabtop: num_slabs * pagesperslab * page size
    assert slab.cache_size_kb(d, 4096) == d.num_slabs * 4
    assert slab.largest(caches, 4096, 1)[0].name == max(caches, key=lambda c: c.num_slabs * c.pagesperslab).name


def test_slabinfo_other_version_refused():
    with pytest.raises(ParseError) as e:
        parse_slabinfo("slabinfo - version: 1.1\nfoo 1 2 3 4\n")
    assert "1.1" in str(e.value)


def test_slab_growth():
    start = parse_slabinfo(text("slabinfo"))
    end = [c if c.name != "dentry" else type(c)(c.name, c.active_objs + 21, c.num_objs + 21, c.objsize,
                                                 c.objperslab, c.pagesperslab, c.active_slabs + 1,
                                                 c.num_slabs + 1) for c in start]
    (g,) = slab.growth(start, end, 4096)
    assert g.name == "dentry" and g.change_kb == 4


def test_buddyinfo_618():
    zones = parse_buddyinfo(text("buddyinfo"))
    assert [z["zone"] for z in zones] == ["DMA", "DMA32", "Normal"]
    assert all(len(z["free"]) == 11 and z["node"] == 0 for z in zones)
    with pytest.raises(ParseError):
        parse_buddyinfo("zone Normal 1 2 3\n")
