"""/proc/vmstat parser and the counter names of old kernels (analysis.rates.vm_counter)."""

from __future__ import annotations

import pytest

from fixture_files import text
from snapcollect.analysis.rates import sysstat_1261_pgsteal, vm_counter
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.vmstat import parse_vmstat


def test_kernel_618_vmstat():
    v = parse_vmstat(text("vmstat"))
    assert len(v) == len(text("vmstat").splitlines())
    for name in ("pgpgin", "pgfault", "pgscan_kswapd", "pgscan_direct_throttle", "pgsteal_anon", "oom_kill"):
        assert name in v


def test_pgsteal_is_kswapd_plus_direct_not_anon_file():
    v = parse_vmstat(text("vmstat-swapping"))
    assert vm_counter(v, "pgsteal") == (v["pgsteal_kswapd"] + v["pgsteal_direct"] + v["pgsteal_khugepaged"]
                                        + v["pgsteal_proactive"])
    # sysstat 12.6.1 adds every pgsteal_* line, anon and file included.
    assert sysstat_1261_pgsteal(v) == vm_counter(v, "pgsteal") + v["pgsteal_anon"] + v["pgsteal_file"]


# /proc/vmstat of a 3.10 kernel (RHEL 7): reclaim counters per zone.
PRE_48 = """\
pgpgin 11
pgpgout 22
pgsteal_kswapd_dma 0
pgsteal_kswapd_dma32 100
pgsteal_kswapd_normal 200
pgsteal_kswapd_movable 0
pgsteal_direct_dma 0
pgsteal_direct_dma32 10
pgsteal_direct_normal 20
pgsteal_direct_movable 0
pgscan_kswapd_dma 0
pgscan_kswapd_dma32 300
pgscan_kswapd_normal 400
pgscan_kswapd_movable 0
pgscan_direct_dma 0
pgscan_direct_dma32 30
pgscan_direct_normal 40
pgscan_direct_movable 0
pgscan_direct_throttle 7
"""


def test_pre_48_zone_suffixed_names_are_summed():
    v = parse_vmstat(PRE_48)
    assert vm_counter(v, "pgscan_kswapd") == 700
    assert vm_counter(v, "pgscan_direct") == 70      # pgscan_direct_throttle is not a zone
    assert vm_counter(v, "pgsteal") == 330
    assert vm_counter(v, "pgpgin") == 11
    assert vm_counter(v, "no_such_counter") is None


def test_pre_34_pgsteal_per_zone_only():
    v = parse_vmstat("pgsteal_dma 1\npgsteal_normal 41\npgscan_kswapd_normal 50\n")
    assert vm_counter(v, "pgsteal") == 42


@pytest.mark.parametrize("bad", ["", "pgpgin\n", "pgpgin 1 2\n", "pgpgin x\n"])
def test_bad_vmstat(bad):
    with pytest.raises(ParseError):
        parse_vmstat(bad)
