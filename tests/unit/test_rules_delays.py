"""Delay accounting: taskstats netlink messages, struct offsets by version,
the sysctl switched on and back, the stream parser on hostile input, the
model fact, the rules and the section."""

from __future__ import annotations

import os
import struct
from dataclasses import replace

from findings_helpers import T0, build, run

from snapcollect.analysis.delays import delay_facts
from snapcollect.analysis.model import build_model
from snapcollect.collect.sources import taskstats as ts
from snapcollect.parsers.taskstats import DelayRead, parse_delay_records
from snapcollect.report.sections.delays import delay_sections

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "taskstats")


def _bin(name: str) -> bytes:
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


# -- netlink -------------------------------------------------------------------

def test_getfamily_request_bytes():
    msg = ts.getfamily_request(7)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, seq, pid) == (len(msg), 0x10, 1, 7, 0)
    assert msg[16:20] == bytes([3, 1, 0, 0])                 # CTRL_CMD_GETFAMILY, version 1
    assert msg[20:24] == struct.pack("=HH", 14, 2)           # CTRL_ATTR_FAMILY_NAME, 4 + "TASKSTATS\0"
    assert msg[24:34] == b"TASKSTATS\0" and len(msg) % 4 == 0


def test_tgid_request_bytes():
    msg = ts.tgid_request(31, 1234, 5)
    assert struct.unpack_from("=IHHII", msg) == (28, 31, 1, 5, 0)
    assert msg[16:20] == bytes([1, 1, 0, 0])                 # TASKSTATS_CMD_GET, genl version 1
    assert msg[20:] == struct.pack("=HHI", 8, 2, 1234)       # TASKSTATS_CMD_ATTR_TGID


def test_captured_replies():
    code, payload = ts.parse_reply(_bin("reply_getfamily.bin"))
    assert code == 0 and ts.family_id(payload) == 31
    assert ts.parse_reply(_bin("reply_esrch.bin")) == (3, b"")      # ESRCH
    code, payload = ts.parse_reply(_bin("reply_tgid1_v16.bin"))
    st = ts.stats_of(payload)
    assert code == 0 and st["version"] == 16
    assert st["cpu_count"] > 0 and st["cpu_delay_total"] > 0
    assert {"swapin_delay_total", "freepages_delay_total", "thrashing_delay_total", "compact_delay_total",
            "irq_delay_total"} <= set(st)


def test_hostile_replies_do_not_raise():
    good = _bin("reply_tgid1_v16.bin")
    for cut in range(0, len(good), 7):
        code, payload = ts.parse_reply(good[:cut])
        ts.stats_of(payload)
    assert ts.parse_reply(b"")[0] != 0
    assert ts.attrs(struct.pack("=HH", 2, 1) + b"xxxx") == []     # length below the header
    assert ts.attrs(struct.pack("=HH", 200, 1) + b"xx") == []     # length past the end


def _struct(version: int, size: int, values: dict[int, int]) -> bytes:
    raw = bytearray(size)
    struct.pack_into("=H", raw, 0, version)
    for off, v in values.items():
        struct.pack_into("=Q", raw, off, v)
    return bytes(raw)


def test_offsets_by_version():
    assert "thrashing_delay_total" not in ts.offsets(8) and "thrashing_delay_total" in ts.offsets(9)
    assert "compact_delay_total" not in ts.offsets(10) and "compact_delay_total" in ts.offsets(11)
    assert ts.offsets(16) == ts.offsets(14) | {} and ts.offsets(16)["swapin_delay_total"] == 56
    assert ts.offsets(15)["swapin_delay_total"] == 88 != ts.offsets(14)["swapin_delay_total"]
    v14 = ts.parse_stats(_struct(14, 432, {56: 111, 320: 222, 336: 333, 360: 444}))
    assert (v14["swapin_delay_total"], v14["freepages_delay_total"], v14["thrashing_delay_total"],
            v14["compact_delay_total"]) == (111, 222, 333, 444)
    v15 = ts.parse_stats(_struct(15, 560, {88: 5, 360: 6, 392: 7, 432: 8}))
    assert (v15["swapin_delay_total"], v15["freepages_delay_total"], v15["thrashing_delay_total"],
            v15["compact_delay_total"]) == (5, 6, 7, 8)
    short = ts.parse_stats(_struct(11, 330, {56: 9}))          # struct cut before thrashing_delay_total
    assert short["swapin_delay_total"] == 9 and "thrashing_delay_total" not in short
    assert ts.parse_stats(b"\x01\x00") is None


# -- the sysctl ----------------------------------------------------------------

class FakeClient:
    def __init__(self):
        self.closed = False

    def stats(self, pid):
        return None if pid == 2 else {"version": 16, "comm": "", "swapin_count": 3, "swapin_delay_total": 9}

    def close(self):
        self.closed = True


def _sysctl(tmp_path, value: str):
    p = tmp_path / "task_delayacct"
    p.write_text(value)
    return str(p)


def test_enabled_for_the_window_and_restored(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    path = _sysctl(tmp_path, "0\n")
    d = ts.DelayAccounting(path=path, client_factory=FakeClient)
    assert d.state == "enabled for the window" and d.on
    assert open(path).read().strip() == "1"
    recs = d.read([(1, "init"), (2, "gone"), (1, "dup")], "start")
    assert [(r["pid"], r["comm"], r["swapin_delay_total"]) for r in recs] == [(1, "dup", 9)]
    d.restore()
    assert open(path).read().strip() == "0" and d.manifest()["restored"]
    d.restore()                                               # idempotent (close, then atexit)
    assert open(path).read().strip() == "0"


def test_states_that_leave_the_sysctl_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    path = _sysctl(tmp_path, "1\n")
    assert ts.DelayAccounting(path=path, client_factory=FakeClient).state == "already on"
    path = _sysctl(tmp_path, "0\n")
    d = ts.DelayAccounting(disabled=True, path=path, client_factory=FakeClient)
    assert d.state == "off: --no-delayacct" and not d.on and d.read([(1, "x")], "start") == []
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert ts.DelayAccounting(path=path, client_factory=FakeClient).state == "off: not root"

    def no_family():
        raise OSError(2, "no TASKSTATS generic-netlink family")
    d = ts.DelayAccounting(path=path, client_factory=no_family)
    assert d.state.startswith("unavailable: no taskstats") and not d.on
    assert open(path).read().strip() == "0"


def test_followed_puts_cgroup_members_then_swappers_first(tmp_path):
    class K:
        def __init__(self, swap_kb):
            self.swap_kb = swap_kb
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "cgroup.procs").write_text("30\n")
    rows = [(10, 1000, 0, b"big"), (20, 10, 0, b"swapper"), (30, 5, 0, b"inner")]
    got = ts.followed(rows, {20: K(5000), 10: K(0)}, str(tmp_path), ["/work", "/"])
    assert got == [(30, "inner"), (20, "swapper"), (10, "big")]


# -- the stream parser ---------------------------------------------------------

def test_parser_survives_hostile_records():
    recs = [{"t": T0, "pid": 5, "comm": "a", "phase": "end", "swapin_count": 2, "swapin_delay_total": 10},
            "garbage", None, {"pid": "5", "t": T0}, {"pid": 5, "t": "x"}, {"pid": -1, "t": T0},
            {"pid": 6, "t": T0, "comm": 7, "swapin_count": "2", "swapin_delay_total": 1 << 70},
            {"pid": 7, "t": float("nan")}]
    reads, bad = parse_delay_records(recs)
    assert bad == 6 and [r.pid for r in reads] == [5, 6]
    assert reads[0].totals_ns == {"swapin": 10} and reads[1].totals_ns == {} and reads[1].comm == ""
    assert parse_delay_records({"not": "a list"}) == ([], 0)


# -- model, rules, section -----------------------------------------------------

def _read(t, pid, comm, swapin_ms=0.0, reclaim_ms=0.0, n=1, phase="tick"):
    return DelayRead(t, pid, comm, phase, {"swapin": n, "freepages": n, "thrashing": 0, "compact": 0},
                     {"swapin": int(swapin_ms * 1e6), "freepages": int(reclaim_ms * 1e6), "thrashing": 0,
                      "compact": 0})


def _ds(reads, state="enabled for the window"):
    ds = build(31, delays=None)
    ds.delays = reads
    ds.manifest = dict(ds.manifest or {}, delayacct={"state": state}, window={"start": T0, "end": T0 + 30})
    return ds


def test_swapin_stalls_fires_and_names_the_process():
    ds = _ds([_read(T0, 100, "pg", 0), _read(T0 + 5, 100, "pg", 1000, n=50), _read(T0 + 30, 100, "pg", 2400, n=90),
              _read(T0, 200, "quiet", 0), _read(T0 + 30, 200, "quiet", 10, n=1)])
    f, skip = run("SWAPIN_STALLS", ds)
    assert skip is None and f.severity == "WARN"
    assert "pg (pid 100)" in f.title and "2400 ms" in f.title and "90 waits" in f.title
    assert [p["pid"] for p in f.evidence.values["processes"]] == [100]
    m = build_model(ds)
    assert [b.pid for b in m.delays.bursts] == [100]               # 1000 ms in 5 s = 20% > 10%
    sec = delay_sections(m)[0]
    rows = [b for b in sec.blocks if hasattr(b, "rows")][0].rows
    assert rows[0]["comm"] == "pg" and round(rows[0]["swapin_pct"], 1) == 8.0
    assert "switched on by the collector" in sec.blocks[0].text


def test_swapin_stalls_quiet_and_missing():
    f, skip = run("SWAPIN_STALLS", _ds([_read(T0, 1, "a", 0), _read(T0 + 30, 1, "a", 1000)]))   # 3.3%
    assert f is None and skip is None
    f, skip = run("SWAPIN_STALLS", build(31, delays=None))   # a bundle from before delay accounting: cannot say
    assert f is None and skip.startswith("needs delay/taskstats (not in this bundle)")
    on = build(31, delays=None)                          # on, but no process was read
    on.manifest = dict(on.manifest or {}, delayacct={"state": "enabled for the window"})
    f, skip = run("SWAPIN_STALLS", on)
    assert f is None and "no process read" in skip
    off = build(31, delays=None)
    off.manifest = dict(off.manifest or {}, delayacct={"state": "off: not root"})
    f, skip = run("SWAPIN_STALLS", off)
    assert f is None and "off: not root" in skip
    f, skip = run("MEMORY_WAIT_BY_PROCESS", off)
    assert f is None and "off: not root" in skip


def test_already_on_takes_the_change_over_the_window():
    ds = _ds([_read(T0, 1, "a", 50_000), _read(T0 + 30, 1, "a", 56_000)], state="already on")
    p = delay_facts(ds).procs[0]
    assert round(p.wait_ms["swapin"]) == 6000 and round(100 * p.share["swapin"]) == 20
    f, _ = run("SWAPIN_STALLS", ds)
    assert f.severity == "HIGH"
    assert "already on" in delay_sections(build_model(ds))[0].blocks[0].text


def test_memory_wait_by_process():
    ds = _ds([_read(T0, 9, "java", 0, 0), _read(T0 + 30, 9, "java", 0, 3000, n=40)])
    f, _ = run("MEMORY_WAIT_BY_PROCESS", ds)
    assert f is not None and "java (pid 9)" in f.title
    assert run("SWAPIN_STALLS", ds)[0] is None


def test_pid_reuse_starts_again():
    ds = _ds([_read(T0, 1, "old", 0), _read(T0 + 10, 1, "new", 100), _read(T0 + 30, 1, "new", 200)],
             state="already on")
    p = delay_facts(ds).procs[0]
    assert p.comm == "new" and round(p.wait_ms["swapin"]) == 100


def test_swap_residency_little():
    ds = _ds([])
    for i, p in enumerate(ds.meminfo):
        ds.meminfo[i] = replace(p, value=dict(p.value, SwapTotal=1 << 20, SwapFree=(1 << 20) - 40960))
    for i, p in enumerate(ds.vmstat):
        ds.vmstat[i] = replace(p, value=dict(p.value, pswpin=1000 + 100 * i))
    d = delay_facts(ds)
    # 40 MiB = 10240 pages out on average, 100 pages/s read back: 102.4 s
    assert d.residency is not None and round(d.residency.mean_s, 1) == 102.4
    text = " ".join(getattr(b, "text", "") for b in delay_sections(build_model(ds))[0].blocks)
    assert "Little's law" in text and "not a distribution" in text


def test_memory_wait_by_process_quiet_below_five_percent():
    f, skip = run("MEMORY_WAIT_BY_PROCESS", _ds([_read(T0, 9, "java", 0, 0), _read(T0 + 30, 9, "java", 0, 1000)]))
    assert f is None and skip is None


# -- processes the kernel kept no delay record for -------------------------------

def _rec(pid, comm, start, swapin_ns=0, t=T0, phase="end"):
    return {"t": t, "pid": pid, "comm": comm, "phase": phase, "starttime": start,
            "swapin_count": 1 if swapin_ns else 0, "swapin_delay_total": swapin_ns,
            "freepages_count": 0, "freepages_delay_total": 0, "thrashing_count": 0,
            "thrashing_delay_total": 0, "compact_count": 0, "compact_delay_total": 0}


def test_collector_marks_processes_started_before_the_switch(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    d = ts.DelayAccounting(path=_sysctl(tmp_path, "0\n"), client_factory=FakeClient)
    assert d.switch_tick is not None and d.manifest()["switched_on_tick"] == d.switch_tick
    recs = d.read([(1, "old"), (3, "new"), (4, "unknown")], "start",
                  {1: d.switch_tick - 500, 3: d.switch_tick + 1, 4: None})
    by = {r["pid"]: r for r in recs}
    assert (by[1]["counted"], by[3]["counted"]) == (False, True)
    assert by[1]["starttime"] == d.switch_tick - 500
    # the same tick as the switch cannot be told apart: not counted
    assert d.counted(d.switch_tick) is False and d.counted(None) is None
    d.restore()
    on = ts.DelayAccounting(path=_sysctl(tmp_path, "1\n"), client_factory=FakeClient)
    assert on.switch_tick is None and on.read([(1, "old")], "start", {1: 5})[0]["counted"] is True


def test_starttime_of_a_live_process_is_before_now():
    start = ts.starttime(os.getpid())
    now_tick = int(ts.time.clock_gettime(ts.time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))
    assert start is not None and 0 < start <= now_tick
    assert ts.starttime(1 << 30) is None


def test_parser_carries_counted_and_starttime():
    reads, bad = parse_delay_records([dict(_rec(1, "a", 5), counted=False), dict(_rec(2, "b", 9), counted=True),
                                      dict(_rec(3, "c", "x"), counted="no")])
    assert bad == 0 and [(r.counted, r.starttime) for r in reads] == [(False, 5), (True, 9), (None, None)]


def _bundle(recs, state="enabled for the window", **manifest):
    ds = build(31, delays=None)
    ds.delays, bad = parse_delay_records(recs)
    assert bad == 0
    ds.manifest = dict(ds.manifest or {}, delayacct={"state": state, **manifest},
                       window={"start": T0, "end": T0 + 30})
    return ds


def test_enabled_for_the_window_lists_older_processes_as_not_counted():
    recs = [dict(_rec(10, "olddb", 100, t=T0, phase="start"), counted=False),
            dict(_rec(10, "olddb", 100, t=T0 + 30), counted=False),
            dict(_rec(20, "fresh", 9000, t=T0, phase="start"), counted=True),
            dict(_rec(20, "fresh", 9000, t=T0 + 30), counted=True)]
    ds = _bundle(recs)
    d = delay_facts(ds)
    assert d.procs == () and [(p.pid, p.counted) for p in d.uncounted] == [(10, False)]
    text = " ".join(getattr(b, "text", "") for b in delay_sections(build_model(ds))[0].blocks)
    assert "olddb (pid 10): not counted: started before delay accounting was switched on" in text
    assert "set kernel.task_delayacct=1 to count every process" in text
    assert "No counted process waited" in text and "fresh" not in text
    assert run("SWAPIN_STALLS", ds) == (None, None)
    # a counted process that stalls: the finding names the uncounted one as unknown, not quiet
    recs[3] = dict(_rec(20, "fresh", 9000, swapin_ns=int(3e9), t=T0 + 30), counted=True)
    f, _ = run("SWAPIN_STALLS", _bundle(recs))
    assert "fresh (pid 20)" in f.title and "Not counted: olddb (pid 10)" in f.explanation


def test_counted_from_start_times_when_records_do_not_say():
    # records without "counted": the manifest's switch tick against each start time
    recs = [_rec(10, "old", 100), _rec(20, "new", 5000)]
    d = delay_facts(_bundle(recs, switched_on_tick=4000))
    assert [p.pid for p in d.uncounted] == [10]


def test_already_on_counts_every_process_and_takes_last_minus_first():
    recs = [dict(_rec(10, "olddb", 100, swapin_ns=int(1e9), t=T0, phase="start"), counted=True),
            dict(_rec(10, "olddb", 100, swapin_ns=int(7e9), t=T0 + 30), counted=True),
            dict(_rec(20, "idle", 100, t=T0, phase="start"), counted=True),
            dict(_rec(20, "idle", 100, t=T0 + 30), counted=True)]
    ds = _bundle(recs, state="already on", boot_param=True)
    d = delay_facts(ds)
    assert d.uncounted == () and [(p.pid, round(p.wait_ms["swapin"])) for p in d.procs] == [(10, 6000)]
    text = " ".join(getattr(b, "text", "") for b in delay_sections(build_model(ds))[0].blocks)
    assert "not counted" not in text and "booted with delayacct: every process counts" in text
    f, _ = run("SWAPIN_STALLS", ds)
    assert f.severity == "HIGH" and "Not counted" not in f.explanation


def test_an_old_process_with_waits_from_newer_threads_is_partly_counted():
    recs = [dict(_rec(10, "pool", 100, swapin_ns=int(2e9), t=T0 + 30), counted=False)]
    ds = _bundle(recs)
    d = delay_facts(ds)
    assert [(p.pid, p.counted) for p in d.procs] == [(10, False)] and d.uncounted == ()
    rows = [b for b in delay_sections(build_model(ds))[0].blocks if hasattr(b, "rows")][0].rows
    assert rows[0]["comm"] == "pool (partly counted)"
