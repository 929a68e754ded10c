"""sar -B/-r/-S/-W/-H/-q MEM computed as upstream sysstat 12.7.9+ defines them.

Expected values are worked out by hand in the comments from the inline
counters; the fixture-based cases check the tables of the real bundle.
"""

from __future__ import annotations

import pytest

from fixture_files import BUNDLE
from sar_inputs import T0, dataset, psi
from snapcollect.analysis import sar as S
from snapcollect.analysis.dataset import load_dataset
from snapcollect.bundle import open_bundle


def vm(**kw):
    base = dict(pgpgin=0, pgpgout=0, pgfault=0, pgmajfault=0, pgfree=0, pgscan_kswapd=0, pgscan_direct=0,
                pgscan_direct_throttle=0, pgsteal_kswapd=0, pgsteal_direct=0, pgsteal_anon=0, pgsteal_file=0,
                pswpin=0, pswpout=0)
    base.update(kw)
    return base


def test_sar_B_rates_use_uptime_not_wall_clock():
    # Wall clock says 1 s apart; uptime says 2.00 s, then 0.50 s (a late, then an early read).
    ds = dataset(vmstat=[vm(), vm(pgpgin=400, pgfault=1000, pgscan_kswapd=300, pgscan_direct=100,
                                  pgscan_direct_throttle=999, pgsteal_kswapd=150, pgsteal_direct=50,
                                  pgsteal_anon=180, pgsteal_file=20),
                         vm(pgpgin=500, pgfault=1100, pgscan_kswapd=300, pgscan_direct=100,
                            pgscan_direct_throttle=999, pgsteal_kswapd=150, pgsteal_direct=50, pgsteal_anon=180,
                            pgsteal_file=20)],
                 uptime=[100.00, 102.00, 102.50])
    t = S.sar_B(ds)
    r1, r2 = t.rows
    assert r1["t"] == T0 + 1 and r1["pgpgin/s"] == 200.0 and r1["fault/s"] == 500.0
    assert r1["pgscank/s"] == 150.0
    assert r1["pgscand/s"] == 50.0           # 100 / 2; pgscan_direct_throttle not counted
    assert r1["pgsteal/s"] == 100.0          # (150 + 50) / 2; anon/file not added on top
    assert r1["%vmeff"] == 50.0              # 200 / (300 + 100)
    assert r2["pgpgin/s"] == 200.0 and r2["%vmeff"] == 0.0     # 100 / 0.5; nothing scanned -> 0
    # Average: (last - first) / (102.50 - 100.00)
    assert t.average["pgpgin/s"] == 200.0 and t.average["fault/s"] == 440.0
    assert t.average["%vmeff"] == 50.0


def test_sar_B_pre_48_zone_names():
    a = {"pgpgin": 0, "pgpgout": 0, "pgfault": 0, "pgmajfault": 0, "pgfree": 0,
         "pgscan_kswapd_dma32": 0, "pgscan_kswapd_normal": 0, "pgscan_direct_normal": 0,
         "pgsteal_kswapd_normal": 0, "pgsteal_direct_normal": 0}
    b = dict(a, pgscan_kswapd_dma32=10, pgscan_kswapd_normal=30, pgscan_direct_normal=40,
             pgsteal_kswapd_normal=20, pgsteal_direct_normal=20)
    (row,) = S.sar_B(dataset(vmstat=[a, b], uptime=[1.0, 2.0])).rows
    assert (row["pgscank/s"], row["pgscand/s"], row["pgsteal/s"], row["%vmeff"]) == (40.0, 40.0, 40.0, 50.0)


def test_sar_W_and_no_uptime_falls_back_to_wall_clock():
    t = S.sar_W(dataset(vmstat=[vm(), vm(pswpin=30, pswpout=60)], dt=3.0))
    assert t.rows[0]["pswpin/s"] == 10.0 and t.rows[0]["pswpout/s"] == 20.0


def test_one_sample_gives_no_table():
    assert S.sar_B(dataset(vmstat=[vm()])) is None
    assert S.sar_r(dataset(meminfo=[{"MemTotal": 1}])) is None


def mi(free, avail=None, swapfree=1000, commit=500):
    m = {"MemTotal": 10000, "MemFree": free, "Buffers": 100, "Cached": 2000, "Committed_AS": commit,
         "Active": 3000, "Inactive": 1000, "Dirty": 5, "AnonPages": 2500, "Slab": 700, "KernelStack": 20,
         "PageTables": 30, "VmallocUsed": 40, "SwapTotal": 4000, "SwapFree": swapfree, "SwapCached": 300,
         "HugePages_Total": 10, "HugePages_Free": 4, "HugePages_Rsvd": 1, "HugePages_Surp": 0,
         "Hugepagesize": 2048}
    if avail is not None:
        m["MemAvailable"] = avail
    return m


def test_sar_r_all_columns_and_average():
    ds = dataset(meminfo=[mi(9999, 9999), mi(3000, 6000), mi(2001, 5001, commit=3500)])
    t = S.sar_r(ds)
    assert [c.name for c in t.columns] == ("kbmemfree kbavail kbmemused %memused kbbuffers kbcached kbcommit "
                                           "%commit kbactive kbinact kbdirty kbanonpg kbslab kbkstack kbpgtbl "
                                           "kbvmused").split()
    assert len(t.rows) == 2                       # the first sample is the reference
    r = t.rows[0]
    assert r["kbmemused"] == 4000 and r["%memused"] == 40.0      # MemTotal - MemAvailable
    assert r["%commit"] == pytest.approx(100 * 500 / 14000)      # of MemTotal + SwapTotal
    assert (r["kbslab"], r["kbkstack"], r["kbpgtbl"], r["kbvmused"]) == (700, 20, 30, 40)
    a = t.average
    assert a["kbmemfree"] == 2500.5 and a["kbavail"] == 5500.5   # mean of the printed samples
    assert a["kbmemused"] == 4499.5 and a["%memused"] == pytest.approx(44.995)
    assert format(a["kbmemfree"], ".0f") == "2500"               # printf rounds half to even, as sar


def test_sar_r_without_memavailable():
    t = S.sar_r(dataset(meminfo=[mi(100), mi(400)]))
    assert t.rows[0]["kbavail"] == 400 and t.rows[0]["kbmemused"] == 9600
    assert "MemAvailable" in t.note


def test_sar_S_and_H():
    ds = dataset(meminfo=[mi(1, 1), mi(1, 1, swapfree=1000), mi(1, 1, swapfree=4000)])
    s = S.sar_S(ds)
    r1, r2 = s.rows
    assert (r1["kbswpused"], r1["%swpused"], r1["%swpcad"]) == (3000, 75.0, 10.0)
    assert (r2["kbswpused"], r2["%swpused"], r2["%swpcad"]) == (0, 0.0, 0.0)    # none used: 0, not a division
    assert s.average["kbswpused"] == 1500 and s.average["%swpcad"] == 20.0
    h = S.sar_H(ds).rows[0]
    assert (h["kbhugfree"], h["kbhugused"], h["%hugused"], h["kbhugrsvd"]) == (8192, 12288, 60.0, 2048)
    no_swap = dict(mi(1, 1), SwapTotal=0, SwapFree=0, SwapCached=0)
    assert S.sar_S(dataset(meminfo=[no_swap, no_swap])).rows[0]["%swpused"] == 0.0


def test_sar_q_mem():
    ds = dataset(psi=[psi(1.0, 0, 0.5, 0), psi(2.0, 250_000, 1.0, 100_000), psi(3.0, 300_000, 1.5, 100_000)],
                 uptime=[10.0, 11.0, 12.0])
    t = S.sar_q_mem(ds)
    r1, r2 = t.rows
    assert r1["%smem"] == 25.0 and r1["%fmem"] == 10.0 and r1["%smem-10"] == 2.0
    assert r2["%smem"] == 5.0 and r2["%fmem"] == 0.0
    assert t.average["%smem"] == 15.0 and t.average["%smem-10"] == 2.5      # window share; mean of avg10


def test_real_bundle_tables():
    ds = load_dataset(open_bundle(BUNDLE))
    tables = {t.id: t for t in S.all_sar_tables(ds)}
    assert list(tables) == ["sar-B", "sar-r", "sar-S", "sar-W", "sar-H", "sar-q-MEM"]
    n = len(ds.vmstat) - 1
    assert all(len(t.rows) == n for t in tables.values())
    # swap thrashing in the memcg: swap-in and -out every interval, no global scanning
    assert all(r["pswpin/s"] > 0 and r["pswpout/s"] > 0 for r in tables["sar-W"].rows)
    b = tables["sar-B"]
    first, last = ds.vmstat[0].value, ds.vmstat[-1].value
    up = {p.k: p.value for p in ds.uptime}
    span = up[ds.vmstat[-1].k] - up[ds.vmstat[0].k]
    assert b.average["majflt/s"] == pytest.approx((last["pgmajfault"] - first["pgmajfault"]) / span)
    assert tables["sar-S"].rows[-1]["kbswpused"] == ds.meminfo[-1].value["SwapTotal"] - ds.meminfo[-1].value["SwapFree"]
    assert tables["sar-q-MEM"].average["%fmem"] > 5


def test_cgroup_limit_reclaim_is_reported_apart():
    # 5.8+: pgscan/pgsteal_anon+_file count every reclaim, kswapd/direct only global reclaim.
    a = vm(pgscan_anon=0, pgscan_file=0)
    b = vm(pgscan_kswapd=100, pgsteal_kswapd=50, pgscan_anon=900, pgscan_file=100, pgsteal_anon=400,
           pgsteal_file=50)
    ds = dataset(vmstat=[a, b], uptime=[0.0, 2.0])
    assert S.cgroup_reclaim(ds) == (450.0, 200.0)     # (1000 - 100) / 2, (450 - 50) / 2
    assert S.sar_B(ds).rows[0]["pgsteal/s"] == 25.0
    old = {k: v for k, v in a.items() if not k.endswith(("_anon", "_file"))}
    assert S.cgroup_reclaim(dataset(vmstat=[old, old], uptime=[0.0, 1.0])) is None
