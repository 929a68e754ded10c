"""smaps -> pmap -x rows, checked against pmap -x run at the same moment."""

from __future__ import annotations

import pytest

from fixture_files import text
from snapcollect.analysis.processes import largest_mappings, mapping_split
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.pmap_cmd import parse_pmap_x
from snapcollect.parsers.smaps import parse_smaps, parse_smaps_rollup, pmap_mapping_name, rollup_from_smaps


def test_rows_equal_pmap_x():
    """The process was stopped (SIGSTOP) while smaps and pmap -x were read."""
    ours = parse_smaps(text("mapper-smaps"))
    rows, total = parse_pmap_x(text("mapper-pmap-x"))
    assert len(ours) == len(rows)
    for m, r in zip(ours, rows):
        assert (m.address, m.kbytes, m.rss_kb, m.dirty_kb, m.mode, m.mapping) == \
               (r["address"], r["kbytes"], r["rss_kb"], r["dirty_kb"], r["mode"], r["mapping"])
    split = mapping_split(ours)
    assert (split.kbytes, split.rss_kb, split.dirty_kb) == (total["kbytes"], total["rss_kb"], total["dirty_kb"])


def test_rollup_agrees_with_smaps():
    ours = parse_smaps(text("mapper-smaps"))
    rollup = parse_smaps_rollup(text("mapper-smaps_rollup"))
    split = mapping_split(ours)
    assert rollup["Rss"] == split.rss_kb
    assert rollup["Anonymous"] == split.anon_rss_kb
    assert rollup["Shared_Clean"] + rollup["Shared_Dirty"] == split.shared_rss_kb
    # Pss is rounded per mapping in smaps, exactly once in the rollup
    assert abs(rollup["Pss"] - split.pss_kb) <= len(ours)
    assert rollup_from_smaps(ours)["Rss"] == rollup["Rss"]


def test_split_and_sorting():
    ours = parse_smaps(text("mapper-smaps"))
    top = largest_mappings(ours, 3)
    assert top[0].rss_kb >= top[1].rss_kb >= top[2].rss_kb
    assert top[0].mapping == "[ anon ]" and top[0].anonymous_kb == top[0].rss_kb     # the 48 MiB bytearray
    shm = [m for m in ours if m.mode == "rw-s-"]
    assert shm and shm[0].mapping == "zero (deleted)" and shm[0].anonymous_kb == 0   # MAP_SHARED|MAP_ANON
    split = mapping_split(ours)
    assert split.anon_rss_kb + split.file_rss_kb == split.rss_kb


@pytest.mark.parametrize("path,name", [("/usr/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6"),
                                       ("[stack]", "[ stack ]"), ("[heap]", "[ anon ]"), ("", "[ anon ]"),
                                       ("[vdso]", "[ anon ]"), ("/dev/zero (deleted)", "zero (deleted)")])
def test_mapping_names(path, name):
    assert pmap_mapping_name(path) == name


def test_bad_smaps():
    with pytest.raises(ParseError):
        parse_smaps("Rss: 4 kB\n")
    with pytest.raises(ParseError):
        parse_smaps_rollup("Rss: 4 kB\n")
    with pytest.raises(ParseError):
        parse_pmap_x("1234: foo\n")


def test_pmap_x_garbage_is_a_parse_error_not_a_crash():
    # Found by tests/unit/test_fuzz_bundles.py: a flipped byte in an address.
    head = "1067:   x\nAddress           Kbytes     RSS   Dirty Mode  Mapping\n"
    with pytest.raises(ParseError, match="not hexadecimal"):
        parse_pmap_x(head + "0000?f7e6f471000       4       4       0 r---- x\ntotal kB 4 4 0\n")
    with pytest.raises(ParseError, match="total line"):
        parse_pmap_x(head + "000055b10a42b000       4       4       0 r---- x\ntotal kB\n")
