"""ZONE_LOW_WATERMARK, HIGH_FRAGMENTATION, NUMA_MISSES."""

import copy

from findings_helpers import build, run

from snapcollect.parsers.zoneinfo import parse_zoneinfo
from findings_helpers import fixture


def _zones(free_normal: int) -> dict:
    zi = copy.deepcopy(parse_zoneinfo(fixture("zoneinfo")))
    zi["zones"][(0, "Normal")]["free"] = free_normal
    return zi


def test_zone_low_watermark_levels():
    normal = _zones(0)["zones"][(0, "Normal")]
    below_low = (normal["min"] + normal["low"]) // 2
    f, _ = run("ZONE_LOW_WATERMARK", build(start={"zoneinfo": _zones(below_low)},
                                           end={"zoneinfo": _zones(below_low)}))
    assert f.severity == "WARN" and f.evidence.values["mark"] == "low"
    f, _ = run("ZONE_LOW_WATERMARK", build(end={"zoneinfo": _zones(normal["min"] - 1)}))
    assert f.severity == "HIGH" and f.evidence.values["mark"] == "min"
    assert f.evidence.artifacts == ["proc/zoneinfo@end"]
    f, _ = run("ZONE_LOW_WATERMARK", build(start={"zoneinfo": _zones(below_low)}))
    assert f.severity == "INFO"


def test_zone_low_watermark_negative_and_missing():
    assert run("ZONE_LOW_WATERMARK", build())[0] is None
    assert run("ZONE_LOW_WATERMARK", build(drop=("zoneinfo",)))[1] == (
        "needs proc/zoneinfo@end (not in this bundle) or proc/zoneinfo@start (not in this bundle)")


def test_high_fragmentation():
    # plenty free, all in order-0..3 blocks
    frag = [{"node": 0, "zone": "DMA32", "free": [1, 1, 4, 2, 5, 4, 3, 3, 4, 2, 752]},
            {"node": 0, "zone": "Normal", "free": [90000, 40000, 9000, 2000, 10, 0, 0, 0, 0, 0, 0]}]
    f, _ = run("HIGH_FRAGMENTATION", build(end={"buddyinfo": frag}))
    assert f.severity == "INFO" and f.evidence.values["zone"] == "Normal"
    assert f.evidence.values["unusable_index"] > 0.99


def test_high_fragmentation_negative_and_missing():
    assert run("HIGH_FRAGMENTATION", build())[0] is None      # the real idle buddyinfo
    # nearly nothing free: not fragmentation
    tiny = [{"node": 0, "zone": "Normal", "free": [30, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]}]
    assert run("HIGH_FRAGMENTATION", build(end={"buddyinfo": tiny}))[0] is None
    assert run("HIGH_FRAGMENTATION", build(drop=("buddyinfo",)))[1] == "needs proc/buddyinfo@end (not in this bundle)"


def test_unusable_index_matches_kernel_definition():
    from snapcollect.analysis.findings.rules.zones import unusable_index
    # 4 free pages at order 0, one block of 16 pages at order 4: 4/20 unusable at order 4
    assert unusable_index([4, 0, 0, 0, 1], 4) == (0.2, 20)


def _numa(miss_per_tick: int, hit_per_tick: int = 1000):
    # Node 0 takes allocations meant for node 1: node 0's numa_miss and
    # node 1's numa_foreign rise together (mm/vmstat.c zone_statistics).
    return lambda k: {0: {"numa_hit": 10**6 + hit_per_tick * k, "numa_miss": miss_per_tick * k,
                          "numa_foreign": 0},
                      1: {"numa_hit": 10**6 + hit_per_tick * k, "numa_miss": 0,
                          "numa_foreign": miss_per_tick * k}}


def test_numa_misses():
    f, _ = run("NUMA_MISSES", build(numa=_numa(500)))
    assert f.severity == "WARN" and f.evidence.values["node"] == 0 and round(f.evidence.values["pct"]) == 33
    # The direction: node 0 received memory that was meant for node 1.
    assert f.title == "NUMA misses: 33% of node 0's allocations were meant for node 1"
    assert "node 1 saw 15000 of its allocations go elsewhere (numa_foreign)" in f.explanation
    assert run("NUMA_MISSES", build(numa=_numa(150)))[0].severity == "INFO"


def test_numa_misses_negative_and_missing():
    assert run("NUMA_MISSES", build())[0] is None
    assert run("NUMA_MISSES", build(numa=_numa(10)))[0] is None     # under the 1024-miss floor
    assert run("NUMA_MISSES", build(drop=("numa",)))[1].startswith("needs series/sys/node/numastat")
    only_end = build(drop=("numa",), end={"numastat": {0: {"numa_hit": 5, "numa_miss": 0}}})
    assert run("NUMA_MISSES", only_end)[1].startswith("needs two numastat samples per node")
