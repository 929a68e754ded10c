"""pidstat -r over the window and the process views (ps/top, growth, PSS)."""

from __future__ import annotations

import pytest

from fixture_files import BUNDLE
from sar_inputs import T0, dataset, proc
from snapcollect.analysis.dataset import load_dataset
from snapcollect.analysis.pidstat import pidstat_r
from snapcollect.analysis.pidstat import lives
from snapcollect.analysis.processes import growth, process_memory, top_by_pss, top_by_rss
from snapcollect.bundle import open_bundle

HZ = 100


def rows_by(rows):
    return {(r.pid, r.comm): r for r in rows}


def test_whole_window_and_mem_pct():
    ds = dataset(procs=[{1: proc(1, minflt=100, majflt=1, rss_kb=2000)},
                        {1: proc(1, minflt=160, majflt=3, rss_kb=2500)},
                        {1: proc(1, minflt=300, majflt=5, rss_kb=3000, vsize_kb=9000)}],
                 uptime=[50.0, 51.0, 52.0])
    (r,) = pidstat_r(ds.procs, 10000, ds.uptime, HZ)
    assert (r.minflt, r.majflt, r.seconds) == (200, 4, 2.0)
    assert (r.minflt_s, r.majflt_s) == (100.0, 2.0)
    assert (r.rss_kb, r.vsz_kb, r.mem_pct) == (3000, 9000, 30.0)     # from the last sample
    assert not r.started_in_window and not r.exited_in_window


def test_pid_reuse_is_two_processes():
    # pid 7 exits after tick 1; a new pid 7 (later starttime) appears at tick 2.
    ds = dataset(procs=[{7: proc(7, "old", minflt=10, starttime=100)},
                        {7: proc(7, "old", minflt=30, starttime=100)},
                        {7: proc(7, "new", minflt=5, starttime=5150)},
                        {7: proc(7, "new", minflt=45, starttime=5150)}],
                 uptime=[50.0, 51.0, 52.0, 53.0])
    got = rows_by(pidstat_r(ds.procs, 1000, ds.uptime, HZ))
    old, new = got[(7, "old")], got[(7, "new")]
    assert old.minflt == 20 and old.exited_in_window and old.minflt_s == 20.0
    # born at uptime 51.50 (5150 ticks / HZ): counts every fault since then
    assert new.started_in_window and new.minflt == 45
    assert new.t_from == pytest.approx(T0 + 1.5) and new.minflt_s == pytest.approx(45 / 1.5)


def test_missing_tick_and_late_first_sight_of_an_old_process():
    # pid 3 is skipped at tick 1 (a blocked read), pid 4 was started before the window but first
    # read at tick 1: counted from its first sight, not from zero.
    ds = dataset(procs=[{3: proc(3, minflt=0)}, {4: proc(4, minflt=1000, starttime=10)},
                        {3: proc(3, minflt=40), 4: proc(4, minflt=1010, starttime=10)}],
                 uptime=[50.0, 51.0, 52.0])
    got = {r.pid: r for r in pidstat_r(ds.procs, 1000, ds.uptime, HZ)}
    assert got[3].minflt == 40 and got[3].seconds == 2.0
    assert got[4].minflt == 10 and got[4].seconds == 1.0


def test_quiet_processes_and_ordering():
    ds = dataset(procs=[{1: proc(1, minflt=5), 2: proc(2, minflt=5), 3: proc(3, minflt=5)},
                        {1: proc(1, minflt=5), 2: proc(2, minflt=500), 3: proc(3, minflt=9)}],
                 uptime=[1.0, 2.0])
    rows = pidstat_r(ds.procs, 1000, ds.uptime, HZ)
    assert [r.pid for r in rows if r.minflt] == [2, 3]


def test_top_by_rss_and_growth():
    ds = dataset(procs=[{1: proc(1, rss_kb=1000), 2: proc(2, rss_kb=9000), 3: proc(3, rss_kb=50)},
                        {1: proc(1, rss_kb=8000), 2: proc(2, rss_kb=9000)},
                        {1: proc(1, rss_kb=5000), 2: proc(2, rss_kb=9000)}])
    top = top_by_rss(process_memory(ds.procs, 20000))
    assert [p.pid for p in top] == [2, 1]               # 3 exited: not in the end view
    assert top[1].growth_kb == 4000 and top[1].growth_ratio == 5.0 and top[0].mem_pct == 45.0
    (g,) = growth(lives(ds.procs))
    # Growth runs from the first sight to the peak, not to the last sight.
    assert (g.pid, g.first_kb, g.peak_kb, g.last_kb, g.growth_kb) == (1, 1000, 8000, 5000, 7000)


def test_real_bundle_processes():
    ds = load_dataset(open_bundle(BUNDLE))
    rows = pidstat_r(ds.procs, ds.meminfo[-1].value["MemTotal"], ds.uptime, ds.clk_tck)
    hog = [r for r in rows if r.majflt > 0]
    # the memcg swap workload: the only process taking major faults (swap-ins)
    assert len(hog) == 1 and hog[0].comm == "python" and hog[0].majflt_s > 100
    first = {p.pid: p for p in ds.procs[0].value.values()}
    last = {p.pid: p for p in ds.procs[-1].value.values()}
    assert hog[0].majflt == last[hog[0].pid].majflt - first[hog[0].pid].majflt
    pss = top_by_pss(ds.top)
    assert all(d.pss_kb <= d.rss_kb for d in pss) and pss[0].pss_kb >= pss[-1].pss_kb
    assert any(d.comm == "sc (fix) x) 2" for d in pss)
