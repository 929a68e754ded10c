"""/proc/zoneinfo, per-node numastat and the numastat command."""

from __future__ import annotations

import pytest

from fixture_files import text
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.numastat import parse_node_numastat
from snapcollect.parsers.numastat_cmd import parse_numastat
from snapcollect.parsers.zoneinfo import parse_zoneinfo


def test_zoneinfo_618():
    zi = parse_zoneinfo(text("zoneinfo"))
    zones = zi["zones"]
    assert list(zones) == [(0, "DMA"), (0, "DMA32"), (0, "Normal"), (0, "Movable"), (0, "Device")]
    dma32 = zones[(0, "DMA32")]
    # the watermark, not the per-CPU pageset's "high:" further down
    assert dma32["min"] < dma32["low"] < dma32["high"] < 100000
    assert dma32["free"] == dma32["nr_free_pages"]
    assert dma32["protection"] == [0, 0, 1152, 1152, 1152]
    assert "start_pfn" in dma32 and "node_unreclaimable" in dma32
    assert zi["nodes"][0]["nr_inactive_anon"] >= 0


def test_zoneinfo_garbage():
    with pytest.raises(ParseError):
        parse_zoneinfo("  pages free 3\n")


def test_node_numastat():
    n = parse_node_numastat(text("node0-numastat"))
    assert set(n) == {"numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node"}
    # one node: every allocation is local
    assert n["numa_hit"] == n["local_node"] > 0 and n["other_node"] == n["numa_miss"] == 0


def test_numastat_command_between_node_reads():
    """numastat ran between two reads of the node file: its figures lie between them."""
    before = parse_node_numastat(text("node0-numastat-before-cmd"))
    after = parse_node_numastat(text("node0-numastat-after-cmd"))
    cmd = parse_numastat(text("numastat-cmd"))[0]
    assert set(cmd) == set(before)
    for k in before:
        assert before[k] <= cmd[k] <= after[k], k


def test_numastat_two_nodes():
    t = ("                           node0           node1\n"
         "numa_hit              22803297317096  16241914532514\n"
         "numa_miss               216025857428   7470170746474\n")
    got = parse_numastat(t)
    assert got[1]["numa_miss"] == 7470170746474 and got[0]["numa_hit"] == 22803297317096
